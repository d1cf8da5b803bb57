"""The risk of one migration statement: its lock and work, weighed by the live table (rows,
bytes, the estimated time the lock is held), the views it breaks and the sessions it would wait
for. A finding's risk in `db lint` is its statement's (migration_lint.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from civicq_ops.civicq.migration_live import Blocker, TableInfo
from civicq_ops.civicq.migration_locks import LockEffect
from civicq_ops.config import MigrationSettings

RISKS = ["info", "low", "medium", "unknown", "high"]


@dataclass
class StatementContext:
    """A statement of the range that takes a lock on an existing table, with what it costs now."""

    index: int
    revision: str | None
    path: str | None
    line: int | None
    sql: str
    kind: str
    table: str
    lock: str
    blocks: str
    work: str
    new_table: bool = False
    exists: bool | None = None          # None: not known (offline)
    rows: int | None = None
    total_bytes: int | None = None
    writes_per_s: float | None = None
    estimate_s: float | None = None
    breaks: list[str] = field(default_factory=list)
    breaks_handled: bool = False         # the range drops those views first
    blockers: list[str] = field(default_factory=list)
    risk: str = "low"
    reasons: list[str] = field(default_factory=list)



def live_context(ctx: StatementContext, e: LockEffect, info: TableInfo, conn, holders: dict[int, list[Blocker]],
                  old: list[Blocker], dropped_before: set[str], rate: float | None) -> None:
    from civicq_ops.civicq import migration_live as live
    from civicq_ops.civicq.migration_locks import conflicts, pg_mode

    ctx.exists = info.oid is not None
    if info.oid is None:
        ctx.reasons.append("the table does not exist on the target")
        return
    ctx.table = info.label
    ctx.rows, ctx.total_bytes, ctx.writes_per_s = info.rows, info.total_bytes, info.writes_per_s
    if e.kind.startswith("SET NOT NULL") and e.column in info.not_null_checks:
        ctx.work = "none"
        ctx.reasons.append(f"a valid CHECK ({e.column} IS NOT NULL) spares the scan")
    if e.column and "ALTER COLUMN TYPE" in e.kind:
        old_type = info.columns.get(e.column)
        if old_type and e.new_type and _binary_coercible(old_type, e.new_type):
            ctx.work = "none"
            ctx.reasons.append(f"{old_type} -> {e.new_type} is binary-coercible: no rewrite")
        ctx.breaks = live.dependent_views(conn, info.oid, e.column)
        names = {b.split(" ")[0].split(".")[-1] for b in ctx.breaks}
        ctx.breaks_handled = bool(ctx.breaks) and names <= dropped_before
    if rate and ctx.work != "none":
        heap, idx = info.heap_bytes, info.index_bytes
        # Multiples of the measured read rate, calibrated against real statements on PostgreSQL 15
        # and 18 (a rewrite writes the heap, its WAL and every index again; a build sorts): an order
        # of magnitude, not a promise.
        factor = {"scan": 1.5 * heap, "index build": 6 * heap, "rewrite": 20 * heap + 6 * idx}[ctx.work]
        ctx.estimate_s = factor / rate
    elif ctx.work != "none" and info.rows == 0:
        ctx.estimate_s = 0.0
    for b in holders.get(info.oid, []):
        if b.mode and conflicts(pg_mode(b.mode), e.lock):
            ctx.blockers.append(b.describe())
    if "CONCURRENTLY" in e.kind:
        ctx.blockers += [b.describe() for b in old]


def _binary_coercible(old: str, new: str) -> bool:
    """The common no-rewrite type changes: varchar(n) to text or a longer varchar, text to varchar."""
    import re

    old, new = old.lower(), new.lower().replace("pg_catalog.", "")
    if new in ("text", "varchar", "character varying") and (old.startswith("character varying") or old == "text"):
        return True
    a = re.fullmatch(r"character varying\((\d+)\)", old)
    b = re.fullmatch(r"(?:character varying|varchar)\((\d+)\)", new)
    return bool(a and b and int(b.group(1)) >= int(a.group(1)))


def _level(value: float | None, pair: tuple[float, float]) -> str:
    if value is None:
        return "low"
    return "high" if value >= pair[1] else "medium" if value >= pair[0] else "low"


def assess(ctx: StatementContext, e: LockEffect, s: MigrationSettings, online: bool) -> str:
    if ctx.breaks and not ctx.breaks_handled:
        ctx.reasons.append(f"fails: the column is used by {', '.join(ctx.breaks)} (drop and recreate it in the migration)")
        return "high"
    if ctx.new_table:
        ctx.reasons.append("the table is created earlier in this range: empty")
        return "low"
    if not online:
        if e.blocks_traffic and ctx.work != "none":
            ctx.reasons.append("its size is unknown offline")
            return "unknown"
        return "low"
    if ctx.exists is False:
        return "low"
    risk = "low"
    if e.blocks_traffic and ctx.work != "none":
        levels = [_level(ctx.rows, s.rows), _level(ctx.total_bytes, s.bytes), _level(ctx.estimate_s, s.seconds)]
        risk = max(levels, key=RISKS.index)
        ctx.reasons.append(f"{ctx.blocks} while it holds {e.lock} for the {ctx.work}")
    if ctx.blockers and (e.blocks_traffic or e.lock == "ACCESS EXCLUSIVE"):
        ctx.reasons.append(f"{len(ctx.blockers)} session(s) hold conflicting locks now: it would queue, "
                           "and traffic queues behind it (up to lock_timeout)")
        risk = max(risk, "medium", key=RISKS.index)
    return risk
