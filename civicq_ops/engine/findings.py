"""Findings: what a check says about one subject on one target."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from civicq_ops.core.thresholds import SEVERITY


def finding_id(target: str, check: str, subject: dict | None) -> str:
    """Stable identity: the check and subject (and target), never the value or the message,
    so history, baselines and CI deduplication survive threshold edits."""
    key = json.dumps([target, check, subject or {}], sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:32]


T = TypeVar("T", str, str | None)


class LazyText(Generic[T]):
    """A text field that may be given as a function and is computed on first read, then kept:
    a check's message and recommendation are Jinja renders, paid only for findings that are shown
    (ok findings appear with --verbose, in JSON or in the state store's aggregates only)."""

    def __init__(self, default: T) -> None:
        self.default: T = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_lazy_" + name

    def __get__(self, obj: object | None, objtype: type | None = None) -> T:
        if obj is None:
            return self.default  # the dataclass field's default
        value = obj.__dict__.get(self.slot, self.default)
        if callable(value):
            value = value()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: object, value: T | Callable[[], T]) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class Finding:
    check: str
    category: str
    target: str
    subject: dict | None
    status: str
    title: str = ""
    value: Any = None
    unit: str | None = None
    threshold: dict | None = None
    confidence: str = "high"
    confidence_reason: str | None = None
    message: LazyText[str] = LazyText("")
    recommendation: LazyText[str | None] = LazyText(None)
    remediation: str | None = None
    waiver: dict | None = None
    evidence: dict = field(default_factory=dict)
    reason: str | None = None  # why skipped or error
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = finding_id(self.target, self.check, self.subject)

    @property
    def waived(self) -> bool:
        return self.waiver is not None

    @property
    def severity(self) -> int:
        return SEVERITY[self.status]

    def subject_text(self) -> str:
        if not self.subject:
            return self.target
        return ".".join(str(v) for v in self.subject.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["waived"] = self.waived
        return d


def jsonable(value: Any) -> Any:
    """Database values as JSON-friendly Python: Decimal -> float, timedelta -> seconds..."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**63 else float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID,)):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass
class Summary:
    ok: int = 0
    warning: int = 0
    critical: int = 0
    skipped: int = 0
    error: int = 0
    waived: int = 0

    @classmethod
    def of(cls, findings: list[Finding]) -> Summary:
        s = cls()
        for f in findings:
            setattr(s, f.status, getattr(s, f.status) + 1)
            if f.waived:
                s.waived += 1
        return s

    def line(self) -> str:
        return (f"ok={self.ok} warning={self.warning} critical={self.critical} skipped={self.skipped} "
                f"error={self.error}" + (f" waived={self.waived}" if self.waived else ""))

    def to_dict(self) -> dict:
        return asdict(self)
