"""Alert state, dead letters and the watcher lease in the state store.

The tables come from the store's migration 3 (state/store.py); the same SQL runs on SQLite and
PostgreSQL (ON CONFLICT ... DO UPDATE).
Alert rows hold their state as JSON; the indexed columns are what other runners query.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from civicq_ops.state.store import StateStore


def load_alerts(store: StateStore) -> dict[str, dict]:
    return {fp: json.loads(data) for fp, data in store.execute("SELECT fingerprint, data FROM alert_states")}


def save_alerts(store: StateStore, alerts: list[dict], removed: list[str]) -> None:
    """Upsert changed alerts and forget removed ones."""
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
    store.execute("INSERT INTO alert_dead_letters (id, at, notifier, attempts, error, payload) VALUES (?, ?, ?, ?, ?, ?)",
                  (uuid.uuid4().hex, time.time(), notifier, attempts, error, json.dumps(payload, default=str)))


def dead_letters(store: StateStore, limit: int = 50) -> list[dict]:
    rows = store.execute("SELECT at, notifier, attempts, error, payload FROM alert_dead_letters ORDER BY at DESC LIMIT ?",
                         (limit,))
    return [{"at": r[0], "notifier": r[1], "attempts": r[2], "error": r[3], "payload": json.loads(r[4])} for r in rows]


def take_lease(store: StateStore, name: str, holder: str, ttl_s: float, now: float | None = None) -> bool:
    """Take or renew the lease `name` for `holder`; False while another holder's lease is unexpired.

    One upsert whose UPDATE applies only to an expired or own lease decides it atomically on both
    SQLite and PostgreSQL; the read after it says who won."""
    now = time.time() if now is None else now
    store.execute("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                  "holder = excluded.holder, expires_at = excluded.expires_at "
                  "WHERE leases.expires_at < ? OR leases.holder = excluded.holder",
                  (name, holder, now + ttl_s, now))
    rows = store.execute("SELECT holder FROM leases WHERE name = ?", (name,))
    return bool(rows) and rows[0][0] == holder


def release_lease(store: StateStore, name: str, holder: str) -> None:
    store.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
