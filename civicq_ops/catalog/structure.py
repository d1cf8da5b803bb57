"""JSON Schemas shipped with the package, and schema errors turned into diagnostics."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from civicq_ops.core.diagnostics import Diagnostic
from civicq_ops.core.documents import LoadedDocument


@cache
def load_schema(kind: str) -> dict[str, Any]:
    name = f"{kind}.schema.json"
    try:
        text = resources.files("civicq_ops.schemas").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(kind) from None
    return json.loads(text)


def available_kinds() -> list[str]:
    return sorted(
        p.name.removesuffix(".schema.json")
        for p in resources.files("civicq_ops.schemas").iterdir()
        if p.name.endswith(".schema.json")
    )


@cache
def _validator(kind: str):
    # jsonschema (~100-300 ms with its format checkers) only once a document is validated:
    # `civicq-ops schema` reads the schemas without it.
    import jsonschema

    schema = load_schema(kind)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_document(doc: LoadedDocument, kind: str) -> list[Diagnostic]:
    """Every schema violation of `doc`, each at the position of the offending node. A misspelt key
    (`titel`) is one error, the unknown key with a did-you-mean, not also "'title' is required"."""
    import difflib

    out: list[Diagnostic] = []
    leaves = [leaf for err in _validator(kind).iter_errors(doc.data) for leaf in _leaves(err)]
    missing: dict[tuple, set[str]] = {}
    for leaf in leaves:
        if leaf.validator == "required" and isinstance(leaf.instance, dict):
            missing.setdefault(tuple(leaf.absolute_path), set()).update(
                k for k in leaf.validator_value if k not in leaf.instance)
    absorbed: set[tuple] = set()
    for leaf in leaves:
        where = tuple(leaf.absolute_path)
        if leaf.validator == "additionalProperties" and isinstance(leaf.instance, dict):
            allowed = set(leaf.schema.get("properties", {}))
            for key in sorted(k for k in leaf.instance if k not in allowed):
                close = difflib.get_close_matches(key, sorted(missing.get(where, set()) - {k for _, k in absorbed}), n=1)
                if close:
                    absorbed.add((where, close[0]))
                    message = _unknown_key(leaf, key, with_allowed=False) + f": did you mean '{close[0]}' (required)?"
                else:
                    message = _unknown_key(leaf, key)
                out.append(doc.diagnostic(where + (key,), "unknown-key", message, key=True))
    for leaf in leaves:
        where = tuple(leaf.absolute_path)
        if leaf.validator == "additionalProperties" and isinstance(leaf.instance, dict):
            continue
        if leaf.validator == "required" and any((where, k) in absorbed and repr(k) in leaf.message
                                                for k in missing.get(where, ())):
            continue
        out.append(doc.diagnostic(where, _code(leaf), _message(leaf)))
    return sorted(set(out))


def _leaves(err):
    """The most specific errors: a `oneOf` failure says little, its branches say what is wrong."""
    if err.validator in ("oneOf", "anyOf") and err.context:
        best = min(len(e.absolute_path) for e in err.context)
        deepest = [e for e in err.context if len(e.absolute_path) == best]
        # When no branch is clearly closer, report the combined failure.
        if all(e.validator in ("required", "not", "const") for e in deepest):
            yield err
            return
        for e in deepest:
            yield from _leaves(e)
        return
    yield err


def _code(err) -> str:
    return {
        "additionalProperties": "unknown-key",
        "required": "missing-key",
        "type": "wrong-type",
        "enum": "bad-value",
        "const": "bad-value",
        "pattern": "bad-format",
        "propertyNames": "bad-name",
        "format": "bad-format",
    }.get(err.validator, "schema")


def _unknown_key(err, key: str, with_allowed: bool = True) -> str:
    where = ".".join(str(p) for p in err.absolute_path)
    allowed = ", ".join(sorted(err.schema.get("properties", {}))) if with_allowed else ""
    return f"unknown key '{key}'" + (f" in {where}" if where else "") + (f" (allowed: {allowed})" if allowed else "")


def _message(err) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "document"
    if err.validator == "type":
        return f"{where}: expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    if err.validator == "enum":
        return f"{where}: {err.instance!r} is not one of {', '.join(map(repr, err.validator_value))}"
    if err.validator == "oneOf" and where.startswith("targets."):
        return f"{where}: a target needs exactly one of 'embedded: true' or 'url'"
    return f"{where}: {err.message}"
