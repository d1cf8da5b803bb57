"""`apply`: run a saved plan, and nothing else, under guards.

A plan is a record of intent, not authority. Refused whole (exit 5) when it is for another target,
expired, made for another server or database, made with another configuration, or its steps are
not numbered 1..N with each (action, object) once. Each step is claimed in the state store
(exactly once across runners), takes a PostgreSQL advisory lock on its object, and is then derived
AGAIN from the current policy and the current finding (the check runs again): the policy must exist,
take this action, allow it on this object in this environment, window and limits, and the object
must still have the finding. Options, limits and SQL come from that derivation; a step whose
recorded fields differ from it is refused. It then runs one statement per execute on a dedicated
autocommit connection with the policy's lock_timeout and bounded, jittered retries, treats a WARNING
notice as failure, cleans up after a failed concurrent rebuild, verifies its effect, and leaves an
audit record.
"""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from civicq_ops.catalog.model import Catalog
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, ExitCode, PlanRefused
from civicq_ops.core.units import parse_duration
from civicq_ops.engine.findings import Finding
from civicq_ops.facts import default_providers
from civicq_ops.postgres.connect import connect, one_row
from civicq_ops.remediation.actions import SPECS, Statement, build, check_options
from civicq_ops.remediation.facts import DatabaseFacts
from civicq_ops.remediation.guards import DEFAULT_LOCK_TIMEOUT, Proposal, blocked_by, object_of, wants
from civicq_ops.remediation.plan import (
    MAX_PLAN_TTL,
    PLAN_TTL,
    Plan,
    PlannedAction,
    config_digest,
    planned_action,
    server_version_of,
    statements_for,
    steps_are_well_formed,
    target_identity,
)

DEFAULT_RETRIES = 3
MANUAL = "manual-request"
REQUEST_ACTIONS = ("vacuum", "vacuum_full", "analyze")
COMPARED = ("object", "object_name", "sql", "options", "limits", "lock", "in_transaction", "mode")


@dataclass
class StepResult:
    step: int
    object_name: str
    action: str
    result: str  # done | skipped | refused | failed
    detail: str
    waits: int = 0
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ApplyResult:
    plan_id: str
    steps: list[StepResult]

    @property
    def exit_code(self) -> ExitCode:
        if any(s.result == "failed" for s in self.steps):
            return ExitCode.EXECUTION_ERROR
        if any(s.result == "refused" or (s.result == "skipped" and not s.detail.startswith("already"))
               for s in self.steps):
            return ExitCode.APPLY_REFUSED  # a guard or a precondition stopped a step
        return ExitCode.OK


@dataclass
class Derived:
    """A step derived again at apply time: the action to run, or why not (result and detail)."""

    action: PlannedAction | None = None
    statements: list[Statement] = field(default_factory=list)
    result: str = "done"
    detail: str = ""
    finding: Finding | None = None


def check_plan(project: Project, target: Target, catalog: Catalog, plan: Plan, now: datetime | None = None) -> None:
    """Refuse a plan for another target, expired, for another server or database, or another configuration."""
    now = now or datetime.now(UTC)
    if plan.target.get("name") != target.name:
        raise PlanRefused(f"plan {plan.id} was made for target '{plan.target.get('name')}', not '{target.name}': "
                          f"apply it to its own target (or make a plan for '{target.name}')")
    expires, created = datetime.fromisoformat(plan.expires_at), datetime.fromisoformat(plan.created_at)
    if expires < now:
        raise PlanRefused(f"plan {plan.id} expired at {plan.expires_at[:19]}: make a new one with `civicq-ops plan`")
    if expires - created > MAX_PLAN_TTL or created > now + PLAN_TTL:
        raise PlanRefused(f"plan {plan.id} refused: it claims to be valid from {plan.created_at[:19]} to "
                          f"{plan.expires_at[:19]}, longer than a plan may live ({MAX_PLAN_TTL.days} days)")
    identity = target_identity(project, target)
    for key in ("system_identifier", "database"):
        if plan.target.get(key) != identity[key]:
            raise PlanRefused(f"plan {plan.id} was made for {key.replace('_', ' ')} {plan.target.get(key)}, "
                              f"but target '{target.name}' is {identity[key]}: refusing a foreign plan")
    if plan.config_digest != config_digest(project, catalog):
        raise PlanRefused(f"plan {plan.id} is stale: civicq-ops.yaml or the checks/policies changed since it was made")


def apply_plan(project: Project, target: Target, catalog: Catalog, plan: Plan, store, now: datetime | None = None,
               progress=None, requests: bool = False) -> ApplyResult:
    """Run `plan` on `target`. `requests=True` lets explicit requests (`civicq-ops vacuum`) run: only
    the command that builds such a one-step plan passes it, never `apply` of a file."""
    check_plan(project, target, catalog, plan, now)
    steps_are_well_formed(plan)
    runner = f"{socket.gethostname()}:{os.getpid()}"
    per_policy: dict[str, int] = {}
    steps = []
    for action in plan.actions:
        steps.append(_apply_step(project, target, catalog, plan, action, store, runner, requests, per_policy, now))
        if progress:
            progress(steps[-1])
    return ApplyResult(plan.id, steps)


