"""`run`, `stop` and `clean`: start PostgreSQL, the worker and the gateway in the foreground,
stop them from another terminal through their pid files, and delete `.data/`."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import time
import urllib.parse
from typing import Dict, Optional

from .cargo import SERVICES, build
from .console import Shutdown, log
from .paths import ADMIN_KEY_FILE, DATA, LOG_DIR, OBJECT_DIR, RUN_DIR, SECRETS_FILE, log_file, pid_file, rel
from .plan import RunPlan, check_port_free, plan_run
from .postgres import pg_running, pg_start, pg_stop
from .process import (STOP_TIMEOUT_S, ignore_signals, install_signal_handlers, pid_alive, read_pid,
                      terminate, wait_for_exit)
from .provision import setup
from .supervisor import LogEcho, Supervisor, check_alive, wait_ready

# What the launcher's own command line contains, whether started as the thinkbank_dev.py
# script or with `python3 -m thinkbank_dev`: a recycled pid in a stale pid file fails it.
LAUNCHER_MARK = "thinkbank_dev"


def running_services() -> Dict[str, int]:
    """Live pids of a previous `run` (launcher and services), from .data/run/*.pid."""
    found = {}
    pid = read_pid("launcher", LAUNCHER_MARK)
    if pid:
        found["launcher"] = pid
    for name, package in SERVICES:
        pid = read_pid(name, package)
        if pid:
            found[name] = pid
    return found


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def banner(plan: RunPlan, db: str, new_key: Optional[str]) -> str:
    """What `run` prints once the gateway is ready: where it is and how to use it."""
    url = plan.base_url
    db = redact(db)
    key_line = (
        f"  admin key: {new_key}   (shown once; also in {rel(ADMIN_KEY_FILE)}, mode 0600)\n"
        if new_key
        else f"  admin key: in {rel(ADMIN_KEY_FILE)}\n"
    )
    return (
        f"\nthinkbank is up: {url}\n"
        f"{key_line}"
        f"  database: {db}\n"
        f"  logs:     {rel(LOG_DIR)}/worker.log, {rel(LOG_DIR)}/gateway.log\n"
        f"  try:      export THINKBANK_API_KEY=$(cat {rel(ADMIN_KEY_FILE)})\n"
        f"            curl -s -H \"Authorization: Bearer $THINKBANK_API_KEY\" "
        f"-F file=@README.md -F wait=true {url}/api/v1/assets\n"
        f"  stop:     Ctrl-C here, or `make stop` from another terminal\n"
    )


def cmd_run(args: argparse.Namespace) -> int:
    running = running_services()
    if running:
        pids = ", ".join(f"{n} pid {p}" for n, p in running.items())
        log(f"already running ({pids}); stop it first with `make stop`")
        return 1
    tools = setup(with_test=False)
    first_run = not SECRETS_FILE.exists()
    plan = plan_run(tools)
    new_key = plan.gateway_env["THINKBANK_BOOTSTRAP_ADMIN_KEY"] if first_run else None
    bins = build(skip=args.no_build)
    check_port_free(plan.worker_env["THINKBANK_WORKER_LISTEN"], "THINKBANK_WORKER_PORT")
    check_port_free(plan.worker_env["THINKBANK_WORKER_ADMIN_LISTEN"], "THINKBANK_WORKER_ADMIN_LISTEN")
    check_port_free(plan.gateway_env["THINKBANK_GATEWAY_LISTEN"], "THINKBANK_GATEWAY_PORT")
    for d in (RUN_DIR, LOG_DIR, OBJECT_DIR):
        d.mkdir(parents=True, exist_ok=True)

    sup = Supervisor()
    echo = LogEcho({name: log_file(name) for name, _ in SERVICES}, enabled=not args.quiet)
    # Stop the cluster at the end only if this run starts it (decided up front, so a Ctrl-C
    # in the middle of starting it still stops it).
    owns_pg = not plan.external_db and pg_running("run") is None
    install_signal_handlers()
    pid_file("launcher").write_text(f"{os.getpid()}\n")
    try:
        if plan.external_db:
            log("using the database from DATABASE_URL / THINKBANK_DATABASE_URL (no embedded PostgreSQL)")
            db = plan.external_db
        else:
            db = pg_start(tools, "run")
            plan.worker_env.setdefault("THINKBANK_DATABASE_URL", db)
            plan.gateway_env.setdefault("THINKBANK_DATABASE_URL", db)
        for name, _ in SERVICES:
            sup.spawn(name, bins[name], plan.worker_env if name == "worker" else plan.gateway_env)
        log(f"waiting for {plan.ready_url} ...")
        wait_ready(plan.ready_url, sup, echo, plan.ready_timeout)
        print(banner(plan, db, new_key), flush=True)
        while True:
            echo.pump()
            check_alive(sup, echo)
            time.sleep(0.3)
    except Shutdown as sig:
        log(f"{sig}: shutting down ...")
        return 0
    finally:
        ignore_signals()
        echo.pump()
        sup.stop_all()
        echo.pump()
        if owns_pg:
            pg_stop("run")
        pid_file("launcher").unlink(missing_ok=True)
        log("stopped")


def cmd_stop(_args: Optional[argparse.Namespace]) -> int:
    """Stop a `run` from anywhere: ask its launcher to shut down in order, then sweep up."""
    running = running_services()
    launcher = running.pop("launcher", None)
    if launcher:
        log(f"asking the launcher (pid {launcher}) to stop ...")
        os.kill(launcher, signal.SIGTERM)
        if not wait_for_exit(launcher, 3 * STOP_TIMEOUT_S + 60):
            log("the launcher did not exit in time; stopping its services directly")
        running = {n: p for n, p in running.items() if pid_alive(p)}
    for name in reversed([n for n, _ in SERVICES]):
        if name in running:
            log(f"stopping {name} (pid {running[name]}) ...")
            terminate(running[name], name)
    for name in ("launcher", *[n for n, _ in SERVICES]):
        pid_file(name).unlink(missing_ok=True)
    stopped_pg = pg_stop("run")
    if not (launcher or running or stopped_pg):
        log("nothing was running")
    return 0


def cmd_clean(args: Optional[argparse.Namespace]) -> int:
    """Stop everything that uses .data, then delete it (clusters, venv, logs, objects)."""
    cmd_stop(args)
    pg_stop("test")
    if DATA.exists():
        log(f"removing {rel(DATA)}")
        shutil.rmtree(DATA)
    return 0
