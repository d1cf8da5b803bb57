"""Remembered run-time SQL verdicts: a run judges each check's final SQL again (a `| sql_unsafe`
value or a `--param` could bring in what `validate` refused in the template), which costs a walk of
every parse tree. The same text always gets the same verdict from the same code, so a process
(`watch`, a fleet worker, a test session) remembers the SHA-256 of each text it judged safe and
does not parse it again. Only safe texts are kept: a refused one is judged, and refused, each time.

Never on disk: a file of trusted texts under .civicq-ops/ (a restored CI cache, a shared folder)
could be edited to let a query the judge refuses run, and a READ ONLY transaction does not stop
every side effect (pg_terminate_backend, for one). The judge is a guard, so its memory lives and
dies with the process that judged.
"""

from __future__ import annotations

import hashlib
import os
import threading

LIMIT = 20_000  # texts kept; past it the set starts again (parameters that change every run)


class VerdictCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._safe: set[str] = set()

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    def known_safe(self, text: str) -> bool:
        return self._key(text) in self._safe

    def add_safe(self, text: str) -> None:
        with self._lock:
            if len(self._safe) >= LIMIT:
                self._safe.clear()
            self._safe.add(self._key(text))


_PROCESS = VerdictCache()


def verdicts_in() -> VerdictCache | None:
    """This process's remembered verdicts, unless CIVICQ_NO_CATALOG_CACHE is set."""
    return None if os.environ.get("CIVICQ_NO_CATALOG_CACHE") else _PROCESS
