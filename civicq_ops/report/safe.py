"""Values and text made safe for an output: no raw control characters on a terminal or in XML, no
NaN or Infinity in JSON, and numbers too large for a float still printed. Every format uses these,
so a hostile table name or an odd value can neither break a parser nor crash a report."""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Any

from civicq_ops.core.units import format_value
from civicq_ops.engine.findings import jsonable

# C0 and C1 controls, DEL, line separators, and lone surrogates (no UTF-8 output can carry them);
# newline and tab are handled by each caller.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@cache
def _not_xml() -> re.Pattern:
    """What XML 1.0 cannot carry at all, even escaped (compiled on first use: ~3 ms, XML formats only)."""
    return re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape(m: re.Match) -> str:
    c = m.group(0)
    return {"\r": "\\r", "\t": " "}.get(c, f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def printable(text: Any, *, newlines: bool = True) -> str:
    """Text for a terminal or Markdown: control characters shown as escapes (\\x1b), never sent raw."""
    s = _CONTROL.sub(_escape, "" if text is None else str(text))
    return s if newlines else s.replace("\n", " ")


def xml_text(text: Any) -> str:
    """Text XML 1.0 can carry: characters it forbids are shown as escapes."""
    return _not_xml().sub(_escape, "" if text is None else str(text))


def json_value(value: Any) -> Any:
    """A value for strict JSON: NaN and infinities as strings, database types as plain ones."""
    value = jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def json_text(value: Any, indent: int | None = None) -> str:
    """Strict JSON of `value`. The C encoder writes it in one pass, calling back only for database
    types; a NaN or infinity (refused by allow_nan=False) or a key JSON cannot carry sends it
    through json_value first, the thorough path (a pass in Python over every value)."""
    try:
        return json.dumps(value, indent=indent, allow_nan=False, default=_plain)
    except (ValueError, TypeError):
        return json.dumps(json_value(value), indent=indent, allow_nan=False)


def _plain(value: Any) -> Any:
    plain = jsonable(value)
    if isinstance(plain, float) and not math.isfinite(plain):
        raise ValueError("not a finite number")  # the thorough path spells it out
    return plain


def number(value: Any) -> float | None:
    """A finite float for a metric, or None when the value is not a usable number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def shown_value(value: Any, unit: str | None) -> str:
    """A finding's value for people; a number no float can hold is printed as it is."""
    if value is None:
        return ""
    try:
        return format_value(value, unit)
    except (OverflowError, ValueError, TypeError):
        return str(value)
