"""Rendered migrations: the SQL alembic's offline mode writes, each statement traced to its revision
file and line.

Alembic renders a migration by calling its `upgrade()` in offline mode; every `op.*` call writes
its SQL through `DefaultImpl.static_output`. While rendering, that method is wrapped to note which
frame of a revision file made each write (the `op.execute(...)` or `op.add_column(...)` line), so a
finding on the SQL points back at the Python that produced it. A string of several statements
(`op.execute(SCHEMA)`) is split with pglast; a statement whose first line appears verbatim in the
revision file (a SQL constant defined there) points at that line instead of the call.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from civicq_ops.config import Project
from civicq_ops.core.errors import InputError

_RUNNING = re.compile(r"^-- Running upgrade (\S*) -> (\S+)")


@dataclass
class Statement:
    """One SQL statement of the rendered upgrade."""

    index: int
    sql: str
    offset: int                 # where it starts in RenderedRange.text
    revision: str | None        # None: alembic's own (BEGIN, alembic_version) or env.py's SETs
    path: str | None            # the revision file
    line: int | None            # 1-based line in that file
    node: object | None = None  # the pglast statement node; None when pglast could not parse it

    @property
    def from_migration(self) -> bool:
        return self.path is not None


@dataclass
class RenderedRange:
    """The upgrade SQL of a revision range, as one text, and its statements."""

    start: str | None
    end: str
    revisions: list[str]
    text: str
    statements: list[Statement] = field(default_factory=list)

    def statement_at(self, offset: int) -> Statement | None:
        """The statement that covers a character offset of `text` (the last one starting before it)."""
        found = None
        for st in self.statements:
            if st.offset > offset:
                break
            found = st
        return found


@dataclass
class _Write:
    start: int
    end: int
    path: str | None
    line: int | None


@contextmanager
def _traced_writes(buffer: io.StringIO, versions: Path) -> Iterator[list[_Write]]:
    from alembic.ddl.impl import DefaultImpl

    writes: list[_Write] = []
    original = DefaultImpl.static_output
    folder = versions.resolve()
    known: dict[str, bool] = {}

    def in_versions(filename: str) -> bool:
        if filename not in known:
            try:
                known[filename] = Path(filename).resolve().parent == folder
            except OSError:
                known[filename] = False
        return known[filename]

    def static_output(self, text: str) -> None:
        frame: FrameType | None = sys._getframe(1)
        path = line = None
        while frame is not None:
            if in_versions(frame.f_code.co_filename):
                path, line = frame.f_code.co_filename, frame.f_lineno
                break
            frame = frame.f_back
        start = buffer.tell()
        original(self, text)
        writes.append(_Write(start, buffer.tell(), path, line))

    DefaultImpl.static_output = static_output  # type: ignore[method-assign]
    try:
        yield writes
    finally:
        DefaultImpl.static_output = original  # type: ignore[method-assign]


def render_range(project: Project, start: str | None, end: str = "head") -> RenderedRange:
    """The SQL of upgrading from `start` (None: from the beginning) to `end`, with its statements
    traced to revision files. Nothing connects to a database."""
    from alembic import command
    from alembic.util import CommandError

    from civicq_ops.civicq.migrations import _config, asset_dir

    versions = asset_dir(project, "migrations") / "versions"
    buffer = io.StringIO()
    spec = f"{start or 'base'}:{end}"
    try:
        with _traced_writes(buffer, versions) as writes:
            command.upgrade(_config(project, buffer=buffer), spec, sql=True)
    except CommandError as e:
        raise InputError(f"db lint {spec}: {e}") from e
    text = buffer.getvalue()
    rendered = RenderedRange(start, end, [], text)
    revision: str | None = None
    sources: dict[str, list[str]] = {}
    for w in writes:
        chunk = text[w.start:w.end]
        m = _RUNNING.match(chunk)
        if m:
            revision = m.group(2)
            rendered.revisions.append(revision)
            continue
        for rel, sql, node in _split(chunk):
            path, line = w.path, w.line
            if path is not None and line is not None:
                line = _refine_line(sources, path, sql, line, _created_name(node))
            rendered.statements.append(Statement(len(rendered.statements), sql, w.start + rel,
                                                 revision if path else None, path, line, node))
    return rendered


def _split(chunk: str) -> list[tuple[int, str, object | None]]:
    """(offset in chunk, text, node) per statement; a chunk pglast cannot parse stays one statement."""
    from pglast import parse_sql
    from pglast.parser import ParseError

    if not chunk.strip():
        return []
    try:
        raw = parse_sql(chunk)
    except ParseError:
        lead = len(chunk) - len(chunk.lstrip())
        return [(lead, chunk.strip(), None)]
    data = chunk.encode("utf-8")
    out: list[tuple[int, str, object | None]] = []
    for r in raw:
        begin = r.stmt_location or 0
        length = r.stmt_len or (len(data) - begin)
        piece = data[begin:begin + length].decode("utf-8", "replace")
        lead = len(piece) - len(piece.lstrip())
        rel = len(data[:begin].decode("utf-8", "replace")) + lead
        out.append((rel, piece.strip(), r.stmt))
    return out


def _created_name(node: object | None) -> str | None:
    """The name of the index a statement creates (revisions often keep them in a list of names)."""
    from pglast import ast

    if isinstance(node, ast.IndexStmt) and node.idxname:
        return str(node.idxname)
    return None


def _refine_line(sources: dict[str, list[str]], path: str, sql: str, line: int, name: str | None = None) -> int:
    """The line of the revision file where this statement's first line is written, when it is
    written there exactly once (a SQL constant), or where the name of the index it creates is
    written once as a string (a list of index definitions); else the line of the op.* call."""
    if path not in sources:
        try:
            sources[path] = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError:
            sources[path] = []
    first = sql.strip().splitlines()[0].strip().rstrip(";") if sql.strip() else ""
    if len(first) < 12:  # too short to be told apart ("BEGIN;", "COMMIT;")
        return line
    hits = [i + 1 for i, text in enumerate(sources[path]) if text.strip().rstrip(";") == first]
    if len(hits) != 1 and name:
        quoted = (f'"{name}"', f"'{name}'")
        hits = [i + 1 for i, text in enumerate(sources[path]) if any(q in text for q in quoted)]
    return hits[0] if len(hits) == 1 else line
