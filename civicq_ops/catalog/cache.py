"""The validated-catalogue cache: `run checks` and `validate` pay JSON Schema validation and the
semantic checks (Jinja parsing, references, SQL) only when a file changed.

An entry records that one set of files, byte for byte, was validated with these options by this
civicq-ops, and the warnings that gave (a set with errors is never recorded). Its key hashes:
the civicq-ops version and the size and modification time of the code and schemas that validate
(an edited checkout is a new validator), the options (notifiers, today's date: waivers expire,
SQL parsing, tests), and each file's path and SHA-256 of its content. Any change is a miss. The
entry is JSON in `.civicq-ops/catalog-cache/`; an unreadable or unwritable one is only a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path

from civicq_ops import __version__
from civicq_ops.core.diagnostics import Diagnostic
from civicq_ops.core.fileio import write_atomic

_PACKAGE = Path(__file__).resolve().parents[1]
_VALIDATORS = ("catalog", "schemas", "templating")


def validator_stamp() -> str:
    parts = [__version__]
    for folder in _VALIDATORS:
        for f in sorted((_PACKAGE / folder).glob("*")):
            if f.suffix in (".py", ".json"):
                st = f.stat()
                parts.append(f"{folder}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


class CatalogCache:
    """One folder of entries, one per set of options."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, files: list[Path], options: dict) -> tuple[str, str] | None:
        """(entry name, content key), or None when a file cannot be read (loading will say why)."""
        opts = json.dumps({**options, "today": options.get("today") or date.today().isoformat()},
                          sort_keys=True, default=str)
        name = hashlib.sha256(f"{validator_stamp()}\n{opts}".encode()).hexdigest()[:24]
        digest = hashlib.sha256(name.encode())
        for f in files:
            try:
                digest.update(f"{f}\0".encode() + hashlib.sha256(f.read_bytes()).digest())
            except OSError:
                return None
        return name, digest.hexdigest()

    def get(self, key: tuple[str, str] | None) -> list[Diagnostic] | None:
        """The recorded warnings of a validated set, or None (a miss)."""
        if key is None:
            return None
        try:
            entry = json.loads((self.folder / f"{key[0]}.json").read_text())
            if entry.get("version") != __version__ or entry.get("key") != key[1]:
                return None
            return [Diagnostic(**d) for d in entry["diagnostics"]]
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def put(self, key: tuple[str, str] | None, diagnostics: list[Diagnostic]) -> None:
        if key is None:
            return
        entry = {"version": __version__, "key": key[1],
                 "diagnostics": [{"path": d.path, "line": d.line, "col": d.col, "code": d.code, "message": d.message,
                                  "level": d.level, "hint": d.hint} for d in diagnostics]}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.folder / f"{key[0]}.json", json.dumps(entry))
        except OSError:
            pass


def cache_in(state_dir: Path) -> CatalogCache | None:
    """The project's cache, unless CIVICQ_NO_CATALOG_CACHE is set."""
    return None if os.environ.get("CIVICQ_NO_CATALOG_CACHE") else CatalogCache(state_dir / "catalog-cache")
