"""The planner's guards: one small function per rule, in the order a DBA would ask.

A guard gets a Proposal (a finding, the policy that wants to act on it, the object it names, the
target, the clock and what the database says) and returns None to let it through, or the reason it
is blocked. `plan` runs them to decide; `apply` runs them again, with the current policies, finding
and facts, just before a step runs. Each is tested alone (tests/remediation/test_guards.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from civicq_ops.catalog.model import Check, CheckObject, Policy
from civicq_ops.config import Target
from civicq_ops.core.thresholds import SEVERITY, Condition
from civicq_ops.core.units import parse_duration, parse_quantity
from civicq_ops.engine.findings import Finding
from civicq_ops.remediation.actions import SPECS, ActionSpec, object_name, option_errors
from civicq_ops.remediation.facts import Facts, StaticFacts

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_LOCK_TIMEOUT = "3s"


@dataclass
class Proposal:
    """One policy wanting to act on one finding, with everything a guard may look at."""

    finding: Finding
    policy: Policy
    check: Check | None
    target: Target
    now: datetime
    obj: dict | None = None
    object_error: str | None = None
    last_action: Callable[[str, str], str | None] | None = None
    unattended: bool = False
    server_version: tuple[int, int] = (18, 0)
    facts: Facts = field(default_factory=StaticFacts)
    planned_for_policy: int = 0  # actions this policy already has in the plan

    @property
    def spec(self) -> ActionSpec:
        return SPECS[self.policy.action]

    @property
    def name(self) -> str:
        return object_name(self.obj) if self.obj is not None else self.finding.subject_text()


def object_of(decl: CheckObject | None, finding: Finding) -> tuple[dict | None, str | None]:
    """The object a finding names, from its check's declaration: (object, None) or (None, why not)."""
    if decl is None:
        return None, f"check {finding.check} declares no object (object: {{kind: ...}}) to act on"
    row: dict[str, Any] = {**(finding.evidence or {}), **(finding.subject or {})}
    if decl.kind == "backend":
        pid = row.get(decl.pid or "")
        if not isinstance(pid, int) or isinstance(pid, bool):
            return None, f"the finding has no backend pid in column {decl.pid}"
        return {"pid": pid}, None
    if decl.kind == "database":
        return ({"database": str(row[decl.name])} if decl.name and row.get(decl.name) else {}), None
    schema, name = row.get(decl.schema or ""), row.get(decl.name or "")
    if not isinstance(schema, str) or not isinstance(name, str) or not schema or not name:
        return None, f"the finding names no {decl.kind} (columns {decl.schema}, {decl.name})"
    return {"schema": schema, "name": name}, None


def size_of(decl: CheckObject | None, finding: Finding) -> float | None:
    if decl is None or not decl.size:
        return None
    value = {**(finding.evidence or {}), **(finding.subject or {})}.get(decl.size)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def in_window(window: dict | None, now: datetime) -> bool:
    if not window:
        return True
    local = now.astimezone(ZoneInfo(window.get("timezone", "UTC")))
    start = _minutes(window["start"])
    end = _minutes(window["end"])
    minute = local.hour * 60 + local.minute
    day = DAYS[local.weekday()]
    if start <= end:
        inside, day_of_start = start <= minute < end, day
    else:  # overnight, e.g. 22:00-04:00: after midnight it belongs to the previous day's window
        inside = minute >= start or minute < end
        day_of_start = day if minute >= start else DAYS[(local.weekday() - 1) % 7]
    days = window.get("days")
    return inside and (not days or day_of_start in days)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


# -- the guards ------------------------------------------------------------------------------------


def guard_object(p: Proposal) -> str | None:
    """The check must declare what it names, and the action must work on that kind of object."""
    if p.obj is None:
        return p.object_error or "no object to act on"
    kind = p.check.object.kind if p.check and p.check.object else None
    if kind not in p.spec.kinds:
        return f"{p.policy.action} works on {' or '.join(p.spec.kinds)}, not on a {kind} ({p.finding.check})"
    return None


def guard_waiver(p: Proposal) -> str | None:
    w = p.finding.waiver
    return f"waived: {w['reason']} (owner {w['owner']}, until {w['expires']})" if w else None


def guard_environment(p: Proposal) -> str | None:
    envs = p.policy.environments
    if envs and p.target.environment not in envs:
        return f"environment {p.target.environment} is not in {', '.join(envs)}"
    return None


