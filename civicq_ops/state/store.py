"""The state store: SQLite by default (`.civicq-ops/state.db`), or a PostgreSQL database shared by
several runners (`state.url: postgresql://...`). Its schema is created and upgraded on open.

Actions are append-only: an action is claimed with an INSERT that a unique key lets succeed only
once per plan and step, so two `apply` processes on the same plan never run a step twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from civicq_ops.core.errors import ConfigError, ExecutionError

SCHEMA_VERSION = 1

_SCHEMA = [
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
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class StateStore:
    """A thin, dialect-aware wrapper: SQL is written with ? placeholders."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.kind = "sqlite"
            self._conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgresql"
            try:
                self._conn = psycopg.connect(url, autocommit=True, application_name="civicq-ops state")
            except psycopg.OperationalError as e:
                from civicq_ops.core.errors import first_line

                raise ExecutionError(f"cannot open the state store: {first_line(e)}") from e
        else:
            raise ConfigError(f"state.url must be sqlite:///PATH or postgresql://..., not {url!r}")
        self._migrate()

    def _sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    def execute(self, text: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            cur = self._conn.execute(self._sql(text), params)
            return list(cur.fetchall()) if cur.description else []

    def _migrate(self) -> None:
        for statement in _SCHEMA:
            self.execute(statement)
        rows = self.execute("SELECT version FROM schema_version")
        if not rows:
            self.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    def close(self) -> None:
        self._conn.close()

    # -- runs and findings ------------------------------------------------------------------

    def record_run(self, result) -> None:
        """Keep a run and the value of each finding, for `history`."""
        at = result.started_at.isoformat()
        self.execute("INSERT INTO runs (id, started_at, duration_s, targets, summary, exit_code) VALUES (?, ?, ?, ?, ?, ?)",
                     (result.id, at, result.duration_s, json.dumps([t.name for t in result.targets]),
                      json.dumps(result.summary.to_dict()), result.exit_code))
        for f in result.findings:
            value = f.value if isinstance(f.value, (int, float)) and not isinstance(f.value, bool) else None
            self.execute("INSERT INTO findings (run_id, finding_id, check_id, target, subject, status, value, at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (result.id, f.id, f.check, f.target, json.dumps(f.subject, sort_keys=True, default=str),
                          f.status, value, at))

    def runs(self, limit: int = 20) -> list[dict]:
        rows = self.execute("SELECT id, started_at, duration_s, targets, summary, exit_code FROM runs "
                            "ORDER BY started_at DESC LIMIT ?", (limit,))
        return [{"id": r[0], "started_at": r[1], "duration_s": r[2], "targets": json.loads(r[3]),
                 "summary": json.loads(r[4]), "exit_code": r[5]} for r in rows]

    def finding_history(self, finding_id: str, limit: int = 50) -> list[dict]:
        rows = self.execute("SELECT at, status, value, check_id, target, subject FROM findings WHERE finding_id = ? "
                            "ORDER BY at DESC LIMIT ?", (finding_id, limit))
        return [{"at": r[0], "status": r[1], "value": r[2], "check": r[3], "target": r[4],
                 "subject": json.loads(r[5]) if r[5] else None} for r in rows]

    # -- actions (append-only audit) -----------------------------------------------------------

    def claim(self, plan_id: str, step: int, target: str, policy: str, action: str, obj: str, sql: str,
              lock: str, runner: str) -> bool:
        """Record that this runner takes a plan step; False when another runner already has it.

        One INSERT that the primary key lets succeed once: SQLite and PostgreSQL both decide it
        atomically, so no lock or read-then-write is needed. A step recorded 'not-run' (its runner
        could not connect, or its re-check failed: nothing ran) may be claimed again."""
        with self._lock:
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


def open_store(project) -> StateStore:
    url = project.section("state").get("url") or f"sqlite:///{project.state_dir / 'state.db'}"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        url = f"sqlite:///{project.root / url.removeprefix('sqlite:///')}"
    return StateStore(project.interpolate(url, ("state", "url")))
