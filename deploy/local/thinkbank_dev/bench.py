"""`bench NAME`: one benchmark binary of thinkbank-bench (release build) against the `test`
cluster; it prints figures and writes bench/results/NAME.json. Never part of `make test`."""

from __future__ import annotations

import argparse
import os
from typing import List

from .cargo import require_cargo
from .console import Shutdown, log
from .postgres import pg_running, pg_start, pg_stop
from .process import ignore_signals, install_signal_handlers, run_step
from .provision import setup
from .testing import test_env


def bench_command(cargo: str, name: str, extra: List[str]) -> List[str]:
    return [cargo, "run", "--release", "-p", "thinkbank-bench", "--bin", f"bench-{name}", "--", *extra]


def cmd_bench(args: argparse.Namespace) -> int:
    cargo = require_cargo()
    tools = setup(with_test=True)
    owns_pg = pg_running("test") is None
    install_signal_handlers()
    try:
        uri = pg_start(tools, "test")
        env = {**os.environ, **test_env(tools, uri)}
        return run_step(f"bench {args.name}", bench_command(cargo, args.name, args.extra), env)
    except Shutdown as sig:
        log(f"{sig}: aborting the benchmark")
        return 130
    finally:
        ignore_signals()
        if owns_pg:
            pg_stop("test")
