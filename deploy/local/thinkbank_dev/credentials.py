"""The local installation's secrets, made once and kept in `.data` (mode 0600): the worker's
internal token, the JWT signing secret, the audit chain's HMAC key and the first admin API key."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Dict, Tuple

from .paths import ADMIN_KEY_FILE, SECRETS_FILE

LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
ALNUM = LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def random_token(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created so: never world-readable in between)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def local_secrets(secrets_file: Path = SECRETS_FILE,
                  admin_key_file: Path = ADMIN_KEY_FILE) -> Tuple[Dict[str, str], bool]:
    """The installation's secrets and whether they were made just now. A secret added by a
    later version (the audit key) is added to an existing file without touching the others."""
    if secrets_file.exists():
        kept = json.loads(secrets_file.read_text())
        if "THINKBANK_AUDIT_KEY" not in kept:
            kept["THINKBANK_AUDIT_KEY"] = random_token(ALNUM, 48)
            write_private(secrets_file, json.dumps(kept, indent=2))
        return kept, False
    made = {
        "THINKBANK_INTERNAL_TOKEN": random_token(ALNUM, 40),
        "THINKBANK_JWT_SECRET": random_token(ALNUM, 48),
        "THINKBANK_AUDIT_KEY": random_token(ALNUM, 48),
        "THINKBANK_BOOTSTRAP_ADMIN_KEY": f"tb_{random_token(LOWER, 12)}_{random_token(ALNUM, 32)}",
    }
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    write_private(secrets_file, json.dumps(made, indent=2))
    write_private(admin_key_file, made["THINKBANK_BOOTSTRAP_ADMIN_KEY"] + "\n")
    return made, True