def _apply_step(project, target, catalog, plan: Plan, action: PlannedAction, store, runner: str, requests: bool,
                per_policy: dict[str, int], now: datetime | None) -> StepResult:
    t0 = time.monotonic()
    result = StepResult(action.step, action.object_name, action.action, "skipped", "")
    if not store.claim(plan.id, action.step, target.name, action.policy, action.action, action.object_name,
                       "; ".join(action.sql), action.lock, runner):
        result.detail = "already taken by another runner"
        return result
    before: dict | None = {"status": action.finding.get("status"), "value": action.finding.get("value")}
    after = None
    notices: list[str] = []
    recorded = None  # what the audit row says, when it differs from the step's result
    conn = None
    try:
        try:
            conn = connect(project, target, autocommit=True)
        except CivicqError as e:
            result.result, result.detail = "failed", f"could not connect: {e.message} (nothing ran; it may run again)"
            recorded = "not-run"
            return result
        conn.add_notice_handler(lambda d: notices.append(f"{d.severity}: {d.message_primary}"))
        key = f"civicq-ops:{target.name}:{action.object_name}"
        if not one_row(conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)))[0]:
            result.detail = "skipped: another runner is acting on this object"
            return result
        try:
            derived = derive_step(project, target, catalog, plan, action, DatabaseFacts(conn), store, requests,
                                  per_policy, now or datetime.now(UTC))
            if derived.action is None:
                result.result, result.detail = derived.result, derived.detail
                if derived.result == "failed":
                    recorded = "not-run"
                return result
            step = derived.action
            per_policy[step.policy] = per_policy.get(step.policy, 0) + 1
            if derived.finding is not None:
                before = {"status": derived.finding.status, "value": derived.finding.value}
            result.result, result.detail, result.waits = _execute(conn, step, derived.statements, notices, project,
                                                                  target)
            if result.result == "done" and step.policy != MANUAL:
                after_finding, error = recheck(project, target, catalog, step)
                if error:
                    after = {"status": "unknown", "value": None}
                    result.detail += f"; could not verify: {error}"
                else:
                    after = {"status": after_finding.status if after_finding else "gone",
                             "value": after_finding.value if after_finding else None}
                    if after_finding is not None and after_finding.status in ("warning", "critical"):
                        result.detail += f"; the finding is still {after_finding.status} ({after_finding.message})"
                    else:
                        result.detail += "; verified: the finding cleared"
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
    finally:
        if conn is not None:
            conn.close()
        result.notices = notices
        result.seconds = round(time.monotonic() - t0, 3)
        store.finish(plan.id, action.step, recorded or result.result, result.detail, result.waits, notices, before,
                     after)
    return result


def derive_step(project, target, catalog: Catalog, plan: Plan, action: PlannedAction, facts, store, requests: bool,
                per_policy: dict[str, int], now: datetime) -> Derived:
    """Derive `action` again from the current policy and finding; refuse what does not re-derive."""
    version = server_version_of(plan.target)
    if action.policy == MANUAL or action.finding.get("check") == MANUAL:
        return _derive_request(action, requests, version)
    policy = next((p for p in catalog.policies if p.id == action.policy), None)
    if policy is None:
        return _refused(f"no policy '{action.policy}' exists now")
    if policy.action != action.action:
        return _refused(f"policy {policy.id} takes action {policy.action}, not {action.action}")
    if action.finding.get("check") != policy.check:
        return _refused(f"policy {policy.id} acts on findings of {policy.check}, not {action.finding.get('check')}")
    current, error = recheck(project, target, catalog, action, policy.check)
    if error:
        return Derived(result="failed", detail=f"the re-check of {policy.check} failed, so nothing ran: {error}")
    check = catalog.checks.get(policy.check)
    if current is None or not wants(policy, current, check):
        status = current.status if current else "gone"
        return Derived(result="skipped", detail=f"skipped: precondition: the finding has cleared since the plan was "
                                                f"made (now {status})")
    obj, why_not = object_of(check.object if check else None, current)
    last = (lambda pol, name: store.last_action(target.name, pol, name)) if store else None
    proposal = Proposal(finding=current, policy=policy, check=check, target=target, now=now, obj=obj,
                        object_error=why_not, last_action=last, server_version=version, facts=facts,
                        planned_for_policy=per_policy.get(policy.id, 0))
    reason = blocked_by(proposal)
    if reason:
        return _refused(f"policy {policy.id} does not allow it now: {reason}")
    try:
        derived = planned_action(proposal, action.step)
        statements = statements_for(proposal)
    except CivicqError as e:
        return _refused(e.message)
    for name in COMPARED:
        if getattr(derived, name) != getattr(action, name):
            return _refused(f"the plan's {name} ({getattr(action, name)}) is not what policy {policy.id} gives now "
                            f"({getattr(derived, name)})")
    return Derived(action=derived, statements=statements, finding=current)


