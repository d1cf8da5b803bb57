"""What the report reads from the state store: each finding's values over time, downsampled.

These few query functions are the only place the report touches the store's tables, so a change in
how the store keeps values (schema versions, aggregates for ok findings) is adapted here alone.
Downsampling picks evenly spaced runs from the small `runs` table and reads only their findings
through the primary key (run_id, finding_id): months of hourly runs cost a few thousand rows, not
the whole table, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from civicq_ops.report.forecast import LIMITS

CHUNK = 400  # run ids per IN list (SQLite allows 999 variables by default)

# The checks whose ok findings the report draws or forecasts: the store keeps their values per finding
# (the greatest few per check, state/store.py KEEP_OK_TOP); other ok findings only count in
# per-check aggregates. Every recorder of runs passes this as `keep_ok`.
TRENDED = frozenset({"database-size", "largest-tables", "database-xid-age", "database-multixact-age", *LIMITS})


@dataclass
class Series:
    """One finding's values over time, oldest first."""

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


def target_runs(store, target: str, since: datetime | None = None) -> list[tuple[str, datetime]]:
    """(run id, started at) of every recorded run that covered `target`, oldest first."""
    where, params = "targets LIKE ?", [f"%{json.dumps(target)}%"]
    if since is not None:
        where += " AND started_at >= ?"
        params.append(since.isoformat())
    rows = store.execute(f"SELECT id, started_at, targets FROM runs WHERE {where} ORDER BY started_at", tuple(params))
    return [(r[0], parse_at(r[1])) for r in rows if target in json.loads(r[2] or "[]")]


def evenly(runs: list[tuple[str, datetime]], points: int) -> list[tuple[str, datetime]]:
    """At most `points` runs spread evenly over the list, the first and the last always kept."""
    if len(runs) <= points:
        return runs
    step = (len(runs) - 1) / (points - 1)
    return [runs[round(i * step)] for i in range(points)]


def findings_of_runs(store, target: str, run_ids: list[str], checks: list[str] | None = None) -> dict[str, Series]:
    """The numeric values of these runs' findings on `target`, as one series per finding."""
    out: dict[str, Series] = {}
    for start in range(0, len(run_ids), CHUNK):
        chunk = run_ids[start:start + CHUNK]
        where = [f"run_id IN ({', '.join('?' for _ in chunk)})", "target = ?", "value IS NOT NULL"]
        params: list = [*chunk, target]
        if checks:
            where.append(f"check_id IN ({', '.join('?' for _ in checks)})")
            params += checks
        rows = store.execute(f"SELECT finding_id, check_id, subject, at, value FROM findings WHERE {' AND '.join(where)}",
                             tuple(params))
        for finding_id, check, subject, at, value in rows:
            series = out.get(finding_id)
            if series is None:
                series = out[finding_id] = Series(finding_id, check, json.loads(subject) if subject else None)
            series.points.append((parse_at(at), float(value)))
    for series in out.values():
        series.points.sort()
    return out


def load_history(store, target: str, points: int = 200) -> History:
    """The target's history: every finding's values at up to `points` evenly spaced runs."""
    runs = target_runs(store, target)
    if not runs:
        return History(target, 0, None, None, "run")
    chosen = evenly(runs, points)
    bucket = "run" if len(chosen) == len(runs) else f"{len(runs) / len(chosen):.0f} runs"
    history = History(target, len(runs), runs[0][1], runs[-1][1], bucket)
    history.series = findings_of_runs(store, target, [r[0] for r in chosen])
    return history


def recent_series(store, target: str, checks: list[str], since: datetime, points: int = 400) -> dict[str, Series]:
    """Finer-grained values of a few checks over a recent window (the forecasts' input)."""
    runs = evenly(target_runs(store, target, since), points)
    return findings_of_runs(store, target, [r[0] for r in runs], checks) if runs else {}
