"""What the report reads from the state store: each finding's values over time, downsampled in SQL.

These few query functions are the only place the report touches the store's tables, so a change in
how the store keeps values (schema versions, aggregates for ok findings) is adapted here alone.
Buckets are prefixes of the ISO timestamps (day, hour, minute, second), which SQLite and PostgreSQL
both group the same way; a bucket's value is the mean of its runs, its time the latest run in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

# ISO prefix lengths: '2026-12-01' day, '2026-12-01T22' hour, '...T22:15' minute, '...T22:15:07' second.
DAY, HOUR, MINUTE, SECOND = 10, 13, 16, 19


@dataclass
class Series:
    """One finding's (or one subject's) values over time, oldest first."""

    finding_id: str
    check: str
    subject: dict | None
    points: list[tuple[datetime, float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ".".join(str(v) for v in (self.subject or {}).values()) or self.check


@dataclass
class History:
    target: str
    runs: int
    first: datetime | None
    last: datetime | None
    bucket: str
    series: dict[str, Series] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.runs == 0

    def of_check(self, check: str) -> list[Series]:
        return [s for s in self.series.values() if s.check == check]


def parse_at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def bucket_for(first: datetime | None, last: datetime | None, points: int = 150) -> int:
    """The coarsest ISO prefix that still leaves about `points` buckets over the span."""
    if first is None or last is None:
        return SECOND
    span = (last - first).total_seconds()
    for length, size in ((DAY, 86400), (HOUR, 3600), (MINUTE, 60)):
        if span / size >= points / 2:
            return length
    return SECOND


def run_span(store, target: str) -> tuple[int, datetime | None, datetime | None]:
    """How many runs touched this target, and when the first and last were."""
    row = store.execute("SELECT count(DISTINCT run_id), min(at), max(at) FROM findings WHERE target = ?", (target,))
    count, first, last = row[0] if row else (0, None, None)
    return int(count or 0), parse_at(first) if first else None, parse_at(last) if last else None


def value_series(store, target: str, prefix: int, checks: list[str] | None = None,
                 since: datetime | None = None) -> dict[str, Series]:
    """Every finding's numeric values, one point per bucket (the mean), optionally for some checks only."""
    where = ["target = ?", "value IS NOT NULL"]
    params: list = [prefix, target]
    if checks:
        where.append(f"check_id IN ({', '.join('?' for _ in checks)})")
        params += checks
    if since is not None:
        where.append("at >= ?")
        params.append(since.isoformat())
    rows = store.execute(
        "SELECT finding_id, substr(at, 1, ?) AS bucket, avg(value), max(at), max(check_id), max(subject) "
        f"FROM findings WHERE {' AND '.join(where)} GROUP BY 1, 2 ORDER BY 1, 2", tuple(params))
    out: dict[str, Series] = {}
    for finding_id, _bucket, value, at, check, subject in rows:
        series = out.get(finding_id)
        if series is None:
            series = out[finding_id] = Series(finding_id, check, json.loads(subject) if subject else None)
        series.points.append((parse_at(at), float(value)))
    return out


def load_history(store, target: str, points: int = 150) -> History:
    """The target's history, downsampled to about `points` per finding."""
    runs, first, last = run_span(store, target)
    prefix = bucket_for(first, last, points)
    names = {DAY: "day", HOUR: "hour", MINUTE: "minute", SECOND: "run"}
    history = History(target, runs, first, last, names[prefix])
    if runs:
        history.series = value_series(store, target, prefix)
    return history


def recent_series(store, target: str, checks: list[str], since: datetime, points: int = 240) -> dict[str, Series]:
    """Finer-grained values of a few checks over a recent window (the forecasts' input)."""
    runs, first, last = run_span(store, target)
    if not runs:
        return {}
    start = max(since, first) if first else since
    return value_series(store, target, bucket_for(start, last, points), checks, since)
