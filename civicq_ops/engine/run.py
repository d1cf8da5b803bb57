"""A run: probe each target once, gather the runner facts its checks declare, run the selected
checks over a psycopg_pool of connections, turn rows into findings, apply waivers and the
baseline, and decide the exit code.

Every check runs in its own `BEGIN READ ONLY` transaction with its statement_timeout, a short
lock_timeout and a `/* civicq-ops:ID */` comment; a failing or timed-out check becomes an `error`
finding and the others go on.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from civicq_ops.catalog.model import Catalog, Check
from civicq_ops.catalog.params import ParamValueError, read_value, violation
from civicq_ops.catalog.sqlcheck import inspect_query
from civicq_ops.catalog.verdicts import VerdictCache, verdicts_in
from civicq_ops.config import Project, Target
from civicq_ops.core.capabilities import Capabilities, unmet_requirement
from civicq_ops.core.errors import CivicqError, ExitCode, InputError, TargetUnreachable, first_line
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.baseline import Comparison, compare, load_baseline
from civicq_ops.engine.delta import Counters, evaluate_delta
from civicq_ops.engine.evaluate import evaluate_counted
from civicq_ops.engine.facts import FactContext, FactProvider, gather
from civicq_ops.engine.findings import Finding, Summary
from civicq_ops.engine.shared import Probed, Rows, SharedResults
from civicq_ops.engine.waivers import apply_waivers
from civicq_ops.postgres.connect import connect, open_pool, pooled
from civicq_ops.postgres.deadline import GRACE_S
from civicq_ops.postgres.deadline import deadline as query_deadline
from civicq_ops.postgres.probe import probe
from civicq_ops.templating.render import RenderedQuery, render_query

LOCK_TIMEOUT_MS = 1000
DEFAULT_POOL = 2


@dataclass
class Selection:
    """Which checks run. Each selector kind is a union of its values (`--tag a,b`: tagged a or b);
    different kinds intersect (`--category bloat --tag quick`: quick checks of the bloat category).
    A value that names nothing, or a combination that leaves no check, is invalid input: a gate
    that runs no check must not pass."""

    checks: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def pick(self, catalog: Catalog) -> list[Check]:
        known = {"check": set(catalog.checks), "tag": {t for c in catalog.checks.values() for t in c.tags},
                 "category": {c.category for c in catalog.checks.values()}}
        asked = {"check": self.checks, "tag": self.tags, "category": self.categories}
        problems = [_unknown(kind, value, known[kind]) for kind, values in asked.items()
                    for value in values if value not in known[kind]]
        if problems:
            raise InputError("; ".join(problems) + " (see `civicq-ops checks list`)")
        chosen = []
        for check in catalog.checks.values():
            if self.checks and check.id not in self.checks:
                continue
            if self.tags and not set(self.tags) & set(check.tags):
                continue
            if self.categories and check.category not in self.categories:
                continue
            chosen.append(check)
        if not chosen:
            if not catalog.checks:
                raise InputError("the catalogue has no checks (see paths.checks in civicq-ops.yaml)")
            given = " and ".join(f"--{kind} {','.join(values)}" for kind, values in asked.items() if values)
            raise InputError(f"{given} together select no check: selectors of different kinds intersect "
                             "(run the selections separately, or list the checks with --check)")
        return chosen


def _unknown(kind: str, value: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, sorted(known), n=3, cutoff=0.8)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"unknown {kind} {value}{hint}"


@dataclass
class RunOptions:
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # check id -> param -> value
    fail_on: str = "critical"
    budget_s: float | None = None
    pool_size: int = DEFAULT_POOL
    baseline: str | None = None
    now: datetime | None = None
    facts: Mapping[str, FactProvider] = field(default_factory=dict)  # runner facts: name -> provider
    counters: Counters | None = None  # previous counters for `delta:` checks (state/counters.py)
    shared: SharedResults | None = None  # probes and query results shared with another run (engine/shared.py)
    list_ok: bool = False  # queries that count ok subjects in SQL return them instead (`--verbose`)


@dataclass
class TargetRun:
    name: str
    server_version: str | None = None
    role: str | None = None
    system_identifier: str | None = None
    error: str | None = None
    database: str | None = None
    ok_counts: dict[str, int] = field(default_factory=dict)  # check id -> ok subjects counted in SQL, not listed


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
    exit_code: ExitCode = ExitCode.OK
    comparison: Comparison | None = None  # against the baseline, when there is one

    @property
    def ok_counts(self) -> dict[tuple[str, str], int]:
        """(check, target) -> ok subjects a query counted instead of returning (evaluate.OK_COUNT_COLUMN)."""
        return {(check, t.name): n for t in self.targets for check, n in t.ok_counts.items()}

    @property
    def summary(self) -> Summary:
        """The findings by status, with the ok subjects counted in SQL; a target that could not be
        reached or probed counts as an error."""
        summary = Summary.of(self.findings)
        summary.ok += sum(n for t in self.targets for n in t.ok_counts.values())
        summary.error += sum(1 for t in self.targets if t.error)
        return summary


Progress = Callable[[str, int, int], None]


def resolve_params(check: Check, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then overrides (strings from the command line are read as YAML scalars), each
    checked against its declared type, minimum/maximum, enum and pattern: a bad value is exit 2."""
    params = check.default_params()
    for name, raw in overrides.items():
        if name not in check.params:
            raise InputError(f"check '{check.id}' has no param '{name}' (it has: {', '.join(check.params) or 'none'})")
        try:
            value = read_value(check.params[name], raw)
            problem = violation(check.params[name], value)
        except ParamValueError as e:
            problem = str(e)
        if problem:
            raise InputError(f"--param {check.id}.{name}: {problem}")
        params[name] = value
    return params


