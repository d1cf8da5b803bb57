"""A strict YAML loader that keeps the file:line:col of every node.

PyYAML silently keeps the last of two duplicate keys and turns `2027-02-01` into a date; both are
wrong for configuration reviewed in pull requests. This loader composes the node tree itself,
reports duplicate keys, keeps timestamps as strings (JSON Schema checks their format) and records
the position of every value under its JSON path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from civicq_ops.core.diagnostics import Diagnostic

JsonPath = tuple[str | int, ...]


# libyaml's parser when PyYAML was built with it (the wheels are): several times faster.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader without the timestamp resolver: dates stay strings."""


_StrictLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


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


def load_text(text: str, path: str) -> LoadedDocument:
    """Parse one YAML document; syntax errors and duplicate keys become diagnostics."""
    doc = LoadedDocument(path=path, data=None)
    loader = None
    try:
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
    except RecursionError:
        doc.diagnostics.append(Diagnostic(path, 1, 1, "yaml-syntax", "invalid YAML: nested too deeply"))
        doc.data = None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


def load_file(path: str | Path) -> LoadedDocument:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LoadedDocument(str(p), None, diagnostics=[Diagnostic(str(p), 0, 0, "file-missing", "no such file")])
    except UnicodeDecodeError as e:
        return LoadedDocument(
            str(p), None, diagnostics=[Diagnostic(str(p), 1, 1, "file-encoding", f"not UTF-8 text ({e.reason})")]
        )
    except OSError as e:
        return LoadedDocument(str(p), None, diagnostics=[Diagnostic(str(p), 0, 0, "file-unreadable", e.strerror or str(e))])
    return load_text(text, str(p))


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
