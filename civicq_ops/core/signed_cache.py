"""Signed cache files: what civicq-ops remembers between processes (validated catalogues, compiled
templates, SQL verdicts) is read back only when its HMAC-SHA256 matches a key of this user's.

A cache stands in for work a guard did (validation, the SQL judge), so it must not be forgeable
from a project: a `.civicq-ops/` committed to a repository, restored from a CI cache or written by a
pull request's job could otherwise swap a check's SQL or mark a query safe. The key lives outside
any project, in the user's cache folder (`$XDG_CACHE_HOME/civicq-ops/catalog-cache.key`, 0600, in
a 0700 folder), so a file signed with it was written by this user's civicq-ops. A file whose
signature does not match is a miss; without a usable key nothing is cached.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path


def key_file() -> Path | None:
    """The signing key's path: under $XDG_CACHE_HOME when it is absolute (the XDG rule: a relative
    one could put the key inside the project), else ~/.cache; None without a home folder."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no HOME and no passwd entry (a container's arbitrary uid)
            return None
        if not os.path.isabs(base):
            return None
    return Path(base) / "civicq-ops" / "catalog-cache.key"


@lru_cache(maxsize=1)
def secret() -> bytes | None:
    """The signing key, created on first use (0600, published with a hard link: two processes
    starting at once agree on one key); None when it can be neither read nor created."""
    path = key_file()
    if path is None:
        return None
    for _ in range(2):
        try:
            key = path.read_bytes()
            return key if len(key) >= 32 and _private(path) else None
        except FileNotFoundError:
            pass
        except OSError:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_hex(32).encode())
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process published its key first: read that one
            finally:
                tmp.unlink(missing_ok=True)
        except OSError:
            return None
    return None


def _private(path: Path) -> bool:
    """The key is this user's alone: its file and folder are owned by this user, the file readable by
    nobody else and the folder writable by nobody else (a key anyone could read or swap signs
    nothing worth trusting: no cache then)."""
    uid = os.geteuid()
    key, folder = path.stat(), path.parent.stat()
    return key.st_uid == uid and folder.st_uid == uid and not key.st_mode & 0o077 and not folder.st_mode & 0o022


def sign(key: bytes, payload: bytes, purpose: str = "") -> bytes:
    """HMAC-SHA256 of the payload under a purpose label: a file signed for one use (a catalogue
    entry, whose content a project chooses) is never valid for another (compiled code, verdicts)."""
    return hmac.new(key, purpose.encode() + b"\0" + payload, hashlib.sha256).hexdigest().encode()


def private_folder(name: str) -> Path | None:
    """A folder of this user's, beside the key (a machine-wide cache: what it holds depends only on
    civicq-ops and the text it was made from, never on a project); None without a key."""
    path = key_file()
    return None if path is None or secret() is None else path.parent / name


def read_signed(path: Path, purpose: str) -> bytes | None:
    """The payload of a file written by `write_signed` with this user's key, or None (a miss):
    missing, unreadable, truncated, edited, or signed with another key."""
    key = secret()
    if key is None:
        return None
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    mac, _, payload = raw.partition(b"\n")
    return payload if hmac.compare_digest(mac, sign(key, payload, purpose)) else None


def write_signed(path: Path, payload: bytes, purpose: str) -> bool:
    """Replace `path` at once (a reader sees the old file or the new one, never half) with the
    signed payload; False when it cannot be written (a cache that is not written is only a miss)."""
    key = secret()
    if key is None:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(sign(key, payload, purpose) + b"\n" + payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True


STALE_S = 30 * 86400  # another version's store unused this long is removed
_TEMPORARY_S = 3600  # a temporary file this old was left by a process killed while writing


def prune(current: Path) -> None:
    """Remove, beside `current`, the stores of other versions unused for STALE_S and temporary files
    left by a killed writer (one store per version would otherwise accumulate forever)."""
    now = time.time()
    try:
        entries = list(os.scandir(current.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name == current.name or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age > (_TEMPORARY_S if entry.name.startswith(".") else STALE_S):
                os.unlink(entry.path)
        except OSError:
            pass


_PENDING: list[Callable[[], None]] = []


def save_at_exit(save: Callable[[], None]) -> None:
    """Have `flush_pending` call `save` once (a cache with new entries); the CLI flushes as a
    command ends, so one run writes each cache file at most once."""
    if save not in _PENDING:
        _PENDING.append(save)


def flush_pending() -> None:
    while _PENDING:
        try:
            _PENDING.pop(0)()
        except (OSError, ValueError):  # a cache that cannot be saved is a miss next time
            pass