def choose_query(check: Check, caps: Capabilities) -> str:
    """The first variant whose `when` the target meets, else the check's own query."""
    for variant in check.variants:
        if unmet_requirement(variant.when, caps) is None:
            return variant.query
    return check.query


def render_check(check: Check, params: dict[str, Any], caps: Capabilities,
                 facts: Mapping[str, Mapping[str, Any]] | None = None, list_ok: bool = False) -> RenderedQuery:
    """The check's query for this target, with `params`, `target`, the runner `facts` it declares and
    `run` (`run.list_ok`: return every ok subject rather than a count of those far from the thresholds)."""
    facts = facts or {}
    return render_query(choose_query(check, caps), {"params": params, "target": caps.to_context(),
                                                    "facts": {n: facts[n] for n in check.facts if n in facts},
                                                    "run": {"list_ok": list_ok}})


def run_checks(
    project: Project, targets: list[Target], catalog: Catalog, selection: Selection, options: RunOptions,
    progress: Progress | None = None,
) -> RunResult:
    """Run the selected checks on every target (concurrently) and decide the gate."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    if options.budget_s is not None and options.budget_s <= 0:
        raise InputError(f"--budget must be more than 0s, not {options.budget_s:g}s")
    checks = selection.pick(catalog)
    targets = list({t.name: t for t in targets}.values())  # `--target a,a` runs `a` once
    for check_id, overrides in options.params.items():
        if check_id not in catalog.checks:
            raise InputError(f"--param names unknown check '{check_id}'")
        resolve_params(catalog.checks[check_id], overrides)  # every value is checked, selected or not
    params = {c.id: resolve_params(c, options.params.get(c.id, {})) for c in checks}
    baseline = load_baseline(options.baseline) if options.baseline else None
    deadline = t0 + options.budget_s if options.budget_s is not None else None
    counter = _Counter(len(checks) * len(targets), progress)
    verdicts = verdicts_in()

    def one(target: Target) -> tuple[TargetRun, list[Finding], list[dict]]:
        return _run_target(project, target, checks, params, options, deadline, counter, verdicts)

    if len(targets) == 1:
        outcomes = [one(targets[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
            outcomes = list(pool.map(one, targets))
    findings = unique_findings([f for _, fs, _ in outcomes for f in fs])
    errors = [e for _, _, es in outcomes for e in es]
    today = (options.now or started).date()
    notices = apply_waivers(findings, catalog.waivers, today, {c.id for c in checks})
    result = RunResult(id=uuid.uuid4().hex[:12], started_at=started, duration_s=0.0, fail_on=options.fail_on,
                       targets=[o[0] for o in outcomes], findings=findings, checks={c.id: c for c in checks},
                       errors=errors, notices=notices, baseline=options.baseline)
    if baseline is not None:
        result.comparison = compare(baseline, findings, result.targets, set(result.checks))
    result.gate_failures = gate_failures(findings, options.fail_on, result.comparison)
    result.exit_code = decide_exit(result)
    result.duration_s = round(time.monotonic() - t0, 3)
    return result


def unique_findings(findings: list[Finding]) -> list[Finding]:
    """One finding per id. Two rows with the same subject (a check whose subject columns do not
    identify a row, e.g. pg_stat_statements keyed by queryid alone while it keeps a row per role)
    would give two findings with one id, which history and baselines cannot tell apart: the first
    is kept and becomes an error that names the check and the subject."""
    kept: dict[str, Finding] = {}
    extra: dict[str, int] = {}
    for f in findings:
        if f.id in kept:
            extra[f.id] = extra.get(f.id, 1) + 1
        else:
            kept[f.id] = f
    for fid, count in extra.items():
        f = kept[fid]
        columns = ", ".join(f.subject) if f.subject else "none"
        f.reason = (f"check '{f.check}' returned {count} rows for the subject {f.subject_text()}: its subject "
                    f"columns ({columns}) do not identify one row")
        f.status, f.message = "error", f"{f.title}: {f.reason}"
    return list(kept.values())


def gate_failures(findings: list[Finding], fail_on: str, comparison: Comparison | None) -> list[str]:
    level = SEVERITY[fail_on]
    failing = []
    for f in findings:
        if f.waived or f.status == "error" or SEVERITY[f.status] < level:
            continue
        if comparison is not None and not comparison.fails(f):
            continue
        failing.append(f.id)
    return failing


def decide_exit(result: RunResult) -> ExitCode:
    if result.errors or any(f.status == "error" for f in result.findings):
        return ExitCode.EXECUTION_ERROR  # outranks a failed gate
    if result.gate_failures:
        return ExitCode.GATE_FAILED
    return ExitCode.OK


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


def _run_target(project: Project, target: Target, checks: list[Check], params: dict[str, dict[str, Any]],
                options: RunOptions, deadline: float | None, counter: _Counter,
                verdicts: VerdictCache | None = None) -> tuple[TargetRun, list[Finding], list[dict]]:
    run = TargetRun(name=target.name)
    health = _TargetHealth()

    workers = max(1, min(options.pool_size, len(checks)))
    pool: ConnectionPool | None = None

    def failed(message: str) -> tuple[TargetRun, list[Finding], list[dict]]:
        if pool is not None:
            pool.close(timeout=0.2)
        for c in checks:
            counter.tick(c.id)
        run.error = message
        return run, [], [{"target": target.name, "check": None, "message": message}]

    needs = [c.requires for c in checks] + [v.when for c in checks for v in c.variants]
    relations = sorted({r for req in needs for r in req.get("relations", [])})
    settings = sorted({s for req in needs for s in (req.get("settings") or {})})
    def facts_needed(caps: Capabilities) -> set[str]:
        """The runner facts of the checks this server can run."""
        return {name for c in checks if unmet_requirement(c.requires, caps) is None for name in c.facts}

    kept = options.shared.probed(target.name, set(relations), set(settings)) if options.shared else None
    reused = kept is not None and facts_needed(kept.caps) <= kept.needed
    if kept is not None and reused:
        caps = kept.caps
        pending = _PendingFacts.known(kept.facts, kept.missing, set(kept.needed))
    else:
        first: psycopg.Connection | None = None
        try:
            first = connect(project, target, autocommit=False, timeout=_left(deadline))
            # The target answers: the pool opens its connections now, while the probe runs (one
            # per worker, no more: a connection still starting shows in pg_stat_activity).
            pool = open_pool(project, target, workers, warm=workers)
            with query_deadline(first, min(PROBE_LIMIT_S, _left(deadline) or PROBE_LIMIT_S)) as watch:
                try:
                    caps = probe(first, name=target.name, environment=target.environment,
                                 local=target.embedded, relations=relations, settings=settings,
                                 expected_role=target.role)
                except psycopg.Error as e:
                    why = watch.describe() if watch.fired else first_line(e)
                    first.close()
                    return failed(f"probing target '{target.name}' failed: {why}")
            needed = facts_needed(caps)
            # Gathered on the probe's connection (which it then closes) while the checks that
            # read no fact run: a fresh connection's timing, the clock, disk and backups.
            pending = _PendingFacts.start(needed, options.facts, FactContext(project, target, caps, first, deadline))
        except CivicqError as e:
            if first is not None:
                first.close()
            return failed(e.message)
        except BaseException:  # a bug or an interrupt: the pool's threads stop with it
            if first is not None:
                first.close()
            if pool is not None:
                pool.close(timeout=0.2)
            raise
    run.server_version, run.role, run.system_identifier = caps.version_text, caps.role, caps.system_identifier
    run.database = caps.database
    if pool is None:
        pool = open_pool(project, target, workers, warm=workers)

    @contextmanager
    def conn_from_pool() -> Iterator[psycopg.Connection]:
        if health.dead:
            raise TargetUnreachable(f"not run: {health.dead}")
        try:
            with pooled(pool, target) as conn:
                yield conn
        except TargetUnreachable as e:
            health.dead = health.dead or e.message
            raise

    def work(check: Check) -> list[Finding]:
        try:
            facts, missing = pending.wait() if check.facts else ({}, {})
            return _run_one(check, params[check.id], caps, facts, missing, conn_from_pool, deadline, options.now,
                            health, options.counters, options.shared, options.list_ok, run.ok_counts, verdicts)
        except CivicqError as e:  # never lose the other findings of this target
            return [_skipped(check, caps, e.message, "error")]
        finally:
            counter.tick(check.id)

    # The checks that read runner facts go last: the others need not wait for them.
    order = sorted(range(len(checks)), key=lambda i: bool(checks[i].facts))
    results: list[list[Finding]] = [[] for _ in checks]
    try:
        with ThreadPoolExecutor(max_workers=workers) as executor:
            for i, found in zip(order, executor.map(work, [checks[i] for i in order]), strict=True):
                results[i] = found
    finally:
        pool.close(timeout=0.2 if health.dead else 1.0)  # a worker stuck on a dead server is a daemon thread
    facts, missing = pending.wait()
    if options.shared is not None and not reused:
        options.shared.keep_probe(target.name, Probed(frozenset(relations), frozenset(settings), caps, facts,
                                                       missing, frozenset(pending.needed)))
    return run, [f for fs in results for f in fs], []


class _PendingFacts:
    """A target's runner facts, gathered in a thread of their own on the probe's connection (which
    it closes when done): ~10 ms of waiting on the server (a fresh connection is timed) that the
    checks reading no fact need not spend. A check that reads one waits for them all."""

    def __init__(self, needed: set[str]) -> None:
        self.needed = needed
        self.facts: dict[str, dict[str, Any]] = {}
        self.missing: dict[str, tuple[str, str]] = {}
        self._error: BaseException | None = None
        self._done = threading.Event()

    @classmethod
    def known(cls, facts: dict[str, dict[str, Any]], missing: dict[str, tuple[str, str]],
              needed: set[str]) -> _PendingFacts:
        pending = cls(needed)
        pending.facts, pending.missing = facts, missing
        pending._done.set()
        return pending

    @classmethod
    def start(cls, needed: set[str], providers: Mapping[str, FactProvider], ctx: FactContext) -> _PendingFacts:
        pending = cls(needed)
        threading.Thread(target=pending._gather, args=(providers, ctx), name="civicq-ops-facts", daemon=True).start()
        return pending

    def _gather(self, providers: Mapping[str, FactProvider], ctx: FactContext) -> None:
        # Bounded like the probe (and by --budget): a provider waiting on a frozen server is
        # cancelled, then cut off, and the checks that need its fact become errors.
        left = ctx.time_left()
        limit = PROBE_LIMIT_S if left is None else min(PROBE_LIMIT_S, max(left, 0.1))
        try:
            with query_deadline(ctx.conn, limit):
                self.facts, self.missing = gather(self.needed, providers, ctx)
        except BaseException as e:  # noqa: BLE001 - raised again in the threads that wait
            self._error = e
        finally:
            ctx.conn.close()
            self._done.set()

    def wait(self) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self.facts, self.missing


PROBE_LIMIT_S = 30.0


@dataclass
class _TargetHealth:
    """Shared by a target's workers: once its server stopped answering (a client-side deadline
    fired, or reconnecting failed), the remaining checks are reported at once, not waited on."""

    dead: str | None = None


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _skipped(check: Check, caps: Capabilities, reason: str, status: str = "skipped") -> Finding:
    return Finding(check=check.id, category=check.category, target=caps.name, subject=None, status=status,
                   title=check.title, reason=reason, unit=check.unit, remediation=check.remediation,
                   message=f"{check.title}: {reason}")


def _run_one(check: Check, params: dict[str, Any], caps: Capabilities, facts: dict[str, dict[str, Any]],
             missing: dict[str, tuple[str, str]], get_conn: Callable[[], AbstractContextManager[psycopg.Connection]],
             deadline: float | None, now: datetime | None, health: _TargetHealth | None = None,
             counters: Counters | None = None, shared: SharedResults | None = None, list_ok: bool = False,
             ok_counts: dict[str, int] | None = None, verdicts: VerdictCache | None = None) -> list[Finding]:
    reason = unmet_requirement(check.requires, caps)
    if reason:
        return [_skipped(check, caps, reason)]
    for name in check.facts:
        if name in missing:
            status, why = missing[name]
            return [_skipped(check, caps, why, status)]
    timeout = check.timeout_s
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0.05:
            return [_skipped(check, caps, "not run: the run budget was used up", "error")]
        timeout = min(timeout, left)
    try:
        rendered = render_check(check, params, caps, facts, list_ok)
    except CivicqError as e:
        return [_skipped(check, caps, e.message, "error")]
    # The final SQL is judged again: a `| sql_unsafe` value or a `--param` could have brought in
    # what `validate` refused in the template (e.g. a call that signals a backend).
    # A text judged safe in an earlier run is not parsed again (catalog/verdicts.py).
    final = rendered.numbered()
    if verdicts is None or not verdicts.known_safe(final):
        verdict = inspect_query(final, review=False)
        if verdict.problem:
            return [_skipped(check, caps, f"refused before running: {verdict.problem}", "error")]
        if verdicts is not None:
            verdicts.add_safe(final)

    def execute() -> Rows | str:
        return _execute(check, rendered, timeout, get_conn, health)

    outcome = shared.fetch(caps.name, rendered.text, rendered.binds, execute) if shared else execute()
    if isinstance(outcome, str):
        return [_skipped(check, caps, outcome, "error")]
    rows = outcome
    if check.delta is not None:
        return evaluate_delta(check, rows, params, caps, counters, now)
    findings, counted = evaluate_counted(check, rows, params, caps, now, facts)
    if counted and ok_counts is not None:
        ok_counts[check.id] = counted  # one check per key: no two threads write the same one
    return findings


def _pipeline(conn: psycopg.Connection) -> AbstractContextManager[Any]:
    return conn.pipeline() if psycopg.Pipeline.is_supported() else nullcontext()


@contextmanager
def _ended_on_error(conn: psycopg.Connection) -> Iterator[None]:
    """A check that failed leaves its transaction aborted: roll it back here, before the connection
    goes back to the pool (which would roll it back too, but with a logged warning on stderr)."""
    try:
        yield
    except psycopg.Error:
        if not conn.closed and not conn.broken \
                and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                conn.rollback()
        raise


def _execute(check: Check, rendered: RenderedQuery, timeout: float,
             get_conn: Callable[[], AbstractContextManager[psycopg.Connection]],
             health: _TargetHealth | None) -> Rows | str:
    """The rows of a check's rendered query, or why it failed (one line)."""
    watch = None
    try:
        # Committed, not rolled back: a read-only commit changes nothing, and rollbacks would
        # inflate the rollback ratio that a check of this catalogue watches. The client-side
        # deadline (a little after statement_timeout) catches a server that stopped answering.
        # In pipeline mode (libpq >= 14) BEGIN, the settings, the query and COMMIT go out together
        # and come back after the one Sync that leaving the pipeline sends: one round trip a check,
        # where psycopg's transaction block took five (its implicit BEGIN waits for a Sync of its
        # own: hence the pool's autocommit connections and an explicit BEGIN). A query that fails
        # leaves the transaction aborted (the COMMIT after it is skipped): _ended_on_error rolls it back.
        with get_conn() as conn, query_deadline(conn, timeout + GRACE_S) as watch, _ended_on_error(conn):
            with _pipeline(conn):
                conn.execute("BEGIN READ ONLY")
                # jit off: a catalog query's plan cost can cross jit_above_cost at tens of thousands
                # of relations, and compiling it then took PostgreSQL 15 1-2 s for a 60 ms query.
                conn.execute("SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true), "
                             "set_config('jit', 'off', true)", (f"{max(1, int(timeout * 1000))}ms", f"{LOCK_TIMEOUT_MS}ms"))
                # Always pass the binds (even none): the text escapes literal % as %%, which psycopg
                # turns back into % only when it processes placeholders.
                cur = conn.execute(f"/* civicq-ops:{check.id} */ {rendered.text}", rendered.binds)
                conn.execute("COMMIT")
            fetched = cur.fetchall()  # the results arrived as the pipeline ended
            columns = [d.name for d in cur.description or []]
            rows = [dict(zip(columns, r, strict=True)) for r in fetched]
    except CivicqError as e:
        return e.message
    except psycopg.errors.QueryCanceled:
        return f"timed out after {timeout:.1f}s (statement_timeout)"
    except psycopg.errors.LockNotAvailable:
        return f"waited more than {LOCK_TIMEOUT_MS} ms for a lock (lock_timeout)"
    except psycopg.errors.ReadOnlySqlTransaction as e:
        return f"the query tried to write in a READ ONLY transaction: {first_line(e)}"
    except psycopg.Error as e:  # a broken connection goes back to the pool, which replaces it
        if watch is not None and watch.fired:
            if health is not None:
                health.dead = health.dead or f"the target stopped answering ({watch.describe()})"
            return watch.describe()
        return f"query failed: {first_line(e)}"
    return rows
