"""Processes: liveness checks that survive recycled pids, graceful termination, visible steps
and the signal handling that lets `run`/`test`/`bench` clean up after Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

from .console import LauncherError, Shutdown, log
from .paths import REPO, pid_file

STOP_TIMEOUT_S = 10.0


def pid_alive(pid: int, expect: Optional[str] = None) -> bool:
    """True if pid runs and (when /proc exists) its command line contains `expect`.

    The command-line check guards against a recycled pid from a stale pid file.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else (e.g. postgres run as embedded_postgres)
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True  # no /proc (macOS): trust kill(0)
    try:
        # A zombie (exited, not yet reaped by its parent) still answers kill(0).
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True
    return expect is None or expect.encode() in cmdline


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def read_pid(name: str, expect: str) -> Optional[int]:
    """The live pid recorded for `name`, or None (missing, stale or recycled pid file)."""
    try:
        pid = int(pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid, expect) else None


def terminate(pid: int, label: str, timeout: float = STOP_TIMEOUT_S,
              child: Optional[subprocess.Popen] = None) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time.

    For our own child pass its Popen: it must be reaped with wait(), or it lingers as a zombie.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if exited_within(pid, timeout, child):
        return
    log(f"{label} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing it")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    exited_within(pid, 5.0, child)


def exited_within(pid: int, timeout: float, child: Optional[subprocess.Popen]) -> bool:
    if child is None:
        return wait_for_exit(pid, timeout)
    try:
        child.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def tail_text(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def install_signal_handlers() -> None:
    """Turn SIGINT/SIGTERM into a Shutdown exception once; later signals are ignored so the
    cleanup that the exception triggers is not itself interrupted."""

    def handler(signum, _frame):
        ignore_signals()
        raise Shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def ignore_signals() -> None:
    """Ignore SIGINT/SIGTERM from here on: a cleanup in progress must run to its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_step(title: str, cmd: List[str], env: Optional[Dict[str, str]] = None) -> int:
    """Run one visible step from the repo root; return its exit code."""
    log(f"==> {title}: {shlex.join(cmd)}")
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    except FileNotFoundError as err:
        raise LauncherError(f"{title}: {err}") from None
    try:
        rc = proc.wait()
    except BaseException:
        # SIGTERM/Ctrl-C reached us: let the step (e.g. nextest) stop its own children
        # instead of being SIGKILLed and leaving test processes behind.
        if proc.poll() is None:
            terminate(proc.pid, title, child=proc)
        raise
    if rc == 0:
        log(f"    {title} ok ({time.monotonic() - start:.1f}s)")
    return rc
