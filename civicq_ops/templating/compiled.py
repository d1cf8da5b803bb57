"""Compiled templates kept between processes.

Jinja turns each template into Python code (lex, parse, generate source, `compile()`): ~0.5 ms a
template, 40-90 of them in a run of the shipped catalogue, about a sixth of a `run checks` on a
small database. The code depends only on the template's text, the environment
(templating/render.py) and the versions of Jinja, Python and civicq-ops, so one store per version
serves every project.

The store holds code that will run, so it is read only when signed with this user's key
(core/signed_cache.py): code from a project's folder, a CI cache or another user never loads. That
is the trust Python gives its own `__pycache__`, plus a signature. The sandbox is not bypassed: it
acts while the code runs (every attribute and call goes through the environment), and the code is
exactly what Jinja generated from the text.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from types import CodeType

from civicq_ops import __version__
from civicq_ops.core.signed_cache import private_folder, prune, read_signed, save_at_exit, write_signed

LIMIT = 5_000  # templates kept; past it the store starts again (templates generated per run)


class CompiledStore:
    """Template text -> code object, loaded from its file on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stored: dict[str, bytes] | None = None
        self._new: dict[str, bytes] = {}

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def _load(self) -> dict[str, bytes]:
        if self._stored is None:
            payload = read_signed(self.path, "templates")
            stored: dict[str, bytes] = {}
            if payload is not None:
                try:
                    loaded = marshal.loads(payload)
                    if isinstance(loaded, dict):
                        stored = loaded
                except (ValueError, EOFError, TypeError):
                    stored = {}
            self._stored = stored
        return self._stored

    def code(self, text: str) -> CodeType | None:
        key = self._key(text)
        with self._lock:
            data = self._new.get(key) or self._load().get(key)
        if not isinstance(data, bytes):
            return None
        try:
            code = marshal.loads(data)
        except (ValueError, EOFError, TypeError):
            return None
        return code if isinstance(code, CodeType) else None

    def remember(self, text: str, code: CodeType) -> None:
        with self._lock:
            self._new[self._key(text)] = marshal.dumps(code)
        save_at_exit(self.save)

    def save(self) -> None:
        """Write the stored templates and the new ones (the file is replaced at once)."""
        with self._lock:
            if not self._new:
                return
            merged = dict(self._load())
            if len(merged) + len(self._new) > LIMIT:
                merged = {}
            merged.update(self._new)
            self._new.clear()
            self._stored = merged
        if write_signed(self.path, marshal.dumps(merged), "templates"):
            prune(self.path)


@lru_cache(maxsize=1)
def compiled_store() -> CompiledStore | None:
    """This user's store for this civicq-ops, Jinja and Python; None without a signing key or with
    CIVICQ_NO_CATALOG_CACHE set."""
    if os.environ.get("CIVICQ_NO_CATALOG_CACHE"):
        return None
    folder = private_folder("templates")
    if folder is None:
        return None
    import jinja2

    here = Path(__file__).resolve().parent
    # The templating code, and core/units.py whose filters' decorators are compiled into the code.
    sources = [*sorted(here.glob("*.py")), here.parent / "core" / "units.py"]
    code = [f"{f}:{st.st_size}:{st.st_mtime_ns}" for f in sources for st in [f.stat()]]
    stamp = "\n".join([__version__, sys.version, jinja2.__version__, str(marshal.version), *code])
    return CompiledStore(folder / f"{hashlib.sha256(stamp.encode()).hexdigest()[:24]}.bin")