def _derive_request(action: PlannedAction, requests: bool, version: tuple[int, int]) -> Derived:
    """An explicit request (`civicq-ops vacuum --table T`) has no policy: it runs only from the command
    that made it, never from a plan file, and only as one of the request actions."""
    if not requests:
        return _refused("a manual request is not a policy's action: a plan file runs policy steps only "
                        "(use `civicq-ops vacuum` or `analyze` for a request)")
    if action.action not in REQUEST_ACTIONS:
        return _refused(f"{action.action} is not a maintenance request")
    try:
        check_options(action.action, action.options)
        statements = build(action.action, action.object, action.options, server_major=version[0],
                           server_minor=version[1])
    except CivicqError as e:
        return _refused(e.message)
    if [s.text for s in statements] != action.sql:
        return _refused("the request's SQL does not match what the action builds")
    return Derived(action=action, statements=statements)


def _refused(reason: str) -> Derived:
    return Derived(result="refused", detail=f"refused: {reason}")


def recheck(project, target, catalog, action: PlannedAction, check_id: str | None = None
            ) -> tuple[Finding | None, str | None]:
    """Run the action's check again: (the finding for the same subject or None, None), or (None, why
    the check itself failed). A failed re-check never reads as a cleared finding."""
    from civicq_ops.engine.run import RunOptions, Selection, run_checks

    check_id = check_id or action.finding["check"]
    result = run_checks(project, [target], catalog, Selection(checks=[check_id]),
                        RunOptions(facts=default_providers(project)))
    if result.errors:
        return None, result.errors[0]["message"]
    for f in result.findings:
        if f.check == check_id and f.status == "error":
            return None, f.reason or f.message
    for f in result.findings:
        if f.id == action.finding.get("id"):
            return f, None
    return None, None


def _execute(conn, action: PlannedAction, statements, notices: list[str], project, target) -> tuple[str, str, int]:
    if action.action == "backup":
        from civicq_ops.backup.create import BackupOptions, create_verified_backup

        # verified, or the finding it answers (no recent *verified* backup) never clears
        m = create_verified_backup(project, target, BackupOptions(format=action.options.get("format", "directory"),
                                                                  jobs=action.options.get("jobs", project.backups.jobs)))
        return "done", f"backup {m.id} (verified)", 0
    lock_timeout = action.limits.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)
    retries = int(action.limits.get("retries", DEFAULT_RETRIES))
    lock_ms = max(1, int(parse_duration(lock_timeout) * 1000))  # never 0: that would wait forever
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{lock_ms}ms",))
    if action.limits.get("statement_timeout"):
        ms = int(parse_duration(action.limits["statement_timeout"]) * 1000)
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{ms}ms",))
    waits = 0
    started = time.monotonic()
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
        if SPECS[action.action].kinds == ("backend",):
            row = cur.fetchone()
            if not row or not row[0]:
                return "skipped", ("skipped: the session ended, changed, or is protected (superuser, allowlisted "
                                   "application, or civicq-ops itself)"), waits
    if action.action == "refresh_matview":
        _record_refresh(conn, action, round((time.monotonic() - started) * 1000))
    return "done", f"{action.action} on {action.object_name}", waits


def _cleanup_ccnew(conn, action: PlannedAction) -> None:
    """A failed REINDEX CONCURRENTLY leaves an INVALID `<name>_ccnew` index behind: drop it."""
    if action.action != "reindex":
        return
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_index i ON i.indexrelid = c.oid WHERE NOT i.indisvalid AND n.nspname = %s "
        "AND c.relname LIKE %s", (action.object["schema"], action.object["name"] + "_ccnew%")).fetchall()
    for schema, name in rows:
        try:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(sql.Identifier(schema),
                                                                                   sql.Identifier(name)))
        except psycopg.Error:  # best effort; the invalid-index check reports what is left
            pass


def _record_refresh(conn, action: PlannedAction, duration_ms: int) -> None:
    """CivicQ's refresh log gets the measured time of the refresh (when the table exists)."""
    exists = conn.execute("SELECT to_regclass('public.matview_refresh_log') IS NOT NULL").fetchone()[0]
    if exists:
        conn.execute("INSERT INTO public.matview_refresh_log (view_name, duration_ms, was_concurrent) "
                     "VALUES (%s, %s, %s)", (action.object["name"], duration_ms, "CONCURRENTLY" in " ".join(action.sql)))
