"""`env`: start a purpose's cluster and print `export` lines for a developer's shell, so
`eval "$(python3 deploy/local/thinkbank_dev.py env --purpose test)"` makes `cargo nextest run`
work by hand. Only the export lines go to stdout."""

from __future__ import annotations

import argparse
import shlex
from typing import Dict, List, Mapping

from .console import log
from .paths import OBJECT_DIR, SCRIPT, rel
from .postgres import pg_start
from .provision import Tools, setup
from .testing import test_env


def purpose_env(purpose: str, tools: Tools, uri: str) -> Dict[str, str]:
    """What a shell needs for the purpose: the tests' contract, or what the services read."""
    if purpose == "test":
        return test_env(tools, uri)
    return {
        "THINKBANK_DATABASE_URL": uri,
        "THINKBANK_EMBED_MODEL_DIR": str(tools.model_dir),
        "THINKBANK_OBJECT_STORE_DIR": str(OBJECT_DIR),
    }


def export_lines(env: Mapping[str, str]) -> List[str]:
    """POSIX shell `export` lines, values quoted so eval reads them back unchanged."""
    return [f"export {key}={shlex.quote(value)}" for key, value in env.items()]


def cmd_env(args: argparse.Namespace) -> int:
    tools = setup(with_test=args.purpose == "test", quiet=True)
    uri = pg_start(tools, args.purpose)
    for line in export_lines(purpose_env(args.purpose, tools, uri)):
        print(line)
    log(f"stop the cluster later with: python3 {rel(SCRIPT)} pg stop --purpose {args.purpose}")
    return 0
