"""A run: probe each target once, run the selected checks over a small pool of read-only
connections, turn rows into findings, apply waivers and the baseline, and decide the exit code.

Every check runs in its own `BEGIN READ ONLY` transaction with its statement_timeout, a short
lock_timeout and a `/* civicq-ops:ID */` comment; a failing or timed-out check becomes an `error`
finding and the others go on.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from civicq_ops.catalog.model import Catalog, Check
from civicq_ops.config import Project, Target
from civicq_ops.core.capabilities import Capabilities, unmet_requirement
from civicq_ops.core.errors import CivicqError, ExitCode, InputError
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.baseline import is_new_or_worse, load_baseline
from civicq_ops.engine.evaluate import evaluate_rows
from civicq_ops.engine.findings import Finding, Summary
from civicq_ops.engine.waivers import apply_waivers
from civicq_ops.templating.render import RenderedQuery, render_query

LOCK_TIMEOUT_MS = 1000
DEFAULT_POOL = 2


@dataclass
class Selection:
    checks: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def pick(self, catalog: Catalog) -> list[Check]:
        unknown = [c for c in self.checks if c not in catalog.checks]
        if unknown:
            raise InputError(f"unknown check {', '.join(unknown)} (see `civicq-ops checks list`)")
        chosen = []
        for check in catalog.checks.values():
            if self.checks and check.id not in self.checks:
                continue
            if self.tags and not set(self.tags) & set(check.tags):
                continue
            if self.categories and check.category not in self.categories:
                continue
            chosen.append(check)
        return chosen


@dataclass
class RunOptions:
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # check id -> param -> value
    fail_on: str = "critical"
    budget_s: float | None = None
    pool_size: int = DEFAULT_POOL
    baseline: str | None = None
    now: datetime | None = None


@dataclass
class TargetRun:
    name: str
    server_version: str | None = None
    role: str | None = None
    system_identifier: str | None = None
    error: str | None = None


@dataclass
class RunResult:
    id: str
    started_at: datetime
    duration_s: float
    fail_on: str
    targets: list[TargetRun]
    findings: list[Finding]
    checks: dict[str, Check]
    errors: list[dict] = field(default_factory=list)
    notices: list[dict] = field(default_factory=list)
    baseline: str | None = None
    gate_failures: list[str] = field(default_factory=list)
    exit_code: int = 0

    @property
    def summary(self) -> Summary:
        return Summary.of(self.findings)


Progress = Callable[[str, int, int], None]


def resolve_params(check: Check, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then overrides (strings from the command line are read as YAML scalars)."""
    import yaml

    params = check.default_params()
    for name, raw in overrides.items():
        if name not in check.params:
            raise InputError(f"check '{check.id}' has no param '{name}' (it has: {', '.join(check.params) or 'none'})")
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        kind = check.params[name].type
        if kind == "array" and not isinstance(value, list):
            value = [v.strip() for v in str(raw).split(",") if v.strip()]
        if kind == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise InputError(f"--param {check.id}.{name}: {raw!r} is not an integer")
        if kind == "number" and not isinstance(value, (int, float)):
            raise InputError(f"--param {check.id}.{name}: {raw!r} is not a number")
        if kind in ("string", "duration", "bytes"):
            value = str(raw) if isinstance(raw, str) else value
        params[name] = value
    return params


def choose_query(check: Check, caps: Capabilities) -> str:
    """The first variant whose `when` the target meets, else the check's own query."""
    for variant in check.variants:
        if unmet_requirement(variant.when, caps) is None:
            return variant.query
    return check.query


def render_check(check: Check, params: dict[str, Any], caps: Capabilities) -> RenderedQuery:
    return render_query(choose_query(check, caps), {"params": params, "target": caps.to_context()})


