"""A strict YAML loader that keeps the file:line:col of every node.

PyYAML silently keeps the last of two duplicate keys and turns `2027-02-01` into a date; both are
wrong for configuration reviewed in pull requests. This loader composes the node tree itself,
reports duplicate keys, keeps timestamps as strings (JSON Schema checks their format) and records
the position of every value under its JSON path.

It also bounds the work a hostile file can cause (the "billion laughs": anchors whose aliases
expand exponentially, deep nesting, huge files). Before anything is built, one pass over the parse
events computes the size the document would have once every alias is expanded, its nesting depth
and its alias count, and refuses the file at the first event that crosses a limit, with its line:

- `MAX_FILE_BYTES`   (2 MiB) : the whole shipped catalogue is ~110 kB;
- `MAX_NODES`        (200,000 nodes once aliases are expanded);
- `MAX_ALIASES`      (1,000 alias uses per file);
- `MAX_DEPTH`        (64 levels of nested mappings and sequences).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from civicq_ops.core.diagnostics import Diagnostic
from civicq_ops.core.documents import MAX_FILE_BYTES, JsonPath, LoadedDocument, read_source

__all__ = ["MAX_FILE_BYTES", "JsonPath", "LoadedDocument", "load_bytes", "load_file", "load_text"]

MAX_NODES = 200_000
MAX_ALIASES = 1_000
MAX_DEPTH = 64


class _TooBig(Exception):
    """A limit was crossed at (line, col)."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


# libyaml's parser when PyYAML was built with it (the wheels are): several times faster.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader without the timestamp resolver: dates stay strings."""


_StrictLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_text(text: str, path: str) -> LoadedDocument:
    """Parse one YAML document; syntax errors and duplicate keys become diagnostics."""
    doc = LoadedDocument(path=path, data=None)
    loader = None
    try:
        if len(text) > MAX_FILE_BYTES:
            raise _TooBig(1, 1, f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        _check_limits(text)
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        if node is None:
            doc.diagnostics.append(Diagnostic(path, 1, 1, "yaml-empty", "the file is empty"))
            return doc
        doc.data = _construct(loader, node, (), doc)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = e.problem or e.context or "invalid YAML"
        doc.diagnostics.append(Diagnostic(path, line, col, "yaml-syntax", f"invalid YAML: {problem}"))
        doc.data = None
    except yaml.YAMLError as e:  # ReaderError and friends carry no mark
        doc.diagnostics.append(Diagnostic(path, 1, 1, "yaml-syntax", f"invalid YAML: {e}".splitlines()[0]))
        doc.data = None
    except _TooBig as e:
        doc.diagnostics.append(Diagnostic(path, e.line, e.col, "yaml-too-large", e.message))
        doc.data = None
    except RecursionError:
        doc.diagnostics.append(Diagnostic(path, 1, 1, "yaml-syntax", "invalid YAML: nested too deeply"))
        doc.data = None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


def load_file(path: str | Path) -> LoadedDocument:
    source = read_source(path)
    return source if isinstance(source, LoadedDocument) else load_bytes(source, str(path))


def load_bytes(data: bytes, path: str) -> LoadedDocument:
    """Parse a file's bytes (UTF-8; line ends read as Path.read_text reads them)."""
    try:
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()
    except UnicodeDecodeError as e:
        return LoadedDocument(path, None, diagnostics=[Diagnostic(path, 1, 1, "file-encoding",
                                                                  f"not UTF-8 text ({e.reason})")])
    return load_text(text, path)


def _check_limits(text: str) -> None:
    """One pass over the parse events: the expanded size (every alias counted as the size of its
    anchor), the nesting depth and the alias count, each bounded. Linear in the file's events, so
    a bomb is refused before it is built."""
    sizes: dict[str, int] = {}  # anchor -> expanded size
    stack: list[list] = [[0, None]]  # [expanded size so far, anchor] per open collection
    total = aliases = 0
    loader = _StrictLoader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            mark = event.start_mark
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) > MAX_DEPTH:
                    raise _TooBig(where[0], where[1], f"nested more than {MAX_DEPTH} levels deep")
                stack.append([0, event.anchor])
                added = 1
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                size, anchor = stack.pop()
                if anchor is not None:
                    sizes[anchor] = size
                stack[-1][0] += size
                continue
            elif isinstance(event, yaml.ScalarEvent):
                added = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise _TooBig(where[0], where[1], f"more than {MAX_ALIASES} aliases (*name)")
                added = sizes.get(event.anchor or "", 1)
            else:
                continue
            stack[-1][0] += added
            total += added
            if total > MAX_NODES:
                raise _TooBig(where[0], where[1], f"more than {MAX_NODES:,} values once aliases are expanded "
                                      "(an alias bomb?)")
    finally:
        loader.dispose()


def _construct(loader: yaml.SafeLoader, node: yaml.Node, jpath: JsonPath, doc: LoadedDocument) -> Any:
    doc.marks[jpath] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                first = doc.key_marks.get(jpath + (key,), (0, 0))[0]
                doc.diagnostics.append(
                    Diagnostic(doc.path, line, col, "yaml-duplicate-key",
                               f"duplicate key '{key}' (first defined at line {first})")
                )
                continue
            doc.key_marks[jpath + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _construct(loader, value_node, jpath + (key,), doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, item, jpath + (i,), doc) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
