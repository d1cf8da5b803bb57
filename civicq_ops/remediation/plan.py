"""`plan`: findings and policies in, a versioned plan out: each action with its exact SQL, the lock
it takes and the finding behind it, and every action a policy wanted but could not have, with why
(waiver, environment, window, cooldown, size limit, per-run limit, mode)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from civicq_ops.catalog.model import Catalog, Policy
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, InputError
from civicq_ops.core.thresholds import SEVERITY, Condition
from civicq_ops.core.units import parse_duration, parse_quantity
from civicq_ops.core.version import Version
from civicq_ops.engine.findings import Finding
from civicq_ops.remediation.actions import SPECS, build, object_name, object_of

PLAN_VERSION = "1.0"
PLAN_TTL = timedelta(hours=1)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SIZE_KEYS = ("total_bytes", "size_bytes", "real_size", "table_bytes")


@dataclass
class PlannedAction:
    step: int
    policy: str
    action: str
    mode: str
    object: dict
    object_name: str
    sql: list[str]
    lock: str
    in_transaction: bool
    options: dict
    limits: dict
    finding: dict


@dataclass
class BlockedAction:
    policy: str
    action: str
    object_name: str
    reason: str
    finding: dict


@dataclass
class Plan:
    id: str
    created_at: str
    expires_at: str
    target: dict
    config_digest: str
    actions: list[PlannedAction] = field(default_factory=list)
    blocked: list[BlockedAction] = field(default_factory=list)
    format_version: str = PLAN_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        data = dict(data)
        data["actions"] = [PlannedAction(**a) for a in data.get("actions", [])]
        data["blocked"] = [BlockedAction(**b) for b in data.get("blocked", [])]
        return cls(**data)


def can_refresh_concurrently(check_id: str) -> bool:
    """CONCURRENTLY needs a populated view (and a unique index, which CivicQ's views all have)."""
    return check_id != "matview-not-populated"


def config_digest(project: Project, catalog: Catalog) -> str:
    """A hash of civicq-ops.yaml and every catalog file: a plan is valid only for this configuration."""
    h = hashlib.sha256()
    for path in sorted({project.path, *catalog.files}):
        p = Path(path)
        h.update(str(p.name).encode())
        h.update(p.read_bytes() if p.is_file() else b"")
    return "sha256:" + h.hexdigest()


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


def _finding_ref(f: Finding) -> dict:
    return {"id": f.id, "check": f.check, "subject": f.subject, "status": f.status, "value": f.value,
            "unit": f.unit, "threshold": f.threshold, "message": f.message, "evidence": f.evidence}


def decide(findings: list[Finding], policies: list[Policy], catalog: Catalog, target: Target, now: datetime,
           last_action=None, unattended: bool = False, server_version: tuple[int, int] = (18, 0)):
    """The pure core of planning: which actions, and what blocked the rest. `last_action(policy, object)`
    returns when the policy last acted on the object (for cooldowns), or None."""
    actions: list[PlannedAction] = []
    blocked: list[BlockedAction] = []
    per_policy: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for f in sorted(findings, key=lambda f: (-SEVERITY[f.status], f.check, f.subject_text())):
        if f.status not in ("warning", "critical"):
            continue
        for policy in policies:
            if policy.check != f.check:
                continue
            if policy.level and SEVERITY[f.status] < SEVERITY[policy.level]:
                continue
            unit = catalog.checks[f.check].unit if f.check in catalog.checks else None
            if policy.value and not (isinstance(f.value, (int, float)) and Condition.parse(policy.value, unit).matches(f.value)):
                continue
            spec = SPECS[policy.action]

            def block(reason: str, name: str = f.subject_text(), policy: Policy = policy, f: Finding = f) -> None:
                blocked.append(BlockedAction(policy.id, policy.action, name, reason, _finding_ref(f)))

            try:
                obj = object_of(spec, f.subject, f.evidence)
            except InputError as e:
                block(e.message)
                continue
            name = object_name(obj)
            if (policy.action, name) in seen:
                continue  # another finding already planned the same action on the same object
            if f.waiver:
                block(f"waived: {f.waiver['reason']} (owner {f.waiver['owner']}, until {f.waiver['expires']})", name)
                continue
            if policy.environments and target.environment not in policy.environments:
                block(f"environment {target.environment} is not in {', '.join(policy.environments)}", name)
                continue
            if unattended and policy.mode != "enforce":
                block("mode: plan (a recommendation; apply a saved plan to run it)", name)
                continue
            if policy.window is not None and not in_window(policy.window, now):
                w = policy.window
                block(f"outside the window {','.join(w.get('days', [])) or 'daily'} {w['start']}-{w['end']} "
                      f"{w.get('timezone', 'UTC')}", name)
                continue
            cooldown = policy.limits.get("cooldown")
            if cooldown and last_action:
                last = last_action(policy.id, name)
                if last and datetime.fromisoformat(last) > now - timedelta(seconds=parse_duration(cooldown)):
                    block(f"cooldown: {policy.id} acted on {name} at {last[:19]} (cooldown {cooldown})", name)
                    continue
            max_size = policy.limits.get("max_relation_size")
            size = next((f.evidence.get(k) for k in _SIZE_KEYS if isinstance(f.evidence.get(k), (int, float))), None)
            if max_size and size is not None and size > parse_quantity(max_size, "bytes"):
                block(f"{name} is larger than max_relation_size {max_size}", name)
                continue
            limit = policy.limits.get("max_actions_per_run")
            if limit and per_policy.get(policy.id, 0) >= limit:
                block(f"max_actions_per_run {limit} reached for {policy.id}", name)
                continue
            try:
                statements = build(policy.action, obj, policy.options, server_major=server_version[0],
                                   server_minor=server_version[1], can_concurrently=can_refresh_concurrently(f.check))
            except CivicqError as e:
                block(e.message, name)
                continue
            per_policy[policy.id] = per_policy.get(policy.id, 0) + 1
            seen.add((policy.action, name))
            actions.append(PlannedAction(
                step=len(actions) + 1, policy=policy.id, action=policy.action, mode=policy.mode, object=obj,
                object_name=name, sql=[s.text for s in statements], lock=spec.lock, in_transaction=spec.in_transaction,
                options=dict(policy.options), limits=dict(policy.limits), finding=_finding_ref(f)))
    return actions, blocked


def make_plan(project: Project, target: Target, catalog: Catalog, findings: list[Finding], identity: dict,
              now: datetime | None = None, store=None, unattended: bool = False) -> Plan:
    now = now or datetime.now(UTC)
    version = Version.parse(identity.get("server_version") or "18.0")
    last = (lambda policy, obj: store.last_action(target.name, policy, obj)) if store else None
    actions, blocked = decide([f for f in findings if f.target == target.name], catalog.policies, catalog, target,
                              now, last, unattended, (version.major, version.minor))
    return Plan(id=uuid.uuid4().hex[:12], created_at=now.isoformat(), expires_at=(now + PLAN_TTL).isoformat(),
                target=identity, config_digest=config_digest(project, catalog), actions=actions, blocked=blocked)


def write_plan(plan: Plan, path: str | Path) -> None:
    from civicq_ops.core.fileio import write_atomic

    write_atomic(path, json.dumps(plan.to_dict(), indent=2, default=str) + "\n")


def read_plan(path: str | Path) -> Plan:
    try:
        data = json.loads(Path(path).read_text())
        if str(data.get("format_version", "")).split(".")[0] != PLAN_VERSION.split(".")[0]:
            raise InputError(f"{path}: plan format {data.get('format_version')} is not {PLAN_VERSION}")
        return Plan.from_dict(data)
    except FileNotFoundError:
        raise InputError(f"{path}: no such plan file") from None
    except (ValueError, TypeError, KeyError) as e:
        raise InputError(f"{path}: not a civicq-ops plan ({e})") from e
