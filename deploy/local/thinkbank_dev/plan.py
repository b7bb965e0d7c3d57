"""What `run` will start: the listen addresses, each service's environment and the readiness
URL, computed from the developer's environment (anything already exported wins)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional

from .console import LauncherError
from .credentials import local_secrets
from .paths import OBJECT_DIR
from .provision import Tools

DEFAULT_WORKER_PORT = 50051
DEFAULT_GATEWAY_PORT = 8080
READY_TIMEOUT_S = 120


def env_int(var: str, default: int, maximum: int = 65535, what: str = "a port number",
            environ: Mapping[str, str] = os.environ) -> int:
    """A positive integer from the environment, else `default`; a clear error if malformed."""
    raw = environ.get(var)
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


def plan_services(tools: Tools, user: Mapping[str, str],
                  load_secrets: Callable[[], Mapping[str, str]]) -> RunPlan:
    """Compute service environments from the user's environment and the local secrets.

    DATABASE_URL (or THINKBANK_DATABASE_URL) means "use my database": no embedded cluster.
    The secrets are loaded only once the ports are known to be valid, so a mistyped port does
    not make the secrets (and with them the first run's one-time admin key banner).
    """
    external_db = user.get("THINKBANK_DATABASE_URL") or user.get("DATABASE_URL")
    worker_port = env_int("THINKBANK_WORKER_PORT", DEFAULT_WORKER_PORT, environ=user)
    gateway_port = env_int("THINKBANK_GATEWAY_PORT", DEFAULT_GATEWAY_PORT, environ=user)
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
    secrets = load_secrets()
    worker_defaults["THINKBANK_INTERNAL_TOKEN"] = secrets["THINKBANK_INTERNAL_TOKEN"]
    gateway_defaults.update(secrets)
    base_url = local_url(gateway_listen)
    return RunPlan(
        worker_env={**worker_defaults, **user},
        gateway_env={**gateway_defaults, **user},
        external_db=external_db,
        ready_url=f"{base_url}/readyz",
        base_url=base_url,
        ready_timeout=float(env_int("THINKBANK_READY_TIMEOUT", READY_TIMEOUT_S, 86400, "seconds", user)),
    )


def plan_run(tools: Tools) -> RunPlan:
    """The plan for this shell's environment; makes the local secrets on first use."""
    return plan_services(tools, os.environ, lambda: local_secrets()[0])
