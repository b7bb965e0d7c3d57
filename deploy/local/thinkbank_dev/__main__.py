"""`python3 -m thinkbank_dev` (from deploy/local): the same as deploy/local/thinkbank_dev.py."""

import sys

from .cli import main

sys.exit(main())
