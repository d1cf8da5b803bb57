"""Values with units: "10GB", "5min", "90%", "1.5M". Parsed to plain numbers in a unit's base
(bytes, seconds, ratio), and formatted back for people."""

from __future__ import annotations

import re

_BYTES = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "pb": 1024**5,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60,
            "minute": 60, "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
            "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}
_COUNT = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z%]*)\s*$")


class UnitError(ValueError):
    """A value whose unit does not fit, e.g. "10GB" for a duration."""


def parse_quantity(value: object, unit: str | None = None) -> float:
    """A number, or a string with a suffix that fits `unit`, as a float in the unit's base.

    >>> parse_quantity("10GB", "bytes")
    10737418240.0
    >>> parse_quantity("90%", "ratio")
    0.9
    """
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"{value!r} is not a number")
    m = _NUMBER.match(value)
    if not m:
        raise UnitError(f"{value!r} is not a number with a unit")
    number, suffix = float(m.group(1)), m.group(2).lower()
    if not suffix:
        return number
    if suffix == "%":
        if unit == "percent":
            return number
        if unit in (None, "ratio"):
            return number / 100
        raise UnitError(f"{value!r}: a percentage does not fit unit {unit}")
    if suffix in _BYTES and unit in (None, "bytes") and not (unit is None and suffix in ("m", "b")):
        return number * _BYTES[suffix]
    if suffix in _SECONDS and unit in (None, "seconds", "ms"):
        seconds = number * _SECONDS[suffix]
        return seconds * 1000 if unit == "ms" else seconds
    if suffix in _COUNT and unit in (None, "count", "xids", "number"):
        return number * _COUNT[suffix]
    raise UnitError(f"{value!r}: suffix '{m.group(2)}' does not fit unit {unit or 'number'}")


def parse_duration(value: object) -> float:
    """Seconds in a duration such as "10s", "5min", "12h"."""
    return parse_quantity(value, "seconds")


def positive_duration_option(option: str, text: str) -> float:
    """Seconds in a command-line duration that must be more than zero (`--for`, `--ttl`), or exit 2
    naming the option."""
    from civicq_ops.core.errors import InputError

    try:
        seconds = parse_duration(text)
    except UnitError as e:
        raise InputError(f"{option}: {e}") from None
    if seconds <= 0:
        raise InputError(f"{option} must be a positive duration such as 90s or 10m, not {text!r}")
    return seconds


def format_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    n = float(n)
    for suffix in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or suffix == "TB":
            return f"{n:.0f} {suffix}" if suffix == "B" else f"{n:.1f} {suffix}"
        n /= 1024
    return f"{n:.1f} PB"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    s = float(seconds)
    if abs(s) < 1:
        return f"{s * 1000:.0f} ms"
    if abs(s) < 120:
        return f"{s:.1f} s" if s % 1 else f"{s:.0f} s"
    if abs(s) < 7200:
        return f"{s / 60:.0f} min"
    if abs(s) < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def format_number(n: float | None) -> str:
    if n is None:
        return "n/a"
    n = float(n)
    if n.is_integer():
        return f"{int(n):,}"
    return f"{n:,.2f}"


def format_value(value: object, unit: str | None) -> str:
    """A finding's value as a person reads it."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # type: ignore[arg-type]  # Decimal from numeric columns, or text
        except (TypeError, ValueError):
            return str(value)
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "seconds":
        return format_duration(value)
    if unit == "ms":
        return format_duration(value / 1000)
    return format_number(value)
