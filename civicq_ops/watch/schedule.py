"""When each check runs under `watch`.

A check's own `interval:` wins; else the project's `watch.intervals` for its category; else the
defaults: checks tagged `quick` every 30 s, heavy categories (bloat estimates, pg_stat_statements
queries) hourly, everything else every 5 minutes (`watch.default_interval`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from civicq_ops.catalog.model import Catalog, Check
from civicq_ops.core.units import parse_duration

QUICK_S = 30.0
DEFAULT_S = 300.0
HEAVY_S = 3600.0
HEAVY_CATEGORIES = ("bloat", "queries")


def interval_of(check: Check, settings: dict) -> float:
    if check.raw.get("interval"):
        return parse_duration(check.raw["interval"])
    by_category = settings.get("intervals") or {}
    if check.category in by_category:
        return parse_duration(by_category[check.category])
    if "quick" in check.tags:
        return QUICK_S
    if check.category in HEAVY_CATEGORIES:
        return HEAVY_S
    return parse_duration(settings["default_interval"]) if settings.get("default_interval") else DEFAULT_S


@dataclass
class Schedule:
    """The next time each check is due; everything is due at start."""

    intervals: dict[str, float]
    next_at: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: Catalog, settings: dict, only: list[str] | None = None) -> Schedule:
        checks = [c for c in catalog.checks.values() if not only or c.id in only]
        return cls({c.id: interval_of(c, settings) for c in checks})

    def due(self, now: float) -> list[str]:
        return sorted(c for c in self.intervals if self.next_at.get(c, 0.0) <= now)

    def done(self, checks: list[str], now: float) -> None:
        for c in checks:
            self.next_at[c] = now + self.intervals[c]

    def next_due(self) -> float:
        return min((self.next_at.get(c, 0.0) for c in self.intervals), default=float("inf"))
