"""Retention: which backups to keep, and why. A pure function, so a property test can hold it to
its promises: the newest backup and the last verified one are never deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from civicq_ops.backup.manifest import Manifest


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 7
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6

    @classmethod
    def from_config(cls, section: dict) -> RetentionPolicy:
        return cls(**{k: v for k, v in (section or {}).items() if k in cls.__dataclass_fields__})


@dataclass
class Decision:
    manifest: Manifest
    keep: bool
    reasons: list[str] = field(default_factory=list)


def plan_retention(backups: list[Manifest], policy: RetentionPolicy) -> list[Decision]:
    """Decide for each complete backup, newest first. Order is by recorded completion time."""
    ordered = sorted(backups, key=lambda m: m.finished_at, reverse=True)
    decisions = [Decision(m, False) for m in ordered]
    for i, d in enumerate(decisions[: max(policy.keep_last, 1)]):
        d.reasons.append("newest" if i == 0 else f"one of the newest {policy.keep_last}")
    for label, count, key in (("daily", policy.keep_daily, _day), ("weekly", policy.keep_weekly, _week),
                              ("monthly", policy.keep_monthly, _month)):
        seen: list[str] = []
        for d in decisions:  # newest first: the newest backup of each period represents it
            period = key(d.manifest)
            if period in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(period)
            d.reasons.append(f"{label} {period}")
    for d in decisions:
        if d.manifest.pinned:
            d.reasons.append(f"pinned: {d.manifest.pinned}")
    verified = [d for d in decisions if d.manifest.verified]
    if verified:
        verified[0].reasons.append("the last verified backup")
    for d in decisions:
        d.keep = bool(d.reasons)
        if not d.keep:
            d.reasons.append("outside every retention rule")
    return decisions


def _when(m: Manifest) -> datetime:
    return datetime.fromisoformat(m.finished_at)


def _day(m: Manifest) -> str:
    return _when(m).strftime("%Y-%m-%d")


def _week(m: Manifest) -> str:
    year, week, _ = _when(m).isocalendar()
    return f"{year}-W{week:02d}"


def _month(m: Manifest) -> str:
    return _when(m).strftime("%Y-%m")
