"""`plan`: findings and policies in, a signed, versioned plan out: each action with its exact SQL,
the lock it takes and the finding behind it, and every action a policy wanted but could not have,
with why (the guards of guards.py: waiver, environment, window, cooldown, size, per-run limit,
mode, old snapshots, an action that cannot help). `plan_target` is the one function the CLI and
the tests call."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from civicq_ops.catalog.model import Catalog, Policy
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, ExecutionError, InputError, PlanRefused
from civicq_ops.core.fileio import write_atomic
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunOptions, Selection, run_checks
from civicq_ops.facts import default_providers
from civicq_ops.postgres.connect import connect, one_row
from civicq_ops.postgres.probe import system_identifier
from civicq_ops.remediation import signing
from civicq_ops.remediation.actions import Statement, build
from civicq_ops.remediation.facts import DatabaseFacts, Facts, StaticFacts
from civicq_ops.remediation.guards import Proposal, blocked_by, in_window, object_of, wants
from civicq_ops.remediation.plan_file import validate_plan_data

__all__ = ["MAX_PLAN_TTL", "PLAN_TTL", "PLAN_VERSION", "BlockedAction", "Plan", "PlannedAction", "config_digest",
           "decide", "in_window", "make_plan", "parse_ttl", "plan_target", "read_plan", "target_identity", "write_plan"]

PLAN_VERSION = "1.0"
PLAN_TTL = timedelta(hours=1)
MAX_PLAN_TTL = timedelta(days=30)  # a plan made on a pull request and applied after merge needs hours or days
CONCURRENT_NOTE = ("a concurrent build waits for every transaction older than itself; apply checks for old "
                   "snapshots again just before it runs")


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
    note: str = ""


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
    errors: list[dict] = field(default_factory=list)  # checks that failed while planning: {check, message}
    format_version: str = PLAN_VERSION
    signature: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        data = dict(data)
        data["actions"] = [PlannedAction(**a) for a in data.get("actions", [])]
        data["blocked"] = [BlockedAction(**b) for b in data.get("blocked", [])]
        return cls(**data)


def config_digest(project: Project, catalog: Catalog) -> str:
    """A hash of civicq-ops.yaml and every catalog file: a plan is valid only for this configuration."""
    h = hashlib.sha256()
    for path in sorted({project.path, *catalog.files}):
        p = Path(path)
        h.update(str(p.name).encode())
        h.update(p.read_bytes() if p.is_file() else b"")
    return "sha256:" + h.hexdigest()


def parse_ttl(text: str | None) -> timedelta:
    """`--ttl`: how long a plan stays valid, more than 0 and at most MAX_PLAN_TTL (default PLAN_TTL).
    The clock only bounds a plan's life; what makes an old plan safe is apply's re-checking of the
    server, the configuration digest and every finding."""
    from civicq_ops.core.units import positive_duration_option

    if text is None:
        return PLAN_TTL
    seconds = positive_duration_option("--ttl", text)
    if seconds > MAX_PLAN_TTL.total_seconds():
        raise InputError(f"--ttl {text} is longer than a plan may live ({MAX_PLAN_TTL.days} days)")
    return timedelta(seconds=seconds)


def finding_ref(f: Finding) -> dict:
    return {"id": f.id, "check": f.check, "subject": f.subject, "status": f.status, "value": f.value,
            "unit": f.unit, "threshold": f.threshold, "message": f.message, "evidence": f.evidence}


def decide(findings: list[Finding], policies: list[Policy], catalog: Catalog, target: Target, now: datetime,
           last_action=None, unattended: bool = False, server_version: tuple[int, int] = (18, 0),
           facts: Facts | None = None) -> tuple[list[PlannedAction], list[BlockedAction]]:
    """The pure core of planning: which actions, and what blocked the rest. `last_action(policy, object)`
    returns when the policy last acted on the object (for cooldowns), or None; `facts` answers what
    the guards ask of the database (StaticFacts offline)."""
    facts = facts or StaticFacts()
    actions: list[PlannedAction] = []
    blocked: list[BlockedAction] = []
    per_policy: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for f in sorted(findings, key=lambda f: (-SEVERITY[f.status], f.check, f.subject_text())):
        check = catalog.checks.get(f.check)
        for policy in policies:
            if not wants(policy, f, check):
                continue
            obj, why_not = object_of(check.object if check else None, f)
            p = Proposal(finding=f, policy=policy, check=check, target=target, now=now, obj=obj, object_error=why_not,
                         last_action=last_action, unattended=unattended, server_version=server_version, facts=facts,
                         planned_for_policy=per_policy.get(policy.id, 0))
            if obj is not None and (policy.action, p.name) in seen:
                continue  # another finding already planned the same action on the same object
            reason = blocked_by(p)
            if reason is None:
                try:
                    action = planned_action(p, len(actions) + 1)
                except CivicqError as e:
                    reason = e.message
            if reason is not None:
                blocked.append(BlockedAction(policy.id, policy.action, p.name, reason, finding_ref(f)))
                continue
            per_policy[policy.id] = per_policy.get(policy.id, 0) + 1
            seen.add((policy.action, p.name))
            actions.append(action)
    return actions, blocked


def planned_action(p: Proposal, step: int) -> PlannedAction:
    """The action a proposal that passed every guard becomes: options and limits from the policy."""
    spec = p.spec
    statements = statements_for(p)
    assert p.obj is not None  # a proposal without an object is blocked before it gets here
    return PlannedAction(step=step, policy=p.policy.id, action=p.policy.action, mode=p.policy.mode, object=p.obj,
                         object_name=p.name, sql=[s.text for s in statements], lock=spec.lock,
                         in_transaction=spec.in_transaction, options=dict(p.policy.options),
                         limits=dict(p.policy.limits), finding=finding_ref(p.finding),
                         note=CONCURRENT_NOTE if spec.concurrent_build and "CONCURRENTLY" in statements[0].text else "")


def statements_for(p: Proposal) -> list[Statement]:
    """The statements of a proposal: the policy's action and options on the finding's object; whether a
    materialized view can be refreshed CONCURRENTLY is asked of the database."""
    assert p.obj is not None
    can_concurrently = True
    if p.policy.action == "refresh_matview":
        can_concurrently = p.facts.can_refresh_concurrently(p.obj["schema"], p.obj["name"])
    return build(p.policy.action, p.obj, p.policy.options, server_major=p.server_version[0],
                 server_minor=p.server_version[1], can_concurrently=can_concurrently)


def server_version_of(identity: dict) -> tuple[int, int]:
    parts = [int(x) for x in str(identity.get("server_version") or "18.0").split(".")[:2] if x.isdigit()]
    return (parts + [18, 0][len(parts):])[0], (parts + [0, 0])[1]


def make_plan(project: Project, target: Target, catalog: Catalog, findings: list[Finding], identity: dict,
              now: datetime | None = None, store=None, unattended: bool = False, facts: Facts | None = None,
              errors: list[dict] | None = None, ttl: timedelta = PLAN_TTL) -> Plan:
    now = now or datetime.now(UTC)
    last = (lambda policy, obj: store.last_action(target.name, policy, obj)) if store else None
    actions, blocked = decide([f for f in findings if f.target == target.name], catalog.policies, catalog, target,
                              now, last, unattended, server_version_of(identity), facts)
    return Plan(id=uuid.uuid4().hex[:12], created_at=now.isoformat(), expires_at=(now + ttl).isoformat(),
                target=identity, config_digest=config_digest(project, catalog), actions=actions, blocked=blocked,
                errors=list(errors or []))


def target_identity(project: Project, target: Target) -> dict:
    """What a plan is bound to: the server's system identifier, the database, the version."""
    with connect(project, target, autocommit=True) as conn:
        db, version = one_row(conn.execute("SELECT current_database(), current_setting('server_version')"))
        sysid = system_identifier(conn)
    return {"name": target.name, "system_identifier": sysid, "database": db, "server_version": version.split()[0]}


