"""`db lint`: squawk's rules over the rendered SQL of migrations, weighed by what the live database
says about each table the migration locks.

A finding's risk is its rule times its size. Rules about style and re-runnability (squawk's
prefer-* rules) are `info` whatever the table. Rules about locks take the risk of their statement:
`low` on a table this range creates or one that is small, `medium` or `high` by the table's rows,
bytes and the estimated time the lock is held (thresholds: `migrations.lint` in civicq-ops.yaml).
A column type change that a view still uses fails on the server: `high` on any size. Without a
target, a blocking statement on an existing table is `unknown`, and the gate fails on it: a gate
that cannot see the size cannot clear it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from civicq_ops.civicq.migration_live import Blocker, TableInfo
from civicq_ops.civicq.migration_locks import LockEffect
from civicq_ops.civicq.migration_render import RenderedRange, Statement
from civicq_ops.civicq.migration_risk import RISKS, StatementContext, assess, live_context
from civicq_ops.config import MigrationSettings, Project, Target
from civicq_ops.core.errors import CivicqError, ExecutionError, InputError

# Style and re-runnability: never a risk to a live database by themselves.
HYGIENE_RULES = {"prefer-robust-stmts", "prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-identity",
                 "prefer-text-field", "prefer-timestamptz", "ban-char-field", "require-table-schema",
                 "require-lock-timeout", "require-statement-timeout", "ban-create-domain-with-constraint"}
# Changes that break clients whatever the size (a dropped or renamed column): at least medium.
BREAKING_RULES = {"ban-drop-column", "ban-drop-table", "ban-drop-database", "renaming-column", "renaming-table",
                  "ban-drop-not-null", "ban-truncate-cascade", "ban-drop-view", "ban-drop-function"}
SQUAWK_DOCS = "https://squawkhq.com/docs/"


@dataclass
class LintFinding:
    rule: str
    source: str          # squawk | civicq-ops
    message: str
    help: str | None
    risk: str
    path: str | None
    line: int | None
    statement: int | None
    sql: str = ""

    @property
    def url(self) -> str | None:
        return SQUAWK_DOCS + self.rule if self.source == "squawk" else None


@dataclass
class LintResult:
    range: str
    revisions: list[str]
    target: str | None
    online: bool
    fail_on: str
    unknown: list[str] = field(default_factory=list)     # what could not be known, in words
    statements: list[StatementContext] = field(default_factory=list)
    findings: list[LintFinding] = field(default_factory=list)
    squawk_version: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    scan_rate: float | None = None  # bytes/s, measured

    @property
    def verdict(self) -> str:
        risks = {f.risk for f in self.findings}
        for level in ("high", "unknown", "medium", "low"):
            if level in risks:
                return level
        return "low"

    @property
    def failed(self) -> bool:
        v = self.verdict
        return v == "unknown" or RISKS.index(v) >= RISKS.index(self.fail_on) and v != "info"


def squawk_binary() -> str:
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.is_file() else shutil.which("squawk")
    if not found:
        raise ExecutionError("squawk is not installed: pip install squawk-cli (a dependency of civicq-ops)")
    return found


def run_squawk(text: str, pg_version: str | None = None) -> tuple[list[dict], str]:
    """squawk's JSON findings over `text` (lines and columns 0-based), and its version."""
    binary = squawk_binary()
    args = [binary, "--reporter", "json", "--stdin-filepath", "migrations.sql", "--no-assume-in-transaction"]
    if pg_version:
        args += ["--pg-version", pg_version]
    try:
        proc = subprocess.run(args, input=text, capture_output=True, text=True, timeout=60)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                                 stdin=subprocess.DEVNULL).stdout.split() or ["unknown"]
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExecutionError(f"squawk failed: {e}") from e
    try:
        found = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as e:
        first = (proc.stderr or proc.stdout).strip().splitlines()[:1]
        raise ExecutionError(f"squawk failed (exit {proc.returncode}): {first[0] if first else 'no output'}") from e
    return found, version[-1]


