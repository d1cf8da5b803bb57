"""Remembered run-time SQL verdicts: a run judges each check's final SQL again (a `| sql_unsafe`
value or a `--param` could bring in what `validate` refused in the template), which costs pglast's
import and a walk of every parse tree (~0.1 s of a run of the shipped catalogue). The same text
always gets the same verdict from the same civicq-ops, so the SHA-256 of each final text judged
safe is kept in `.civicq-ops/catalog-cache/run-verdicts.json`, under the validator stamp of the
catalogue cache (any edit of the code that judges is a new, empty set). Only safe texts are kept:
a refused one is judged, and refused, every time. An unreadable or unwritable file is only a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from civicq_ops.catalog.cache import validator_stamp
from civicq_ops.core.fileio import write_atomic

FILE = "run-verdicts.json"
LIMIT = 20_000  # texts kept; past it the set starts again (parameters that change every run)


class VerdictCache:
    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE
        self.stamp = hashlib.sha256(validator_stamp().encode()).hexdigest()[:24]
        self._lock = threading.Lock()
        self._added = False
        try:
            entry = json.loads(self.path.read_text())
            self._safe: set[str] = set(entry["safe"]) if entry.get("stamp") == self.stamp else set()
        except (OSError, ValueError, TypeError, KeyError):
            self._safe = set()

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
            self._added = True

    def save(self) -> None:
        if not self._added:
            return
        with self._lock:
            body = json.dumps({"stamp": self.stamp, "safe": sorted(self._safe)})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, body)
        except OSError:
            pass


def verdicts_in(state_dir: Path) -> VerdictCache | None:
    """The project's remembered verdicts, unless CIVICQ_NO_CATALOG_CACHE is set."""
    return None if os.environ.get("CIVICQ_NO_CATALOG_CACHE") else VerdictCache(state_dir / "catalog-cache")
