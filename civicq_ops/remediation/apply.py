"""`apply`: run a saved plan, and nothing else, under guards.

Refused whole (exit 5) when the plan is expired, made for another server or database, or made
with another configuration. Each step is claimed in the state store (exactly once across runners),
takes a PostgreSQL advisory lock on its object, re-checks its finding just before running, runs
one statement per execute on a dedicated autocommit connection with a short lock_timeout and
bounded, jittered retries (a statement queued for a lock blocks every reader behind it), treats
a WARNING notice as failure, cleans up after a failed concurrent rebuild, verifies its effect, and
leaves an audit record.
"""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from civicq_ops.catalog.model import Catalog
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, PlanRefused
from civicq_ops.core.units import parse_duration
from civicq_ops.remediation.actions import SPECS, build
from civicq_ops.remediation.plan import Plan, PlannedAction, can_refresh_concurrently, config_digest

DEFAULT_LOCK_TIMEOUT = "3s"
DEFAULT_RETRIES = 3


@dataclass
class StepResult:
    step: int
    object_name: str
    action: str
    result: str  # done | skipped | failed
    detail: str
    waits: int = 0
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ApplyResult:
    plan_id: str
    steps: list[StepResult]

    @property
    def exit_code(self) -> int:
        if any(s.result == "failed" for s in self.steps):
            return 3
        if any(s.result == "skipped" and not s.detail.startswith("already") for s in self.steps):
            return 5  # a guard or a precondition stopped a step
        return 0


def target_identity(project: Project, target: Target) -> dict:
    from civicq_ops.postgres.connect import connect
    from civicq_ops.postgres.probe import system_identifier

    with connect(project, target, autocommit=True) as conn:
        db, version = conn.execute("SELECT current_database(), current_setting('server_version')").fetchone()
        sysid = system_identifier(conn)
    return {"name": target.name, "system_identifier": sysid, "database": db, "server_version": version.split()[0]}


def check_plan(project: Project, target: Target, catalog: Catalog, plan: Plan, now: datetime | None = None) -> None:
    """Refuse a plan that is expired, for another server or database, or for another configuration."""
    now = now or datetime.now(UTC)
    if datetime.fromisoformat(plan.expires_at) < now:
        raise PlanRefused(f"plan {plan.id} expired at {plan.expires_at[:19]}: make a new one with `civicq-ops plan`")
    identity = target_identity(project, target)
    for key in ("system_identifier", "database"):
        if plan.target.get(key) != identity[key]:
            raise PlanRefused(f"plan {plan.id} was made for {key.replace('_', ' ')} {plan.target.get(key)}, "
                              f"but target '{target.name}' is {identity[key]}: refusing a foreign plan")
    if plan.config_digest != config_digest(project, catalog):
        raise PlanRefused(f"plan {plan.id} is stale: civicq-ops.yaml or the checks/policies changed since it was made")


def apply_plan(project: Project, target: Target, catalog: Catalog, plan: Plan, store, now: datetime | None = None,
               progress=None) -> ApplyResult:
    check_plan(project, target, catalog, plan, now)
    runner = f"{socket.gethostname()}:{os.getpid()}"
    steps = []
    for action in plan.actions:
        steps.append(_apply_step(project, target, catalog, plan, action, store, runner))
        if progress:
            progress(steps[-1])
    return ApplyResult(plan.id, steps)


def _apply_step(project, target, catalog, plan: Plan, action: PlannedAction, store, runner: str) -> StepResult:
    from civicq_ops.postgres.connect import connect

    t0 = time.monotonic()
    result = StepResult(action.step, action.object_name, action.action, "skipped", "")
    major, minor = (int(x) for x in (plan.target.get("server_version", "18.0") + ".0").split(".")[:2])
    try:
        statements = build(action.action, action.object, action.options, server_major=major, server_minor=minor,
                           can_concurrently=can_refresh_concurrently(action.finding["check"]))
    except CivicqError as e:
        result.result, result.detail = "failed", e.message
        return result
    if [s.text for s in statements] != action.sql:
        result.detail = "refused: the plan's SQL does not match what the action builds (edited plan?)"
        return result
    if not store.claim(plan.id, action.step, target.name, action.policy, action.action, action.object_name,
                       "; ".join(action.sql), action.lock, runner):
        result.detail = "already taken by another runner"
        return result
    before = {"status": action.finding["status"], "value": action.finding["value"]}
    after = None
    conn = connect(project, target, autocommit=True)
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(f"{d.severity}: {d.message_primary}"))
    try:
        key = f"civicq-ops:{target.name}:{action.object_name}"
        if not conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:
            result.detail = "skipped: another runner is acting on this object"
            return result
        try:
            manual = action.finding.get("check") == "manual-request"
            if not manual:  # an explicit request has no finding to re-check
                current = _recheck(project, target, catalog, action)
                if current is None or current.status not in ("warning", "critical"):
                    result.detail = "skipped: precondition: the finding has cleared since the plan was made"
                    return result
                before = {"status": current.status, "value": current.value}
            result.result, result.detail, result.waits = _execute(conn, action, statements, notices, project, target)
            if result.result == "done" and not manual:
                after_finding = _recheck(project, target, catalog, action)
                after = {"status": after_finding.status if after_finding else "gone",
                         "value": after_finding.value if after_finding else None}
                if after_finding is not None and after_finding.status in ("warning", "critical"):
                    result.detail += f"; the finding is still {after_finding.status} ({after_finding.message})"
                else:
                    result.detail += "; verified: the finding cleared"
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
    finally:
        conn.close()
        result.notices = notices
        result.seconds = round(time.monotonic() - t0, 3)
        store.finish(plan.id, action.step, result.result, result.detail, result.waits, notices, before, after)
    return result


