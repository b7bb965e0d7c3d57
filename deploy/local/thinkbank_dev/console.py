"""How the launcher talks to the developer: progress lines on stderr and its two exceptions.

Progress goes to stderr prefixed with "thinkbank:"; machine-readable output (URIs, export
lines) goes to stdout, so `eval "$(... env --purpose test)"` works.
"""

from __future__ import annotations

import sys


class LauncherError(Exception):
    """An expected failure with a message meant for the developer (no traceback)."""


class Shutdown(Exception):
    """Raised from the SIGINT/SIGTERM handler so `run`/`test` unwind through their cleanup."""


def log(msg: str) -> None:
    """Progress on stderr, so stdout stays clean for URIs and export lines."""
    print(f"thinkbank: {msg}", file=sys.stderr, flush=True)
