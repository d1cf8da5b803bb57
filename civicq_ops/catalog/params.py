"""A check's parameter values against their declaration: type, minimum/maximum, enum and pattern.

`--param` values arrive as text and are read as YAML scalars; each one is checked here before
anything runs, so `--param table-dead-tuples.min_live_tuples=-5` is refused rather than bound, and
a value that reaches `| sql_unsafe` can only be one the check's author allowed (enum or pattern).
`validate` uses the same rules on defaults.
"""

from __future__ import annotations

import re
from typing import Any

from civicq_ops.catalog.model import Param
from civicq_ops.core.units import UnitError, parse_quantity


class ParamValueError(ValueError):
    """A value that does not fit its parameter's declaration; the message says why."""


def read_value(param: Param, raw: Any) -> Any:
    """A command-line string read as the parameter's type (YAML scalars; arrays also as a,b,c)."""
    if not isinstance(raw, str):
        return raw
    if param.type in ("string", "duration", "bytes"):
        return raw
    import yaml  # here: PyYAML's import is ~10 ms of every command's start-up

    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError) as e:  # tags such as !!python/object, brackets, 5,000 digits
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if param.type != "array":
            article = "an" if param.type[0] in "aeiou" else "a"
            raise ParamValueError(f"{raw!r} is not {article} {param.type} ({problem})") from None
        value = None
    if param.type == "array" and not isinstance(value, list):
        value = [v.strip() for v in raw.split(",") if v.strip()]
    return value


def violation(param: Param, value: Any) -> str | None:
    """Why `value` does not fit `param`, or None."""
    items = value if param.type == "array" else [value]
    if param.type == "array":
        if not isinstance(value, list):
            return f"{value!r} is not a list"
        kind = param.items or "string"
        if kind == "string":
            items = [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    else:
        kind = param.type
    for item in items:
        problem = _type_problem(kind, item) or _range_problem(param, item)
        if problem:
            return problem
    return None


# PostgreSQL's bigint: a larger integer cannot be bound.
INT_RANGE = (-(2**63), 2**63 - 1)


def _type_problem(kind: str, value: Any) -> str | None:
    if kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
        return f"{value!r} is not an integer"
    if kind in ("integer", "number") and isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        return "the value is out of range (beyond a 64-bit integer)"
    if kind == "number" and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return f"{value!r} is not a number"
    if kind == "boolean" and not isinstance(value, bool):
        return f"{value!r} is not true or false"
    if kind == "string" and not isinstance(value, str):
        return f"{value!r} is not a string"
    if kind in ("duration", "bytes"):
        try:
            parse_quantity(value, "seconds" if kind == "duration" else "bytes")
        except UnitError as e:
            return str(e)
    return None


def _range_problem(param: Param, value: Any) -> str | None:
    if param.enum is not None and value not in param.enum:
        return f"{value!r} is not one of {', '.join(map(repr, param.enum))}"
    if param.pattern is not None and not re.fullmatch(param.pattern, str(value)):
        return f"{value!r} does not match the pattern {param.pattern!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            return f"{value!r} is below the minimum {param.minimum:g}"
        if param.maximum is not None and value > param.maximum:
            return f"{value!r} is above the maximum {param.maximum:g}"
    return None
