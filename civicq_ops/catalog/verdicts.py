"""Remembered run-time SQL verdicts: a run judges each check's final SQL again (a `| sql_unsafe`
value or a `--param` could bring in what `validate` refused in the template), which costs importing
the parser and a walk of every parse tree. The same text always gets the same verdict from the same
code, so civicq-ops remembers the SHA-256 of each text it judged safe and does not parse it again:
in the process (`watch`, a fleet worker, a test session), and between commands in a file signed
with this user's key (core/signed_cache.py), named after the judge's code and the parser's version.
Only safe texts are kept: a refused one is judged, and refused, each time.

Never in the project: a file of trusted texts under .civicq-ops/ (a restored CI cache, a shared
folder) could be edited to let a query the judge refuses run, and a READ ONLY transaction does not
stop every side effect (pg_terminate_backend, for one). A file that is not signed with this user's
key is never read, so what it holds was judged by this user's civicq-ops.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from civicq_ops.core.signed_cache import private_folder, prune, read_signed, save_at_exit, write_signed

LIMIT = 20_000  # texts kept; past it the set starts again (parameters that change every run)
_DIGEST = 32


class VerdictCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._safe: set[bytes] | None = None if path is not None else set()
        self._new = False

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def _known(self) -> set[bytes]:
        if self._safe is None:
            payload = read_signed(self.path, "verdicts") if self.path is not None else None
            data = payload or b""
            self._safe = {data[i:i + _DIGEST] for i in range(0, len(data) - len(data) % _DIGEST, _DIGEST)}
        return self._safe

    def known_safe(self, text: str) -> bool:
        key = self._key(text)
        with self._lock:
            return key in self._known()

    def add_safe(self, text: str) -> None:
        key = self._key(text)
        with self._lock:
            safe = self._known()
            if key in safe:
                return
            if len(safe) >= LIMIT:
                safe.clear()
            safe.add(key)
            self._new = True
        if self.path is not None:
            save_at_exit(self.save)

    def save(self) -> None:
        with self._lock:
            if not self._new or self.path is None:
                return
            payload = b"".join(sorted(self._known()))
            self._new = False
        if write_signed(self.path, payload, "verdicts"):
            prune(self.path)


_PROCESS: VerdictCache | None = None
_PROCESS_LOCK = threading.Lock()


def verdicts_in() -> VerdictCache | None:
    """This user's remembered verdicts (this process's only, without a signing key), unless
    CIVICQ_NO_CATALOG_CACHE is set."""
    global _PROCESS
    if os.environ.get("CIVICQ_NO_CATALOG_CACHE"):
        return None
    with _PROCESS_LOCK:
        if _PROCESS is None:
            from civicq_ops.catalog.cache import validator_stamp

            folder = private_folder("verdicts")
            name = hashlib.sha256(validator_stamp().encode()).hexdigest()[:24]
            _PROCESS = VerdictCache(folder / f"{name}.bin" if folder is not None else None)
        return _PROCESS