def resolve_range(project: Project, spec: str | None, current: str | None, online: bool) -> tuple[str | None, str, str]:
    """(start, end, label) of REV_RANGE: `A:B`, `A:`, `:B`, one revision `REV`, or None (online:
    the pending ones, current..head; offline: the whole history)."""
    from civicq_ops.civicq.migrations import history, revision_order

    if spec is not None and not spec.strip():
        raise InputError("db lint: REV_RANGE is empty (leave it out for the pending migrations)")
    if spec is None:
        start = current if online else None
        return start, "head", f"{start or 'base'}:head"
    spec = spec.strip()
    if spec.count(":") > 1:
        raise InputError(f"db lint: a range is A:B, A:, :B or one revision, not {spec!r}")
    if ":" in spec:
        a, b = spec.split(":", 1)
        start = None if a in ("", "base") else a
        revision_order(project, start, b or "head", "db lint")
        return start, b or "head", f"{start or 'base'}:{b or 'head'}"
    revs = {r.revision: r for r in history(project)}
    if spec not in revs:
        raise InputError(f"db lint: unknown revision '{spec}' (known: {', '.join(revs) or 'none'})")
    return revs[spec].down_revision, spec, f"{revs[spec].down_revision or 'base'}:{spec}"


def lint(project: Project, target: Target | None, spec: str | None = None) -> LintResult:
    """Lint the migrations of `spec` (see resolve_range); `target` None: offline."""
    from civicq_ops.civicq.migration_render import render_range

    began = time.perf_counter()
    settings = project.migrations
    conn = None
    unknown: list[str] = []
    current = None
    if target is not None:
        try:
            from civicq_ops.postgres.connect import connect

            conn = connect(project, target, autocommit=True, timeout=5)
        except CivicqError as e:
            # A gate that cannot see the server it guards must not pass quietly (exit 3, as
            # `db current --check`); linting without one is asked for by name.
            raise ExecutionError(f"db lint: target '{target.name}' is unreachable: {e.message}",
                                 hint="`db lint --offline` lints with squawk's rules only, sizes unknown") from e
    try:
        if conn is not None:
            conn.execute("SET statement_timeout = '5s'; SET lock_timeout = '1s'; SET default_transaction_read_only = on")
            current = _current(conn)
        start, end, label = resolve_range(project, spec, current, conn is not None)
        result = LintResult(label, [], target.name if target else None, conn is not None, settings.fail_on, unknown)
        if conn is not None and spec is None and current is not None and _is_head(project, current):
            result.timings["total"] = time.perf_counter() - began
            return result  # nothing pending
        rendered = render_range(project, start, end)
        if spec is not None and not rendered.revisions:
            raise InputError(f"db lint {label}: no migration in this range (a gate that lints nothing never passes)")
        result.revisions = rendered.revisions
        result.timings["render"] = time.perf_counter() - began
        version = None
        if conn is not None:
            num = conn.info.server_version
            version = f"{num // 10000}.0"
        t0 = time.perf_counter()
        raw, result.squawk_version = run_squawk(rendered.text, version)
        result.timings["squawk"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        contexts = _contexts(rendered, conn, settings, result)
        result.timings["live"] = time.perf_counter() - t0
        result.findings = _findings(rendered, raw, contexts, conn is not None)
        result.statements = list(contexts.values())
        if conn is None:
            result.unknown += ["table sizes, rows and write rates", "the time each lock is held",
                               "views a column type change breaks", "sessions that would block the locks now"]
        result.timings["total"] = time.perf_counter() - began
        return result
    finally:
        if conn is not None:
            conn.close()


def _current(conn) -> str | None:
    row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    if not row[0]:
        return None
    version = conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
    return version[0] if version else None


def _is_head(project: Project, revision: str) -> bool:
    from civicq_ops.civicq.migrations import history

    revs = history(project)
    return bool(revs) and revs[-1].revision == revision


def _combine(effects: list[LockEffect]) -> LockEffect:
    from civicq_ops.civicq.migration_locks import WORK, strongest

    top = strongest(effects)
    assert top is not None
    work = max((e.work for e in effects), key=WORK.index)
    kinds = list(dict.fromkeys(e.kind for e in effects))
    return LockEffect(", ".join(kinds), top.table, top.lock, work, top.column, top.new_type,
                      [f for e in effects for f in e.functions], "; ".join(e.note for e in effects if e.note))


def _contexts(rendered: RenderedRange, conn, settings: MigrationSettings, result: LintResult) -> dict[int, StatementContext]:
    from civicq_ops.civicq import migration_live as live
    from civicq_ops.civicq.migration_locks import VOLATILE, created_relation, dropped_views, effects

    created: set[str] = set()
    dropped: set[str] = set()
    per_stmt: list[tuple[Statement, list[LockEffect], set[str], set[str]]] = []
    for st in rendered.statements:
        if st.node is None or not st.from_migration:
            continue
        new = created_relation(st.node)
        if new:
            created.add(new[1])
        effs = [e for e in effects(st.node)]
        per_stmt.append((st, effs, set(created), set(dropped)))
        dropped.update(name for _, name in dropped_views(st.node))
    tables: dict[tuple[str | None, str], TableInfo] = {}
    volatile: dict[str, bool] = {}
    holders: dict[int, list[Blocker]] = {}
    old: list[Blocker] = []
    if conn is not None:
        names = list(dict.fromkeys(e.table for _, effs, _, _ in per_stmt for e in effs))
        tables = live.read_tables(conn, names)
        volatile = live.volatile_functions(conn, [f for _, effs, _, _ in per_stmt for e in effs for f in e.functions])
        biggest = max((t for t in tables.values() if t.oid is not None), key=lambda t: t.heap_bytes, default=None)
        if biggest is not None:
            result.scan_rate = live.scan_rate(conn, biggest)
        holders = live.lock_holders(conn, [t.oid for t in tables.values() if t.oid is not None])
        old = live.old_transactions(conn)
    out: dict[int, StatementContext] = {}
    for st, effs, created_before, dropped_before in per_stmt:
        for e in effs:
            if e.kind == "ADD COLUMN with a default":
                vol = [f for f in e.functions if volatile.get(f, f in VOLATILE)]
                if vol:
                    e.kind, e.work = f"ADD COLUMN with a volatile default ({', '.join(vol)}())", "rewrite"
        if not effs:
            continue
        e = _combine(effs)
        ctx = StatementContext(st.index, st.revision, st.path, st.line, st.sql, e.kind, _label(e.table), e.lock,
                               e.blocks, e.work, new_table=e.table[1] in created_before)
        if e.note:
            ctx.reasons.append(e.note)
        info = tables.get(e.table)
        if conn is not None and info is not None and not ctx.new_table:
            live_context(ctx, e, info, conn, holders, old, dropped_before, result.scan_rate)
        ctx.risk = assess(ctx, e, settings, online=conn is not None)
        out[st.index] = ctx
    return out


def _label(table: tuple[str | None, str]) -> str:
    return f"{table[0]}.{table[1]}" if table[0] else table[1]


def _findings(rendered: RenderedRange, raw: list[dict], contexts: dict[int, StatementContext], online: bool) -> list[LintFinding]:
    starts = [0]
    for i, ch in enumerate(rendered.text):
        if ch == "\n":
            starts.append(i + 1)
    out: list[LintFinding] = []
    lock_ruled: set[int] = set()
    by_index = {st.index: st for st in rendered.statements}
    for item in raw:
        line = int(item.get("line", 0))
        offset = starts[min(line, len(starts) - 1)] + int(item.get("column", 0))
        st = rendered.statement_at(offset)
        if st is None or not st.from_migration:
            continue  # alembic's own statements (BEGIN, alembic_version) and env.py's SETs
        rule = str(item.get("rule_name", "squawk"))
        ctx = contexts.get(st.index)
        if rule in HYGIENE_RULES:
            risk = "info"
        elif rule == "ban-drop-view" and _recreated(rendered, st):
            risk = "low"  # dropped to be created again (a column type change): clients keep their view
        else:
            base = ctx.risk if ctx else "low"  # no table lock of its own worth weighing
            risk = max(base, "medium", key=RISKS.index) if rule in BREAKING_RULES else base
            lock_ruled.add(st.index)
        out.append(LintFinding(rule, "squawk", str(item.get("message", "")), item.get("help"), risk, st.path, st.line,
                               st.index, st.sql))
    for idx, ctx in contexts.items():
        st = by_index[idx]
        if ctx.breaks and not ctx.breaks_handled:
            out.append(LintFinding("breaks-dependent-view", "civicq-ops",
                                   f"ALTER COLUMN TYPE on {ctx.table} fails: {', '.join(ctx.breaks)} use the column",
                                   "DROP the view(s) before the change and CREATE them again after, in the same migration",
                                   "high", st.path, st.line, idx, st.sql))
        if ctx.blockers:
            out.append(LintFinding("blocked-now", "civicq-ops",
                                   f"{ctx.kind} on {ctx.table} needs {ctx.lock}; it would wait now for "
                                   + "; ".join(ctx.blockers[:3]),
                                   "run it when these sessions are gone; lock_timeout bounds the wait",
                                   max(ctx.risk, "medium", key=RISKS.index), st.path, st.line, idx, st.sql))
        if idx not in lock_ruled and ctx.risk in ("medium", "high") and not ctx.breaks:
            out.append(LintFinding("long-lock", "civicq-ops",
                                   f"{ctx.kind} holds {ctx.lock} on {ctx.table} during a {ctx.work}",
                                   None, ctx.risk, st.path, st.line, idx, st.sql))
    out += _outside_transaction(rendered)
    out.sort(key=lambda f: (f.statement if f.statement is not None else -1, -RISKS.index(f.risk), f.rule))
    return out


def _recreated(rendered: RenderedRange, st: Statement) -> bool:
    """Every view the statement drops is created again later in the range."""
    from civicq_ops.civicq.migration_locks import created_relation, dropped_views

    dropped = {name for _, name in dropped_views(st.node)} if st.node is not None else set()
    later = set()
    for other in rendered.statements[st.index + 1:]:
        if other.node is not None:
            made = created_relation(other.node)
            if made is None and type(other.node).__name__ == "ViewStmt":
                made = (other.node.view.schemaname, other.node.view.relname)  # type: ignore[attr-defined]
            if made:
                later.add(made[1])
    return bool(dropped) and dropped <= later


_NON_TRANSACTIONAL = ("CONCURRENTLY", "VACUUM", "ALTER SYSTEM", "CREATE DATABASE", "DROP DATABASE")


def _outside_transaction(rendered: RenderedRange) -> list[LintFinding]:
    """Statements PostgreSQL refuses inside a transaction block, written inside the migration's
    transaction: they fail at deploy time. Alembic's autocommit_block() runs them outside it."""
    from pglast import ast

    out = []
    in_tx = False
    for st in rendered.statements:
        if isinstance(st.node, ast.TransactionStmt):
            kind = st.sql.split()[0].upper() if st.sql.split() else ""
            in_tx = kind in ("BEGIN", "START") or (in_tx and kind not in ("COMMIT", "ROLLBACK", "END"))
            continue
        head = " ".join(st.sql.upper().split())[:200]
        if in_tx and st.from_migration and (
                isinstance(st.node, ast.VacuumStmt) or any(k in head for k in _NON_TRANSACTIONAL[:1])
                and isinstance(st.node, ast.IndexStmt | ast.DropStmt | ast.ReindexStmt)
                or head.startswith(_NON_TRANSACTIONAL[2:])):
            out.append(LintFinding("needs-autocommit-block", "civicq-ops",
                                   "this statement cannot run inside a transaction block, and the migration runs in one",
                                   "wrap it in `with op.get_context().autocommit_block():`", "high", st.path, st.line,
                                   st.index, st.sql))
    return out
