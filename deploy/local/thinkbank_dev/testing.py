"""`lint` and `test`: what CI runs. The launcher's own unit tests, cargo fmt --check, clippy
with warnings denied and the compose check, then every Rust test (nextest when installed)
against the `test` cluster, with the environment the tests read (`test_env`)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

from .cargo import require_cargo
from .console import Shutdown, log
from .paths import REPO, pg_dir, rel
from .postgres import pg_running, pg_start, pg_stop
from .process import ignore_signals, install_signal_handlers, run_step
from .provision import Tools, setup
from .system import chromium_path

# (title, cargo arguments, hint shown when the step fails)
LINT_STEPS = (
    ("format", ["fmt", "--all", "--check"], "run `make fmt` to fix"),
    ("clippy", ["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], None),
)
LAUNCHER_DIR = REPO / "deploy" / "local"


def lint_steps(cargo: str, python: str) -> List[Tuple[str, List[str], Optional[str]]]:
    """The lint steps in order, as (title, command line, hint on failure)."""
    steps = [(title, [cargo, *args], hint) for title, args, hint in LINT_STEPS]
    # The compose file cannot run here (no Docker engine); check it statically instead.
    steps.append(("compose check", [python, str(REPO / "deploy/docker/check_compose.py")], None))
    return steps


def lint() -> int:
    for title, cmd, hint in lint_steps(require_cargo(), sys.executable):
        rc = run_step(title, cmd)
        if rc != 0:
            log(f"FAILED: {title} (exit {rc})" + (f"; {hint}" if hint else ""))
            return rc
    return 0


def launcher_unit_test_command(python: str) -> List[str]:
    """stdlib unittest over deploy/local/tests, with deploy/local on sys.path for the package."""
    return [python, "-m", "unittest", "discover", "-s", str(LAUNCHER_DIR / "tests"), "-t", str(LAUNCHER_DIR)]


def test_env(tools: Tools, uri: str) -> Dict[str, str]:
    """The contract between this launcher and the Rust tests (and the developer's shell)."""
    return {
        "THINKBANK_TEST_DATABASE_URL": uri,
        "THINKBANK_EMBED_MODEL_DIR": str(tools.model_dir),
        "THINKBANK_TEST_PYTHON": str(tools.python),
        "THINKBANK_GRPCURL": str(tools.grpcurl),
        "THINKBANK_REPO_ROOT": str(REPO),
        "THINKBANK_CHROMIUM": chromium_path() or "chromium",
    }


def test_command(cargo: str, extra: List[str], nextest: bool) -> Tuple[str, List[str]]:
    """The test step's title and command line: nextest when installed, else cargo test."""
    if nextest:
        return "tests (nextest)", [cargo, "nextest", "run", "--workspace", "--no-fail-fast", *extra]
    return "tests (cargo test)", [cargo, "test", "--workspace", "--no-fail-fast", *extra]


def test_runner(cargo: str, extra: List[str]) -> Tuple[str, List[str]]:
    nextest = subprocess.run([cargo, "nextest", "--version"], capture_output=True).returncode == 0
    if not nextest:
        log("cargo-nextest not found; falling back to cargo test (install: cargo install cargo-nextest)")
    return test_command(cargo, extra, nextest)


def cmd_test(args: argparse.Namespace) -> int:
    """The launcher's unit tests, fmt check, clippy, then all tests against the test cluster;
    fail fast, exit with the failing step's code. The test cluster is stopped at the end if
    this command started it (one started by `env --purpose test` for a developer's shell is
    left alone)."""
    cargo = require_cargo()
    title = "launcher unit tests"
    rc = run_step(title, launcher_unit_test_command(sys.executable))
    if rc != 0:
        log(f"FAILED: {title} (exit {rc})")
        return rc
    tools = setup(with_test=True)
    rc = lint()
    if rc != 0:
        return rc
    external = os.environ.get("THINKBANK_TEST_DATABASE_URL")
    owns_pg = not external and pg_running("test") is None
    install_signal_handlers()
    try:
        if external:
            log("using THINKBANK_TEST_DATABASE_URL from the environment (no embedded PostgreSQL)")
            uri = external
        else:
            uri = pg_start(tools, "test")
        env = {**os.environ, **test_env(tools, uri)}
        title, cmd = test_runner(cargo, args.extra)
        rc = run_step(title, cmd, env)
        if rc != 0:
            log(f"FAILED: {title} (exit {rc})")
        return rc
    except Shutdown as sig:
        log(f"{sig}: aborting tests")
        return 130
    finally:
        ignore_signals()
        if owns_pg:
            pg_stop("test")
        elif not external:
            log(f"leaving {rel(pg_dir('test'))} running: it was running before this command")


def cmd_lint(_args: Optional[argparse.Namespace]) -> int:
    return lint()