def guard_mode(p: Proposal) -> str | None:
    if p.unattended and p.policy.mode != "enforce":
        return "mode: plan (a recommendation; apply a saved plan to run it)"
    return None


def guard_window(p: Proposal) -> str | None:
    w = p.policy.window
    if w and not in_window(w, p.now):
        return f"outside the window {','.join(w.get('days', [])) or 'daily'} {w['start']}-{w['end']} {w.get('timezone', 'UTC')}"
    return None


def guard_cooldown(p: Proposal) -> str | None:
    cooldown = p.policy.limits.get("cooldown")
    if not cooldown or not p.last_action:
        return None
    last = p.last_action(p.policy.id, p.name)
    if last and datetime.fromisoformat(last) > p.now - timedelta(seconds=parse_duration(cooldown)):
        return f"cooldown: {p.policy.id} acted on {p.name} at {last[:19]} (cooldown {cooldown})"
    return None


def guard_size(p: Proposal) -> str | None:
    max_size = p.policy.limits.get("max_relation_size")
    size = size_of(p.check.object if p.check else None, p.finding)
    if max_size and size is not None and size > parse_quantity(max_size, "bytes"):
        return f"{p.name} is larger than max_relation_size {max_size}"
    return None


def guard_per_run(p: Proposal) -> str | None:
    limit = p.policy.limits.get("max_actions_per_run")
    if limit and p.planned_for_policy >= limit:
        return f"max_actions_per_run {limit} reached for {p.policy.id}"
    return None


def guard_options(p: Proposal) -> str | None:
    problems = option_errors(p.policy.action, p.policy.options)
    return problems[0] if problems else None


def guard_same_database(p: Proposal) -> str | None:
    """A database-wide action runs in the connected database only."""
    wanted = (p.obj or {}).get("database")
    current = p.facts.current_database()
    if wanted and current and wanted != current:
        return f"{p.policy.action} runs in the connected database {current}, not {wanted}: point a target at {wanted}"
    return None


def guard_old_snapshots(p: Proposal) -> str | None:
    """A concurrent index build waits for every transaction older than itself: with one open, it
    waits out its lock_timeout and leaves an INVALID `_ccnew` index behind."""
    if not p.spec.concurrent_build or p.policy.options.get("concurrently", True) is False:
        return None
    lock_timeout = parse_duration(p.policy.limits.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))
    holders = p.facts.old_snapshots(lock_timeout)
    if holders:
        more = f" (and {len(holders) - 1} more)" if len(holders) > 1 else ""
        return (f"REINDEX CONCURRENTLY waits for every older snapshot, and {holders[0]}{more}: it would wait "
                f"past its lock_timeout and leave an invalid _ccnew index; end that transaction first")
    return None


def guard_vacuum_can_help(p: Proposal) -> str | None:
    """A plain VACUUM only makes dead tuples reusable (and sets the visibility map on a table never
    vacuumed): with no dead tuples on a vacuumed table it cannot change the finding."""
    if p.policy.action != "vacuum" or p.policy.options.get("freeze") or not p.obj or "schema" not in p.obj:
        return None
    activity = p.facts.table_activity(p.obj["schema"], p.obj["name"])
    if activity is not None and activity.dead_tuples == 0 and activity.vacuumed_before:
        return (f"VACUUM cannot fix this: {p.name} has no dead tuples, and the free space inside its pages is "
                f"not given back by VACUUM (VACUUM FULL or pg_repack in a window would)")
    return None


GUARDS: list[Callable[[Proposal], str | None]] = [
    guard_object, guard_waiver, guard_environment, guard_mode, guard_window, guard_cooldown, guard_size,
    guard_per_run, guard_options, guard_same_database, guard_old_snapshots, guard_vacuum_can_help,
]


def blocked_by(p: Proposal) -> str | None:
    """The first guard's reason, or None when every guard lets the proposal through."""
    for guard in GUARDS:
        reason = guard(p)
        if reason:
            return reason
    return None


def wants(policy: Policy, finding: Finding, check: Check | None) -> bool:
    """Whether `policy` is about `finding` at all (its check, level and value condition)."""
    if policy.check != finding.check or finding.status not in ("warning", "critical"):
        return False
    if policy.level and SEVERITY[finding.status] < SEVERITY[policy.level]:
        return False
    if policy.value:
        value = finding.value
        unit = check.unit if check else None
        return isinstance(value, (int, float)) and Condition.parse(policy.value, unit).matches(value)
    return True
