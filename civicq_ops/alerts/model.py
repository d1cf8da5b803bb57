"""An alert: one rule on one target and subject, with the times of its life (pending, firing, resolved).

The fingerprint hashes the rule name, the target and the subject only, never the labels, value or
annotations, so an alert keeps its identity (and its `for:` clock) when its value or wording change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from civicq_ops.catalog.model import AlertRule, Source

PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"

TARGET_DOWN = "CivicqTargetDown"
CHECK_FAILING = "CivicqCheckFailing"

# Built in, always on: a target that cannot be reached, or a check that errors, is an alert, never
# silence. `check` is a placeholder: these rules read the run's target errors and error findings.
BUILTIN_RULES = {
    TARGET_DOWN: AlertRule(
        name=TARGET_DOWN, check="*", source=Source("<built-in>", 0), severity="critical",
        description="civicq-ops cannot connect to or probe the target.",
        annotations={"summary": "civicq-ops cannot reach target {{ target }}",
                     "description": "{{ finding.message }}"}),
    CHECK_FAILING: AlertRule(
        name=CHECK_FAILING, check="*", source=Source("<built-in>", 0), severity="warning",
        description="A check could not run on a reachable target (query error, timeout, lock wait).",
        annotations={"summary": "check {{ subject.check }} fails on {{ target }}",
                     "description": "{{ finding.message }}"}),
}


def fingerprint(rule: str, target: str, subject: dict | None) -> str:
    key = json.dumps([rule, target, subject or {}], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Alert:
    """The persisted state of one alert. Times are Unix epoch seconds (UTC)."""

    rule: str
    target: str
    check: str
    subject: dict | None
    state: str
    active_since: float
    last_active: float
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    value: Any = None
    fired_at: float | None = None
    resolved_at: float | None = None
    cleared_at: float | None = None  # first evaluation that found a firing alert clear (keep_firing_for)
    last_eval: float | None = None
    eval_gap: float = 0.0  # seconds between the last two evaluations (for Alertmanager's endsAt)
    sent: dict[str, float] = field(default_factory=dict)  # notifier -> last successful delivery
    notify: list[str] = field(default_factory=list)  # empty: every notifier
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.rule, self.target, self.subject)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Alert:
        return cls(**data)

    def summary(self) -> dict:
        """The public view (API, tests, logs): state, labels, annotations and ISO times."""
        return {"fingerprint": self.fingerprint, "state": self.state, "labels": dict(self.labels),
                "annotations": dict(self.annotations), "value": self.value, "active_since": iso(self.active_since),
                "fired_at": iso(self.fired_at), "resolved_at": iso(self.resolved_at)}
