"""Shared fixtures for the launcher tests: a Tools value, a silenced stderr, the /proc skip."""

from __future__ import annotations

import contextlib
import io
import unittest
from pathlib import Path

from thinkbank_dev.provision import Tools


def fake_tools(grpcurl: bool = True) -> Tools:
    return Tools(
        python=Path("/venv/bin/python"),
        model_dir=Path("/models/minilm"),
        pg_bin=Path("/pg/bin"),
        grpcurl=Path("/tools/grpcurl") if grpcurl else None,
    )


def quiet_stderr() -> contextlib.redirect_stderr:
    """Swallow the launcher's progress lines (log() writes to sys.stderr at call time)."""
    return contextlib.redirect_stderr(io.StringIO())


# Without /proc (macOS) the launcher trusts kill(0): it cannot tell zombies or recycled pids.
needs_proc = unittest.skipUnless(Path("/proc/self").exists(), "needs /proc")
