#!/usr/bin/env python3
"""thinkbank dev launcher: the entry point the README, the Makefile, CI and other scripts call.

The code lives in the stdlib-only package beside this file, deploy/local/thinkbank_dev/ (its
__init__ describes the commands and the state under .data/). Running this file puts
deploy/local first on sys.path, where the package directory wins over this module's own name.
"""

import sys

from thinkbank_dev.cli import main

if __name__ == "__main__":
    sys.exit(main())
