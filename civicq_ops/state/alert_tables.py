"""Alert state, dead letters and the watcher lease in the state store.

Kept apart from store.py's schema: `ensure_alert_tables()` creates the tables idempotently (CREATE
... IF NOT EXISTS), and the same SQL runs on SQLite and PostgreSQL (ON CONFLICT ... DO UPDATE).
Alert rows hold their state as JSON; the indexed columns are what other runners query.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from civicq_ops.state.store import StateStore

ALERT_TABLES = [
    """CREATE TABLE IF NOT EXISTS alert_states (
        fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, target TEXT NOT NULL, state TEXT NOT NULL,
        data TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alert_dead_letters (
        id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, notifier TEXT NOT NULL, attempts INTEGER NOT NULL,
        error TEXT NOT NULL, payload TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
]

_ensured: set[int] = set()


def ensure_alert_tables(store: StateStore) -> None:
    """Create the alert tables once per open store (idempotent; the lead folds this into migrations)."""
    if id(store) in _ensured:
        return
    for statement in ALERT_TABLES:
        store.execute(statement)
    _ensured.add(id(store))


def load_alerts(store: StateStore) -> dict[str, dict]:
    ensure_alert_tables(store)
    return {fp: json.loads(data) for fp, data in store.execute("SELECT fingerprint, data FROM alert_states")}


def save_alerts(store: StateStore, alerts: list[dict], removed: list[str]) -> None:
    """Upsert changed alerts and forget removed ones."""
    ensure_alert_tables(store)
    now = time.time()
    for a in alerts:
        store.execute("INSERT INTO alert_states (fingerprint, rule, target, state, data, updated_at) "
                      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET "
                      "state = excluded.state, data = excluded.data, updated_at = excluded.updated_at",
                      (a["fingerprint"], a["rule"], a["target"], a["state"], json.dumps(a, default=str), now))
    for fp in removed:
        store.execute("DELETE FROM alert_states WHERE fingerprint = ?", (fp,))


def record_dead_letter(store: StateStore, notifier: str, attempts: int, error: str, payload: Any) -> None:
    """Keep a delivery that failed every attempt, for a human (or a later replay) to see."""
    ensure_alert_tables(store)
    store.execute("INSERT INTO alert_dead_letters (id, at, notifier, attempts, error, payload) VALUES (?, ?, ?, ?, ?, ?)",
                  (uuid.uuid4().hex, time.time(), notifier, attempts, error, json.dumps(payload, default=str)))


def dead_letters(store: StateStore, limit: int = 50) -> list[dict]:
    ensure_alert_tables(store)
    rows = store.execute("SELECT at, notifier, attempts, error, payload FROM alert_dead_letters ORDER BY at DESC LIMIT ?",
                         (limit,))
    return [{"at": r[0], "notifier": r[1], "attempts": r[2], "error": r[3], "payload": json.loads(r[4])} for r in rows]


def take_lease(store: StateStore, name: str, holder: str, ttl_s: float, now: float | None = None) -> bool:
    """Take or renew the lease `name` for `holder`; False while another holder's lease is unexpired.

    One upsert whose UPDATE applies only to an expired or own lease decides it atomically on both
    SQLite and PostgreSQL; the read after it says who won."""
    ensure_alert_tables(store)
    now = time.time() if now is None else now
    store.execute("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                  "holder = excluded.holder, expires_at = excluded.expires_at "
                  "WHERE leases.expires_at < ? OR leases.holder = excluded.holder",
                  (name, holder, now + ttl_s, now))
    rows = store.execute("SELECT holder FROM leases WHERE name = ?", (name,))
    return bool(rows) and rows[0][0] == holder


def release_lease(store: StateStore, name: str, holder: str) -> None:
    store.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
