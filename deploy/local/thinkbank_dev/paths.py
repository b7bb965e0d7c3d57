"""Where the launcher keeps its state: every path under `<repo>/.data/` is named here, once.

Nothing here creates anything; the modules that write these paths own that.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# deploy/local/thinkbank_dev/paths.py → the repository root is three levels up.
REPO = Path(__file__).resolve().parents[3]
# The entry point that the README, the Makefile, CI and other scripts call.
SCRIPT = REPO / "deploy" / "local" / "thinkbank_dev.py"
DATA = REPO / ".data"
VENV = DATA / "venv"
RUN_DIR = DATA / "run"
LOG_DIR = DATA / "logs"
OBJECT_DIR = DATA / "objects"
REQUIREMENTS = {
    "base": REPO / "deploy" / "local" / "requirements.txt",
    "test": REPO / "deploy" / "local" / "requirements-test.txt",
}
STAMP = VENV / "thinkbank-setup.json"
SETUP_LOCK = DATA / "setup.lock"
SECRETS_FILE = DATA / "secrets.json"
ADMIN_KEY_FILE = DATA / "admin-key"
# The browser tests' node project (services/gateway/tests/ui_browser.rs runs it).
UI_TEST_DIR = REPO / "tests" / "ui"

# One PostgreSQL cluster per purpose, so tests never touch the data of `run`.
PURPOSES = ("run", "test")


def pg_dir(purpose: str) -> Path:
    """The data directory of the purpose's PostgreSQL cluster."""
    return DATA / f"pg-{purpose}"


def pid_file(name: str) -> Path:
    """Where `run` records the pid of `name` (launcher, worker, gateway)."""
    return RUN_DIR / f"{name}.pid"


def log_file(name: str) -> Path:
    """The log of a service started by `run`."""
    return LOG_DIR / f"{name}.log"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def rel(path: Path) -> str:
    """Show paths inside the repo relative to it: shorter, and the same on every machine."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def file_hash(path: Path) -> str:
    """sha256 of a lock file, recorded in stamps so that editing the file reinstalls."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
