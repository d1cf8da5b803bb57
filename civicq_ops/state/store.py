"""The state store: SQLite by default (`.civicq-ops/state.db`), or a PostgreSQL database shared by
several runners (`state.url: postgresql://...`).

Its schema is versioned: the `schema_version` table holds the version a store is at, and opening a
store applies every numbered migration above it, each in its own transaction (on PostgreSQL under
an advisory lock, so two runners opening an old store upgrade it once). A store written by a newer
civicq-ops is refused rather than guessed at.

To add a table or column (say, alert state): write one function that takes the store and runs
its statements with `store.execute(...)` (SQL that both SQLite and PostgreSQL accept, `?`
placeholders), and append it to MIGRATIONS. Never edit a migration that has shipped: a store at
that version would never see the change. tests/state/test_store_migrations.py opens a store of
every earlier layout (tests/state/fixtures/) and checks it reaches the latest version.

Actions are append-only: an action is claimed with an INSERT that a unique key lets succeed only
once per plan and step, so two `apply` processes on the same plan never run a step twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from civicq_ops.config import Project
from civicq_ops.core.errors import ConfigError, ExecutionError, first_line
from civicq_ops.postgres.connect import open_connection

# pg_advisory_xact_lock key for schema upgrades: "civicq-ops state" folded into a bigint.
_MIGRATION_LOCK = 0x63697669637153

# Ok findings of a check the caller asks to keep (`keep_ok`: those the report draws or forecasts)
# keep their own values for the greatest this many per check and target; the rest only count in
# the check's aggregate row. Findings that are not ok always keep their value.
KEEP_OK_TOP = 50


def _v1_initial(store: StateStore) -> None:
    """Runs, the findings of each run, and the append-only record of actions."""
    for statement in (
        """CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY, started_at TEXT NOT NULL, duration_s REAL, targets TEXT, summary TEXT,
            exit_code INTEGER)""",
        """CREATE TABLE IF NOT EXISTS findings (
            run_id TEXT NOT NULL, finding_id TEXT NOT NULL, check_id TEXT NOT NULL, target TEXT NOT NULL,
            subject TEXT, status TEXT NOT NULL, value REAL, at TEXT NOT NULL, PRIMARY KEY (run_id, finding_id))""",
        "CREATE INDEX IF NOT EXISTS findings_by_id ON findings (finding_id, at)",
        """CREATE TABLE IF NOT EXISTS actions (
            plan_id TEXT NOT NULL, step INTEGER NOT NULL, target TEXT NOT NULL, policy TEXT NOT NULL,
            action TEXT NOT NULL, object TEXT NOT NULL, sql TEXT NOT NULL, lock TEXT, runner TEXT,
            claimed_at TEXT NOT NULL, finished_at TEXT, result TEXT, detail TEXT, waits INTEGER,
            notices TEXT, before TEXT, after TEXT, PRIMARY KEY (plan_id, step))""",
        "CREATE INDEX IF NOT EXISTS actions_by_object ON actions (target, policy, object, claimed_at)",
    ):
        store.execute(statement)


def _v2_run_gate_and_check_history(store: StateStore) -> None:
    """A run records the gate level it was judged at; a check's values over time (every subject of
    one check on one target, as trend checks read them) have an index."""
    store.execute("ALTER TABLE runs ADD COLUMN fail_on TEXT")
    store.execute("CREATE INDEX IF NOT EXISTS findings_by_check ON findings (check_id, target, at)")


def _v3_alert_state(store: StateStore) -> None:
    """Alert state (so `for:` holds across runs and watch restarts), dead letters of notifications
    that failed every attempt, and leases (one active `watch` per store)."""
    for statement in (
        """CREATE TABLE IF NOT EXISTS alert_states (
            fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
            data TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS alert_dead_letters (
            id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, notifier TEXT NOT NULL, attempts INTEGER NOT NULL,
            error TEXT NOT NULL, payload TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS leases (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
    ):
        store.execute(statement)


def _v4_check_counters(store: StateStore) -> None:
    """The cumulative counters each `delta:` check saw on its previous run (state/counters.py)."""
    store.execute("""CREATE TABLE IF NOT EXISTS check_counters (
    target TEXT NOT NULL, check_id TEXT NOT NULL, subject TEXT NOT NULL, counters TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (target, check_id, subject))""")


def _v5_ok_aggregates_and_retention(store: StateStore) -> None:
    """Healthy findings are kept as one row per check and target and run (how many were ok, and
    the least, greatest and summed value) instead of one row each; runs have an index on their
    start so retention finds the old ones without a scan."""
    store.execute("""CREATE TABLE IF NOT EXISTS check_aggregates (
    run_id TEXT NOT NULL, check_id TEXT NOT NULL, target TEXT NOT NULL, at TEXT NOT NULL, ok_count INTEGER NOT NULL,
    value_count INTEGER NOT NULL, value_min REAL, value_max REAL, value_sum REAL,
    PRIMARY KEY (run_id, target, check_id))""")
    store.execute("CREATE INDEX IF NOT EXISTS check_aggregates_by_check ON check_aggregates (check_id, target, at)")
    store.execute("CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at)")


def _v6_fleet_ledger(store: StateStore) -> None:
    """The fleet's ledger (civicq_ops/fleet/ledger.py): one row per (target, check group, slot), a
    slot being one interval of the schedule. Used on a PostgreSQL store, which the fleet's job
    queue shares; created on every store like the other tables, so one mechanism migrates them all."""
    store.execute("""CREATE TABLE IF NOT EXISTS fleet_runs (
    target TEXT NOT NULL, check_group TEXT NOT NULL, slot BIGINT NOT NULL, due_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1, worker TEXT, claimed_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION, run_id TEXT, status TEXT, summary TEXT, labels TEXT, detail TEXT,
    PRIMARY KEY (target, check_group, slot))""")
    store.execute("CREATE INDEX IF NOT EXISTS fleet_runs_by_time ON fleet_runs (finished_at)")


# MIGRATIONS[n - 1] brings a store from version n - 1 to version n.
MIGRATIONS: list[Callable[[StateStore], None]] = [_v1_initial, _v2_run_gate_and_check_history, _v3_alert_state,
                                                  _v4_check_counters, _v5_ok_aggregates_and_retention,
                                                  _v6_fleet_ledger]
SCHEMA_VERSION = len(MIGRATIONS)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class StateStore:
    """A thin, dialect-aware wrapper: SQL is written with ? placeholders."""

    def __init__(self, url: str, retention_s: float | None = None) -> None:
        self.url = url
        self.retention_s = retention_s  # runs older than this are deleted when a run is recorded
        self._lock = threading.Lock()
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            self.kind = "sqlite"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._conn: Any = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                                  check_same_thread=False)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._migrate()
            except (sqlite3.Error, OSError, ExecutionError) as e:
                raise ExecutionError(f"cannot open the state store {path}: {first_line(e)}") from e
        elif url.startswith(("postgresql://", "postgres://")):
            self.kind = "postgresql"
            self._conn = open_connection({"conninfo": url, "application_name": "civicq-ops state"},
                                         what="the state store", autocommit=True)
            self._migrate()
        else:
            raise ConfigError(f"state.url must be sqlite:///PATH or postgresql://..., not {url!r}")

    def _sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    def execute(self, text: str, params: tuple = ()) -> list[tuple]:
        with self._lock, self._errors():
            cur = self._conn.execute(self._sql(text), params)
            return list(cur.fetchall()) if cur.description else []

    def executemany(self, text: str, rows: list[tuple]) -> None:
        if not rows:
            return
        with self._lock, self._errors():
            if self.kind == "sqlite":
                self._conn.executemany(text, rows)
            else:
                with self._conn.cursor() as cur:
                    cur.executemany(self._sql(text), rows)

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[None]:
        """Several writes as one: all or nothing, one commit (one sync on SQLite): a run's history
        and its counters, a fleet job's history and its ledger row. `durable=False` (a run's
        history): on SQLite the commit is synced at the next WAL checkpoint rather than at once
        (~6 ms of a run): a power cut may lose the last runs' history, never corrupt the file.
        Remediation claims, outcomes and leases always sync at their commit."""
        relaxed = self.kind == "sqlite" and not durable and not self._conn.in_transaction
        if relaxed:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._transaction():
                yield
        finally:
            if relaxed:
                with suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A read-only or full store, or one whose server went away, is an ExecutionError that
        names the store (callers that only keep history turn it into a notice)."""
        try:
            yield
        except (sqlite3.Error, psycopg.Error, OSError) as e:
            where = "the state store" if self.kind == "sqlite" else "the PostgreSQL state store"
            raise ExecutionError(f"{where} failed: {first_line(e)}") from e

    @property
    def version(self) -> int:
        """The schema version this store is at (0: empty)."""
        if self.kind == "sqlite":
            found = self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
        else:
            found = self.execute("SELECT 1 FROM pg_tables WHERE tablename = 'schema_version' "
                                 "AND schemaname = current_schema()")
        if not found:
            return 0
        rows = self.execute("SELECT max(version) FROM schema_version")
        return int(rows[0][0] or 0)

    def _migrate(self) -> None:
        """Apply every migration above this store's version, one transaction each."""
        if self.version == SCHEMA_VERSION:
            return
        while True:
            with self._transaction(migration=True):
                current = self.version  # read again under the lock: another runner may have upgraded
                if current > SCHEMA_VERSION:
                    raise ExecutionError(
                        f"the state store is at schema version {current}, newer than this civicq-ops "
                        f"understands ({SCHEMA_VERSION}): upgrade civicq-ops")
                if current == SCHEMA_VERSION:
                    return
                self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                MIGRATIONS[current](self)
                self.execute("DELETE FROM schema_version")
                self.execute("INSERT INTO schema_version (version) VALUES (?)", (current + 1,))

    @contextmanager
    def _transaction(self, migration: bool = False) -> Iterator[None]:
        """All of it or nothing (and one sync, not one per statement); a migration step also takes
        a lock so that one runner upgrades at a time."""
        if self.kind == "sqlite" and self._conn.in_transaction:
            yield  # inside a caller's transaction (e.g. a batch of runs): part of it
        elif self.kind == "sqlite":
            self.execute("BEGIN IMMEDIATE")  # takes the write lock now
            try:
                yield
            except BaseException:
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self.execute("COMMIT")
        else:
            with self._errors(), self._conn.transaction():
                if migration:
                    self.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                yield

    def close(self) -> None:
        self._conn.close()

    # -- runs and findings ------------------------------------------------------------------

    def record_run(self, result, keep_ok: Collection[str] | None = None) -> None:
        """Keep a run for `history` and the report, in one transaction (one commit, one sync):
        the value of each finding that is not ok, the values of the `keep_ok` checks' ok findings
        (the KEEP_OK_TOP greatest per check; None: every ok finding's value, as before aggregates
        existed), and one aggregate row per check and target for the
        ok findings (including ok rows the engine counted without materialising them, in
        `result.ok_counts`). Runs older than the store's retention are deleted in the same
        transaction."""
        with self._transaction():
            self._record_run(result, None if keep_ok is None else frozenset(keep_ok))
            if self.retention_s is not None:
                self.prune(result.started_at - timedelta(seconds=self.retention_s))

    def _record_run(self, result, keep_ok: frozenset[str] | None) -> None:
        at = result.started_at.isoformat()
        self.execute("INSERT INTO runs (id, started_at, duration_s, targets, summary, exit_code, fail_on) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (result.id, at, result.duration_s, json.dumps([t.name for t in result.targets]),
                      json.dumps(result.summary.to_dict()), int(result.exit_code), result.fail_on))
        kept: list = []
        ok: dict[tuple[str, str], list] = {}
        for f in result.findings:
            if f.status == "ok":
                ok.setdefault((f.check, f.target), []).append(f)
            else:
                kept.append(f)
        aggregates = []
        counted: dict[tuple[str, str], int] = dict(result.ok_counts)
        for key in ok.keys() | counted.keys():
            fs = ok.get(key, [])
            values = [v for v in (_number(f.value) for f in fs) if v is not None]
            if keep_ok is None:
                kept += fs
            elif key[0] in keep_ok:
                kept += sorted(fs, key=lambda f: -(_number(f.value) or 0))[:KEEP_OK_TOP]
            aggregates.append((result.id, key[0], key[1], at, len(fs) + counted.get(key, 0), len(values),
                               min(values, default=None), max(values, default=None), sum(values) if values else None))
        self.executemany("INSERT INTO findings (run_id, finding_id, check_id, target, subject, status, value, at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [(result.id, f.id, f.check, f.target, json.dumps(f.subject, sort_keys=True, default=str),
                           f.status, _number(f.value), at) for f in kept])
        self.executemany("INSERT INTO check_aggregates (run_id, check_id, target, at, ok_count, value_count, value_min, "
                         "value_max, value_sum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", aggregates)

    def prune(self, before: datetime) -> int:
        """Delete the runs that started before `before`, with their findings and aggregates; how many."""
        cutoff = before.isoformat()
        old = "SELECT id FROM runs WHERE started_at < ?"
        with self._transaction():
            self.execute(f"DELETE FROM findings WHERE run_id IN ({old})", (cutoff,))
            self.execute(f"DELETE FROM check_aggregates WHERE run_id IN ({old})", (cutoff,))
            gone = self.execute("SELECT count(*) FROM runs WHERE started_at < ?", (cutoff,))[0][0]
            if gone:
                self.execute("DELETE FROM runs WHERE started_at < ?", (cutoff,))
        return int(gone)

    def check_aggregates(self, check_id: str, target: str, limit: int = 50) -> list[dict]:
        """The ok findings of one check on one target, run by run, newest first."""
        rows = self.execute("SELECT at, ok_count, value_count, value_min, value_max, value_sum FROM check_aggregates "
                            "WHERE check_id = ? AND target = ? ORDER BY at DESC LIMIT ?", (check_id, target, limit))
        return [{"at": r[0], "ok": r[1], "values": r[2], "min": r[3], "max": r[4], "sum": r[5]} for r in rows]

    def runs(self, limit: int = 20) -> list[dict]:
        rows = self.execute("SELECT id, started_at, duration_s, targets, summary, exit_code, fail_on FROM runs "
                            "ORDER BY started_at DESC LIMIT ?", (limit,))
        return [{"id": r[0], "started_at": r[1], "duration_s": r[2], "targets": json.loads(r[3]),
                 "summary": json.loads(r[4]), "exit_code": r[5], "fail_on": r[6]} for r in rows]

    def finding_history(self, finding_id: str, limit: int = 50) -> list[dict]:
        """A finding's states over time, newest first. Its ok runs are those whose check ran on its
        target without keeping a row of it (ok findings are kept as the check's counts): they read
        `ok` with no value (`counted: True`)."""
        rows = self.execute("SELECT at, status, value, check_id, target, subject, run_id FROM findings "
                            "WHERE finding_id = ? ORDER BY at DESC LIMIT ?", (finding_id, limit))
        found = [{"at": r[0], "status": r[1], "value": r[2], "check": r[3], "target": r[4],
                  "subject": json.loads(r[5]) if r[5] else None, "counted": False} for r in rows]
        if not found:
            return found
        kept = {r[6] for r in rows}
        check, target, subject = found[0]["check"], found[0]["target"], found[0]["subject"]
        counted = self.execute("SELECT at, run_id FROM check_aggregates WHERE check_id = ? AND target = ? "
                               "ORDER BY at DESC LIMIT ?", (check, target, limit))
        found += [{"at": at, "status": "ok", "value": None, "check": check, "target": target, "subject": subject,
                   "counted": True} for at, run_id in counted if run_id not in kept]
        return sorted(found, key=lambda r: r["at"], reverse=True)[:limit]

    # -- actions (append-only audit) -----------------------------------------------------------

    def claim(self, plan_id: str, step: int, target: str, policy: str, action: str, obj: str, sql: str,
              lock: str, runner: str) -> bool:
        """Record that this runner takes a plan step; False when another runner already has it.

        One INSERT that the primary key lets succeed once: SQLite and PostgreSQL both decide it
        atomically, so no lock or read-then-write is needed. A step recorded 'not-run' (its runner
        could not connect, or its re-check failed: nothing ran) may be claimed again."""
        with self._lock, self._errors():
            cur = self._conn.execute(self._sql(
                "INSERT INTO actions (plan_id, step, target, policy, action, object, sql, lock, runner, claimed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (plan_id, step) DO UPDATE SET "
                "runner = excluded.runner, claimed_at = excluded.claimed_at, finished_at = NULL, result = NULL, "
                "detail = NULL WHERE actions.result = 'not-run'"),
                (plan_id, step, target, policy, action, obj, sql, lock, runner, now_iso()))
            return cur.rowcount == 1

    def finish(self, plan_id: str, step: int, result: str, detail: str, waits: int, notices: list[str],
               before: Any, after: Any) -> None:
        """Complete a claimed step: the only write to an action row after its claim."""
        self.execute("UPDATE actions SET finished_at = ?, result = ?, detail = ?, waits = ?, notices = ?, before = ?, "
                     "after = ? WHERE plan_id = ? AND step = ? AND finished_at IS NULL",
                     (now_iso(), result, detail, waits, json.dumps(notices), json.dumps(before, default=str),
                      json.dumps(after, default=str), plan_id, step))

    def last_action(self, target: str, policy: str, obj: str) -> str | None:
        """When this policy last acted on this object (for cooldowns)."""
        rows = self.execute("SELECT max(claimed_at) FROM actions WHERE target = ? AND policy = ? AND object = ? "
                            "AND result = 'done'", (target, policy, obj))
        return rows[0][0] if rows and rows[0][0] else None

    def audit(self, limit: int = 50) -> list[dict]:
        cols = ["plan_id", "step", "target", "policy", "action", "object", "sql", "lock", "runner", "claimed_at",
                "finished_at", "result", "detail", "waits", "notices", "before", "after"]
        rows = self.execute(f"SELECT {', '.join(cols)} FROM actions ORDER BY claimed_at DESC LIMIT ?", (limit,))
        return [dict(zip(cols, r, strict=True)) for r in rows]


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def open_store(project: Project) -> StateStore:
    """The project's state store (`state.url`, else `.civicq-ops/state.db`), upgraded to this
    version's schema, with the project's history retention (`state.retention`)."""
    url = project.state.url or f"sqlite:///{project.state_dir / 'state.db'}"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        url = f"sqlite:///{project.root / url.removeprefix('sqlite:///')}"
    return StateStore(project.interpolate(url, ("state", "url")), retention_s=project.state.retention_s)
