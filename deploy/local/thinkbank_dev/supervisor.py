"""Supervision of the services `run` starts: spawn each in its own session with its log file,
echo the logs to the terminal, wait for readiness, notice a death, stop them in order."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

from .cargo import SERVICES
from .console import LauncherError, log
from .paths import REPO, log_file, pid_file, rel
from .process import tail_text, terminate


class LogEcho:
    """Echo new lines of the service logs to the terminal, prefixed like `docker compose`."""

    def __init__(self, paths: Dict[str, Path], enabled: bool):
        self.paths = paths
        self.enabled = enabled
        self.offsets = {name: 0 for name in paths}
        self.width = max(len(n) for n in paths)

    def pump(self) -> None:
        if not self.enabled:
            return
        for name, path in self.paths.items():
            try:
                with path.open("rb") as f:
                    f.seek(self.offsets[name])
                    chunk = f.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1  # only complete lines
            if not end:
                continue
            self.offsets[name] += end
            for line in chunk[:end].decode(errors="replace").splitlines():
                print(f"{name:<{self.width}} | {line}", flush=True)


class Supervisor:
    """Starts the services as children in their own sessions (so a terminal Ctrl-C reaches only
    the launcher, which then stops them in order: gateway, worker, then PostgreSQL)."""

    def __init__(self) -> None:
        self.procs: Dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, binary: Path, env: Dict[str, str]) -> None:
        log_path = log_file(name)
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [str(binary)], cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.procs[name] = proc
        pid_file(name).write_text(f"{proc.pid}\n")
        log(f"started {name} (pid {proc.pid}, log {rel(log_path)})")

    def exited(self) -> Optional[Tuple[str, int]]:
        for name, proc in self.procs.items():
            rc = proc.poll()
            if rc is not None:
                return name, rc
        return None

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                log(f"stopping {name} (pid {proc.pid}) ...")
                terminate(proc.pid, name, child=proc)
            pid_file(name).unlink(missing_ok=True)


def service_log_tails(lines: int = 30) -> str:
    return "\n".join(
        f"--- last lines of {rel(log_file(n))} ---\n{tail_text(log_file(n), lines)}"
        for n, _ in SERVICES
    )


def wait_ready(url: str, sup: Supervisor, echo: LogEcho, timeout: float) -> None:
    """Poll the gateway's /readyz until 200; fail fast if a service dies meanwhile."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore http_proxy
    deadline = time.monotonic() + timeout
    while True:
        echo.pump()
        check_alive(sup, echo)
        try:
            with opener.open(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            echo.pump()
            raise LauncherError(f"{url} did not return 200 within {timeout:.0f}s\n{service_log_tails()}")
        time.sleep(0.5)


def check_alive(sup: Supervisor, echo: LogEcho) -> None:
    dead = sup.exited()
    if dead:
        echo.pump()
        name, rc = dead
        raise LauncherError(f"{name} exited with code {rc}\n{service_log_tails()}")