@dataclass
class MadePlan:
    plan: Plan
    run: object  # the RunResult of the checks behind it


def plan_target(project: Project, target: Target, catalog: Catalog, store=None, *, checks: list[str] | None = None,
                unattended: bool = False, now: datetime | None = None, ttl: timedelta = PLAN_TTL) -> MadePlan:
    """Run the checks the policies name (or `checks`), record the run, and plan: what `civicq-ops plan`
    does. A check that fails is kept in `plan.errors` (the CLI exits 3 for it, whatever the actions)."""
    selected = checks if checks is not None else sorted({p.check for p in catalog.policies})
    result = run_checks(project, [target], catalog, Selection(checks=selected),
                        RunOptions(facts=default_providers(project)))
    if result.errors:
        raise ExecutionError(result.errors[0]["message"])
    if store is not None:
        store.record_run(result)
    errors = [{"check": f.check, "message": f.reason or f.message} for f in result.findings if f.status == "error"]
    with connect(project, target, autocommit=True) as conn:
        plan = make_plan(project, target, catalog, result.findings, target_identity(project, target), now=now,
                         store=store, unattended=unattended, facts=DatabaseFacts(conn), errors=errors, ttl=ttl)
    return MadePlan(plan, result)


def write_plan(plan: Plan, path: str | Path, project: Project) -> None:
    """Write the plan as JSON, signed with the project's plan key."""
    data = json.loads(json.dumps(plan.to_dict(), default=str))
    data["signature"] = signing.sign(data, signing.plan_key(project))
    plan.signature = data["signature"]
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def read_plan(path: str | Path, project: Project) -> Plan:
    """Read a plan file: every field checked (exit 2 naming the field), then its signature (exit 5)."""
    data = read_plan_data(path)
    signing.verify(data, signing.plan_key(project), str(path))
    return Plan.from_dict(data)


def read_plan_data(path: str | Path) -> dict:
    """A plan file's JSON with every field checked (exit 2 naming the field); its signature unchecked."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such plan file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a plan file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a civicq-ops plan (not JSON: {e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a civicq-ops plan (not a JSON object)")
    if str(data.get("format_version", "")).split(".")[0] != PLAN_VERSION.split(".")[0]:
        raise InputError(f"{path}: plan format {data.get('format_version')} is not {PLAN_VERSION}")
    validate_plan_data(data, str(path))
    return data


def steps_are_well_formed(plan: Plan) -> None:
    """Steps numbered 1..N, each (action, object) once: a copied step with a new number is refused."""
    numbers = [a.step for a in plan.actions]
    if numbers != list(range(1, len(numbers) + 1)):
        raise PlanRefused(f"plan {plan.id} refused: its steps are numbered {numbers}, not 1..{len(numbers)} "
                          f"(edited plan?)")
    seen: dict[tuple[str, str], int] = {}
    for a in plan.actions:
        key = (a.action, a.object_name)
        if key in seen:
            raise PlanRefused(f"plan {plan.id} refused: step {a.step} repeats step {seen[key]} ({a.action} on "
                              f"{a.object_name}): each step runs once")
        seen[key] = a.step
