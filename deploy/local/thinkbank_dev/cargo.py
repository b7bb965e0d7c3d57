"""`build`: cargo itself, where it puts artifacts, and the release build of the two services
(plus the `thinkbank` CLI) whose binaries `run` supervises."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from .console import LauncherError
from .paths import REPO
from .process import run_step

# The two services `run` builds and supervises, in start order (stopped in reverse):
# (name used for logs and pid files, cargo package = binary name).
SERVICES = (("worker", "thinkbank-ai-worker"), ("gateway", "thinkbank-gateway"))


def require_cargo() -> str:
    cargo = shutil.which("cargo")
    if not cargo:
        raise LauncherError("cargo not found on PATH: install Rust with rustup (https://rustup.rs)")
    return cargo


def target_dir_from(metadata_rc: int, metadata_json: str, environ: Mapping[str, str]) -> Path:
    """Cargo's artifact directory from `cargo metadata`; if that failed, what cargo would use
    without config files (CARGO_TARGET_DIR, else <repo>/target)."""
    if metadata_rc == 0:
        return Path(json.loads(metadata_json)["target_directory"])
    env_dir = environ.get("CARGO_TARGET_DIR")
    return Path(env_dir) if env_dir else REPO / "target"


def target_dir() -> Path:
    """Where cargo puts artifacts: asks cargo, so CARGO_TARGET_DIR and .cargo/config count."""
    res = subprocess.run(
        [require_cargo(), "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, capture_output=True, text=True,
    )
    return target_dir_from(res.returncode, res.stdout, os.environ)


def build_command(cargo: str) -> List[str]:
    cmd = [cargo, "build", "--release"]
    for _, package in SERVICES:
        cmd += ["-p", package]
    cmd += ["-p", "thinkbank-cli"]  # the `thinkbank` client, for bulk ingest
    return cmd


def release_binaries(target: Path) -> Dict[str, Path]:
    """{service: binary path} in a cargo target directory's release profile."""
    return {name: target / "release" / package for name, package in SERVICES}


def build(skip: bool = False) -> Dict[str, Path]:
    """Release-build both services; return {service: binary path}."""
    if not skip and run_step("build", build_command(require_cargo())) != 0:
        raise LauncherError("cargo build failed (see above)")
    bins = release_binaries(target_dir())
    for name, path in bins.items():
        if not path.is_file():
            raise LauncherError(f"{name} binary {path} does not exist (build it: make build)")
    return bins


def cmd_build(_args: Optional[argparse.Namespace]) -> int:
    for name, path in build().items():
        print(f"{name}: {path}")
    return 0
