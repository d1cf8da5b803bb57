"""The seed's vacuum.py commands as plans: built-in policies, and explicit requests.

`vacuum-candidates` and `vacuum-auto` plan with built-in, enforce-mode policies over the vacuum
checks; `vacuum --table T`, `vacuum --full` and `analyze` are explicit requests that become a
one-step plan, applied by the same command (never saved: a request is not a policy). Either way the
statement runs through `apply`, with its guards and audit record.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from civicq_ops.catalog.model import Catalog, Policy, Source
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import InputError
from civicq_ops.remediation.actions import SPECS, build, object_name
from civicq_ops.remediation.plan import PLAN_TTL, Plan, PlannedAction, config_digest, plan_target

MANUAL = "manual-request"
_BUILTIN = Source("<built-in vacuum policies>", 0)

VACUUM_CHECKS = ("table-dead-tuples", "autovacuum-falling-behind", "tables-never-vacuumed")


def builtin_vacuum_policies(level: str = "warning") -> list[Policy]:
    """Vacuum whatever the vacuum checks flag at `level` or above (the seed's vacuum-auto)."""
    if level not in ("warning", "critical"):
        raise InputError(f"--level must be warning or critical, not {level!r}")
    return [Policy(id=f"builtin-vacuum-{check}", check=check, action="vacuum", source=_BUILTIN, level=level,
                   mode="enforce", limits={"max_actions_per_run": 20, "lock_timeout": "3s"})
            for check in VACUUM_CHECKS]


def builtin_catalog(catalog: Catalog, level: str = "warning") -> Catalog:
    """The project's checks with the built-in vacuum policies instead of the project's policies."""
    return replace(catalog, policies=builtin_vacuum_policies(level))


def candidates_plan(project: Project, target: Target, catalog: Catalog, store=None, level: str = "warning") -> Plan:
    """The plan of `vacuum-candidates` / `vacuum-auto`; apply it with `builtin_catalog(catalog, level)`."""
    checks = [c for c in VACUUM_CHECKS if c in catalog.checks]
    return plan_target(project, target, builtin_catalog(catalog, level), store, checks=checks).plan


def parse_table(table: str | None) -> dict:
    """`--table [schema.]name` as an object; an empty or blank name is an error, never 'everything'."""
    if table is None:
        return {}
    schema, dot, name = table.strip().rpartition(".")
    if not table.strip() or not name.strip() or (dot and not schema.strip()):
        raise InputError(f"--table needs a table name ([schema.]table), got {table!r}: "
                         f"leave --table out to work on the whole database")
    return {"schema": schema.strip() or "public", "name": name.strip()}


def request_plan(project: Project, target: Target, catalog: Catalog, identity: dict, action: str,
                 table: str | None = None, options: dict | None = None) -> Plan:
    """A one-step plan for an explicit request (no finding behind it)."""
    if action not in ("vacuum", "vacuum_full", "analyze"):
        raise InputError(f"{action} is not a maintenance request")
    obj = parse_table(table)
    if action == "vacuum_full" and not obj:
        raise InputError("VACUUM FULL of a whole database is refused: name a table with --table")
    statements = build(action, obj, options or {})
    now = datetime.now(UTC)
    step = PlannedAction(step=1, policy=MANUAL, action=action, mode="enforce", object=obj, object_name=object_name(obj),
                         sql=[s.text for s in statements], lock=SPECS[action].lock,
                         in_transaction=SPECS[action].in_transaction, options=dict(options or {}),
                         limits={"lock_timeout": "3s"}, finding={"check": MANUAL, "status": "requested", "value": None,
                                                                  "message": f"{action} requested by hand", "id": ""})
    return Plan(id=uuid.uuid4().hex[:12], created_at=now.isoformat(), expires_at=(now + PLAN_TTL).isoformat(),
                target=identity, config_digest=config_digest(project, catalog), actions=[step])
