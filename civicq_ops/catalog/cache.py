"""The validated-catalogue cache: `run checks`, `checks list` and `validate` pay YAML parsing, JSON
Schema validation and the semantic checks (Jinja parsing, references, SQL) only when a file changed.

An entry records that one set of files, byte for byte, was validated with these options by this
civicq-ops, the warnings that gave (a set with errors is never recorded) and the parsed documents
with the position of every value (JSON: reading it is ~10x faster than parsing the YAML again).
Its key hashes: the civicq-ops version and the size and modification time of the code and schemas
that validate (an edited checkout is a new validator), the options (notifiers, today's date:
waivers expire, SQL parsing, tests), and each file's path and SHA-256 of its content. Any change is
a miss. The entry is JSON in `.civicq-ops/catalog-cache/`; an unreadable or unwritable one is only
a miss.

An entry stands in for the files, so it must not be forgeable from the project: a `.civicq-ops/`
committed to a repository (or written by a pull request's CI job) could otherwise swap a check's
SQL, or mark an invalid file valid. Each entry is signed with a key outside the project
(core/signed_cache.py); an entry whose signature does not match is a miss. Without a key, no cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from civicq_ops import __version__
from civicq_ops.core.diagnostics import Diagnostic
from civicq_ops.core.documents import LoadedDocument, read_source
from civicq_ops.core.signed_cache import read_signed, secret, write_signed

_PACKAGE = Path(__file__).resolve().parents[1]
# The code whose output an entry records: validation, templating, the YAML reader and the documents
# it builds, and the libraries under them (found without importing them).
_VALIDATORS = ("catalog", "schemas", "templating")
_READERS = ("core/yamlpos.py", "core/documents.py", "core/diagnostics.py")
_LIBRARIES = ("yaml", "jsonschema", "jinja2", "pglast")


def validator_stamp() -> str:
    return f"{__version__}\n{_code_stamp()}"


@lru_cache(maxsize=1)
def _code_stamp() -> str:
    """Once per process (a command keys the project file and the catalogue): the code it runs does not
    change under it."""
    parts = []
    files = [f for folder in _VALIDATORS for f in sorted((_PACKAGE / folder).glob("*")) if f.suffix in (".py", ".json")]
    files += [_PACKAGE / name for name in _READERS]
    for name in _LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            files.append(Path(spec.origin))
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


class CatalogCache:
    """One folder of entries, one per set of options."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, files: list[Path], options: dict,
            sources: Mapping[Path, bytes | LoadedDocument] | None = None) -> tuple[str, str] | None:
        """(entry name, content key), or None when a file cannot be read (loading will say why).
        `sources`: the bytes the caller read and will parse, so that an entry always records the
        documents of the very bytes it hashes (a file saved between two reads cannot pair them)."""
        opts = json.dumps({**options, "today": options.get("today") or date.today().isoformat()},
                          sort_keys=True, default=str)
        name = hashlib.sha256(f"{validator_stamp()}\n{opts}".encode()).hexdigest()[:24]
        digest = hashlib.sha256(name.encode())
        for f in files:
            data = sources[f] if sources is not None else read_source(f)
            if not isinstance(data, bytes):
                return None
            digest.update(f"{f}\0".encode() + hashlib.sha256(data).digest())
        return name, digest.hexdigest()

    def get(self, key: tuple[str, str] | None, documents: bool = True) -> CachedSet | None:
        """The recorded warnings (and with `documents`, the documents) of a validated set, or None
        (a miss). The documents are the entry's last line, read only when asked for."""
        if key is None:
            return None
        payload = read_signed(self.folder / f"{key[0]}.json", "catalog")
        if payload is None:
            return None
        try:
            head, _, docs = payload.partition(b"\n")
            entry = json.loads(head)
            if entry.get("version") != __version__ or entry.get("key") != key[1]:
                return None
            stored = json.loads(docs) if documents and docs else None
            return CachedSet([Diagnostic(**d) for d in entry["diagnostics"]],
                             {d["path"]: _document(d) for d in stored} if stored is not None else None)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def put(self, key: tuple[str, str] | None, diagnostics: list[Diagnostic],
            documents: list[LoadedDocument] | None = None) -> None:
        if key is None or secret() is None:
            return
        entry: dict = {"version": __version__, "key": key[1], "diagnostics": [_diagnostic(d) for d in diagnostics]}
        payload = json.dumps(entry, separators=(",", ":")).encode()
        stored = [_stored(doc) for doc in documents or []]
        if documents and all(s is not None for s in stored):  # else only the verdict is kept
            payload += b"\n" + json.dumps(stored, separators=(",", ":")).encode()
        write_signed(self.folder / f"{key[0]}.json", payload, "catalog")


@dataclass
class CachedSet:
    diagnostics: list[Diagnostic]
    documents: dict[str, LoadedDocument] | None  # by path; None: parse the files


def _diagnostic(d: Diagnostic) -> dict:
    return {"path": d.path, "line": d.line, "col": d.col, "code": d.code, "message": d.message, "level": d.level,
            "hint": d.hint}


def _stored(doc: LoadedDocument) -> dict | None:
    """The document as JSON, or None when JSON would not give back the same data (a non-string
    key, a NaN, a tuple): that set is then parsed from its files each time."""
    try:
        data = json.dumps(doc.data, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if json.loads(data) != doc.data:
        return None
    return {"path": doc.path, "data": doc.data, "marks": [[list(p), *m] for p, m in doc.marks.items()],
            "key_marks": [[list(p), *m] for p, m in doc.key_marks.items()],
            "diagnostics": [_diagnostic(d) for d in doc.diagnostics]}


def _document(d: dict) -> LoadedDocument:
    return LoadedDocument(path=d["path"], data=d["data"], marks={tuple(p): (line, col) for p, line, col in d["marks"]},
                          key_marks={tuple(p): (line, col) for p, line, col in d["key_marks"]},
                          diagnostics=[Diagnostic(**x) for x in d["diagnostics"]])


def cache_in(state_dir: Path) -> CatalogCache | None:
    """The project's cache, unless CIVICQ_NO_CATALOG_CACHE is set."""
    return None if os.environ.get("CIVICQ_NO_CATALOG_CACHE") else CatalogCache(state_dir / "catalog-cache")