def _recheck(project, target, catalog, action: PlannedAction):
    """Run the action's check again and return the finding for the same subject (None if gone)."""
    from civicq_ops.engine.run import RunOptions, Selection, run_checks

    check_id = action.finding["check"]
    result = run_checks(project, [target], catalog, Selection(checks=[check_id]), RunOptions())
    for f in result.findings:
        if f.id == action.finding["id"]:
            return f
    return None


def _execute(conn, action: PlannedAction, statements, notices: list[str], project, target) -> tuple[str, str, int]:
    import psycopg

    if action.action == "backup":
        from civicq_ops.backup.create import BackupOptions, create_verified_backup

        # verified, or the finding it answers (no recent *verified* backup) never clears
        m = create_verified_backup(project, target, BackupOptions(format=action.options.get("format", "directory"),
                                                                  jobs=action.options.get("jobs", 2)))
        return "done", f"backup {m.id} (verified)", 0
    lock_timeout = action.limits.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)
    retries = int(action.limits.get("retries", DEFAULT_RETRIES))
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(parse_duration(lock_timeout) * 1000)}ms",))
    if action.limits.get("statement_timeout"):
        ms = int(parse_duration(action.limits["statement_timeout"]) * 1000)
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{ms}ms",))
    waits = 0
    for statement in statements:
        for attempt in range(retries + 1):
            notices.clear()
            try:
                cur = conn.execute(statement.query, statement.params or None)
                break
            except psycopg.errors.LockNotAvailable:
                waits += 1
                _cleanup_ccnew(conn, action)
                if attempt == retries:
                    return "skipped", (f"skipped: lock contention: no {action.lock} lock within {lock_timeout} "
                                       f"after {retries + 1} attempts"), waits
                time.sleep(min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5))  # jittered backoff
            except psycopg.errors.QueryCanceled as e:
                _cleanup_ccnew(conn, action)
                return "failed", f"statement_timeout: {e.diag.message_primary}", waits
            except psycopg.Error as e:
                _cleanup_ccnew(conn, action)
                return "failed", f"{type(e).__name__}: {e.diag.message_primary or str(e).splitlines()[0]}", waits
        warnings = [n for n in notices if n.startswith("WARNING")]
        if warnings:
            return "failed", f"the server only warned: {warnings[0]}", waits
        if SPECS[action.action].target_kind == "backend":
            row = cur.fetchone()
            if not row or not row[0]:
                return "skipped", ("skipped: the session ended, changed, or is protected (superuser, allowlisted "
                                   "application, or civicq-ops itself)"), waits
    if action.action == "refresh_matview":
        _record_refresh(conn, action)
    return "done", f"{action.action} on {action.object_name}", waits


def _cleanup_ccnew(conn, action: PlannedAction) -> None:
    """A failed REINDEX CONCURRENTLY leaves an INVALID `<name>_ccnew` index behind: drop it."""
    if action.action != "reindex":
        return
    from psycopg import sql

    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_index i ON i.indexrelid = c.oid WHERE NOT i.indisvalid AND n.nspname = %s "
        "AND c.relname LIKE %s", (action.object["schema"], action.object["name"] + "_ccnew%")).fetchall()
    for schema, name in rows:
        try:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(sql.Identifier(schema),
                                                                                   sql.Identifier(name)))
        except Exception:  # noqa: BLE001, S110 - best effort; the invalid-index check reports what is left
            pass


def _record_refresh(conn, action: PlannedAction) -> None:
    exists = conn.execute("SELECT to_regclass('public.matview_refresh_log') IS NOT NULL").fetchone()[0]
    if exists:
        conn.execute("INSERT INTO public.matview_refresh_log (view_name, duration_ms, was_concurrent) VALUES (%s, 0, %s)",
                     (action.object["name"], "CONCURRENTLY" in " ".join(action.sql)))
