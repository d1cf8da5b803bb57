"""Plan signatures: an HMAC-SHA256 over the whole plan (expiry included) with a key kept outside it.

The key is `CIVICQ_PLAN_KEY` (for CI and for runners on several hosts), else a random key generated
once into `.civicq-ops/plan.key` (mode 0600). A plan file edited by hand fails its signature and is
refused before anything runs; a leaked key still meets apply's re-derivation of every step.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

from civicq_ops.core.errors import ConfigError, PlanRefused

PREFIX = "hmac-sha256:"
KEY_ENV = "CIVICQ_PLAN_KEY"
KEY_FILE = "plan.key"


def plan_key(project) -> bytes:
    """The signing key: the environment's, else the project's key file (created on first use)."""
    from_env = project.env.get(KEY_ENV)
    if from_env:
        if len(from_env) < 16:
            raise ConfigError(f"{KEY_ENV} is too short: use at least 16 random characters")
        return from_env.encode()
    path = Path(project.state_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{path}: the plan signing key is readable by others (mode {oct(mode & 0o777)}): "
                              f"chmod 600 {path}") from None
        key = path.read_text().strip()
        if len(key) < 32:
            raise ConfigError(f"{path}: not a plan signing key (remove it to generate a new one)") from None
        return key.encode()
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key.encode()


def _canonical(data: dict) -> bytes:
    body = {k: v for k, v in data.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True).encode()


def sign(data: dict, key: bytes) -> str:
    return PREFIX + hmac.new(key, _canonical(data), hashlib.sha256).hexdigest()


def verify(data: dict, key: bytes, where: str) -> None:
    """Refuse (exit 5) a plan that is unsigned or whose signature does not match its content."""
    signature = data.get("signature")
    if not signature:
        raise PlanRefused(f"{where}: the plan is not signed: make it with `civicq-ops plan -o FILE`")
    if not isinstance(signature, str) or not hmac.compare_digest(signature, sign(data, key)):
        raise PlanRefused(f"{where}: the plan's signature does not match its content (edited by hand, or signed "
                          f"with another key): refusing it; make a new one with `civicq-ops plan -o FILE`")