def run_checks(
    project: Project, targets: list[Target], catalog: Catalog, selection: Selection, options: RunOptions,
    progress: Progress | None = None,
) -> RunResult:
    """Run the selected checks on every target (concurrently) and decide the gate."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    checks = selection.pick(catalog)
    for check_id in options.params:
        if check_id not in catalog.checks:
            raise InputError(f"--param names unknown check '{check_id}'")
    params = {c.id: resolve_params(c, options.params.get(c.id, {})) for c in checks}
    baseline = load_baseline(options.baseline) if options.baseline else None
    deadline = t0 + options.budget_s if options.budget_s else None
    counter = _Counter(len(checks) * len(targets), progress)

    def one(target: Target) -> tuple[TargetRun, list[Finding], list[dict]]:
        return _run_target(project, target, checks, params, options, deadline, counter)

    if len(targets) == 1:
        outcomes = [one(targets[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
            outcomes = list(pool.map(one, targets))
    findings = [f for _, fs, _ in outcomes for f in fs]
    errors = [e for _, _, es in outcomes for e in es]
    today = (options.now or started).date()
    notices = apply_waivers(findings, catalog.waivers, today, {c.id for c in checks})
    result = RunResult(id=uuid.uuid4().hex[:12], started_at=started, duration_s=0.0, fail_on=options.fail_on,
                       targets=[o[0] for o in outcomes], findings=findings, checks={c.id: c for c in checks},
                       errors=errors, notices=notices, baseline=options.baseline)
    result.gate_failures = gate_failures(findings, options.fail_on, baseline)
    result.exit_code = decide_exit(result)
    result.duration_s = round(time.monotonic() - t0, 3)
    return result


def gate_failures(findings: list[Finding], fail_on: str, baseline: dict[str, str] | None) -> list[str]:
    level = SEVERITY[fail_on]
    failing = []
    for f in findings:
        if f.waived or f.status == "error" or SEVERITY[f.status] < level:
            continue
        if baseline is not None and not is_new_or_worse(f, baseline):
            continue
        failing.append(f.id)
    return failing


def decide_exit(result: RunResult) -> int:
    if result.errors or any(f.status == "error" for f in result.findings):
        return int(ExitCode.EXECUTION_ERROR)  # outranks a failed gate
    if result.gate_failures:
        return int(ExitCode.GATE_FAILED)
    return int(ExitCode.OK)


class _Counter:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = total, 0, progress
        self.lock = threading.Lock()

    def tick(self, label: str) -> None:
        with self.lock:
            self.done += 1
            done = self.done
        if self.progress:
            self.progress(label, done, self.total)


def _run_target(project, target, checks, params, options, deadline, counter):
    from civicq_ops.postgres.connect import connect
    from civicq_ops.postgres.probe import probe

    run = TargetRun(name=target.name)
    try:
        connect_started = time.perf_counter()
        first = connect(project, target, autocommit=False)
        connect_ms = (time.perf_counter() - connect_started) * 1000
    except CivicqError as e:
        run.error = e.message
        for c in checks:
            counter.tick(c.id)
        return run, [], [{"target": target.name, "check": None, "message": e.message}]
    needs = [c.requires for c in checks] + [v.when for c in checks for v in c.variants]
    relations = sorted({r for req in needs for r in req.get("relations", [])})
    settings = sorted({s for req in needs for s in (req.get("settings") or {})})
    try:
        caps = probe(first, name=target.name, environment=target.environment, local=target.embedded,
                     relations=relations, settings=settings, expected_role=target.role)
        caps.connect_ms = round(connect_ms, 2)
    except Exception as e:  # noqa: BLE001 - any probe failure is this target's error
        from civicq_ops.core.errors import first_line

        first.close()
        for c in checks:
            counter.tick(c.id)
        message = f"probing target '{target.name}' failed: {first_line(e)}"
        run.error = message
        return run, [], [{"target": target.name, "check": None, "message": message}]
    run.server_version, run.role, run.system_identifier = caps.version_text, caps.role, caps.system_identifier
    if any(c.category == "backup" for c in checks):
        from civicq_ops.backup.create import backups_dir
        from civicq_ops.backup.inventory import backup_facts

        caps.backup = backup_facts(backups_dir(project), (caps.system_identifier, caps.database),
                                   expect=(target.backups or {}).get("expect"))

    connections: list = [first]
    spare = [first]
    local = threading.local()
    lock = threading.Lock()

    def conn_for_thread():
        if getattr(local, "conn", None) is None or local.conn.closed:
            with lock:
                if spare:
                    local.conn = spare.pop()
                else:
                    local.conn = connect(project, target, autocommit=False)
                    connections.append(local.conn)
        return local.conn

    def work(check: Check) -> list[Finding]:
        try:
            return _run_one(check, params[check.id], caps, conn_for_thread, deadline, options.now)
        finally:
            counter.tick(check.id)

    try:
        workers = max(1, min(options.pool_size, len(checks)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(work, checks))
    finally:
        for conn in connections:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass
    return run, [f for fs in results for f in fs], []


def _skipped(check: Check, caps: Capabilities, reason: str, status: str = "skipped") -> Finding:
    return Finding(check=check.id, category=check.category, target=caps.name, subject=None, status=status,
                   title=check.title, reason=reason, unit=check.unit, remediation=check.remediation,
                   message=f"{check.title}: {reason}")


def _run_one(check: Check, params, caps: Capabilities, get_conn, deadline, now) -> list[Finding]:
    import psycopg

    from civicq_ops.core.errors import first_line

    reason = unmet_requirement(check.requires, caps)
    if reason:
        return [_skipped(check, caps, reason)]
    timeout = check.timeout_s
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0.05:
            return [_skipped(check, caps, "not run: the run budget was used up", "error")]
        timeout = min(timeout, left)
    try:
        rendered = render_check(check, params, caps)
    except CivicqError as e:
        return [_skipped(check, caps, e.message, "error")]
    try:
        conn = get_conn()
    except CivicqError as e:
        return [_skipped(check, caps, e.message, "error")]
    try:
        # Committed, not rolled back: a read-only commit changes nothing, and rollbacks would
        # inflate the rollback ratio that a check of this catalogue watches.
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
                         (f"{max(1, int(timeout * 1000))}ms", f"{LOCK_TIMEOUT_MS}ms"))
            # Always pass the binds (even none): the text escapes literal % as %%, which psycopg
            # turns back into % only when it processes placeholders.
            cur = conn.execute(f"/* civicq-ops:{check.id} */ {rendered.text}", rendered.binds)
            columns = [d.name for d in cur.description or []]
            rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    except psycopg.errors.QueryCanceled:
        return [_skipped(check, caps, f"timed out after {timeout:.1f}s (statement_timeout)", "error")]
    except psycopg.errors.LockNotAvailable:
        return [_skipped(check, caps, f"waited more than {LOCK_TIMEOUT_MS} ms for a lock (lock_timeout)", "error")]
    except psycopg.errors.ReadOnlySqlTransaction as e:
        return [_skipped(check, caps, f"the query tried to write in a READ ONLY transaction: {first_line(e)}", "error")]
    except psycopg.Error as e:
        if conn.closed or conn.broken:
            get_conn()  # the next check on this thread reconnects
        return [_skipped(check, caps, f"query failed: {first_line(e)}", "error")]
    return evaluate_rows(check, rows, params, caps, now)
