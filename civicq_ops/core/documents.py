"""A loaded YAML document as plain data, with the file:line:col of every value.

Apart from the YAML parser (core/yamlpos.py), so that what only reads documents (the catalogue
cache gives them back without parsing anything) does not import PyYAML, whose resolvers alone
cost a command ~10 ms of start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicq_ops.core.diagnostics import Diagnostic

JsonPath = tuple[str | int, ...]

MAX_FILE_BYTES = 2 * 1024 * 1024  # the whole shipped catalogue is ~110 kB


@dataclass
class LoadedDocument:
    """A YAML document as plain data, plus the position of each value."""

    path: str
    data: Any
    marks: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[JsonPath, tuple[int, int]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def position(self, json_path: JsonPath, key: bool = False) -> tuple[int, int]:
        """The line and column (1-based) of the value at `json_path`, or of its key with `key`;
        the nearest enclosing node when that path does not exist."""
        p = tuple(json_path)
        if key and p in self.key_marks:
            return self.key_marks[p]
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), (1, 1))

    def diagnostic(self, json_path: JsonPath, code: str, message: str, key: bool = False, **kw: Any) -> Diagnostic:
        line, col = self.position(json_path, key=key)
        return Diagnostic(self.path, line, col, code, message, **kw)


def read_source(path: str | Path) -> bytes | LoadedDocument:
    """A file's bytes, read once (the catalogue cache hashes and the parser reads the same bytes),
    or a document that carries why it could not be read. A file over MAX_FILE_BYTES is refused
    before it is read."""
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_FILE_BYTES:
            return LoadedDocument(str(p), None, diagnostics=[Diagnostic(
                str(p), 1, 1, "yaml-too-large", f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")])
        return p.read_bytes()
    except FileNotFoundError:
        return LoadedDocument(str(p), None, diagnostics=[Diagnostic(str(p), 0, 0, "file-missing", "no such file")])
    except OSError as e:
        return LoadedDocument(str(p), None, diagnostics=[Diagnostic(str(p), 0, 0, "file-unreadable", e.strerror or str(e))])
