"""The fleet's ledger in the shared state store: one row per (target, check group, slot), where a
slot is one interval of the schedule. A job claims its row before it runs and finishes it in the
same transaction that records the run's history, so however often a job is delivered (a second
scheduler, a retry after a worker died) each (target, interval) is recorded exactly once.

Its table, fleet_runs, is migration 6 of the state store (civicq_ops/state/store.py): opening
the store creates it, like every other table.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from civicq_ops.state.store import StateStore


def claim(store: StateStore, target: str, group: str, slot: int, due_at: float, worker: str) -> int | None:
    """Take (target, group, slot): the attempt number, or None when it has already finished."""
    rows = store.execute(
        "INSERT INTO fleet_runs (target, check_group, slot, due_at, worker, claimed_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (target, check_group, slot) DO UPDATE SET attempts = fleet_runs.attempts + 1, "
        "worker = excluded.worker, claimed_at = excluded.claimed_at WHERE fleet_runs.finished_at IS NULL "
        "RETURNING attempts", (target, group, slot, due_at, worker, time.time()))
    return int(rows[0][0]) if rows else None


def finish(store: StateStore, target: str, group: str, slot: int, *, run_id: str | None, status: str,
           summary: dict, labels: dict, detail: str | None) -> bool:
    rows = store.execute(
        "UPDATE fleet_runs SET finished_at = ?, run_id = ?, status = ?, summary = ?, labels = ?, detail = ? "
        "WHERE target = ? AND check_group = ? AND slot = ? AND finished_at IS NULL RETURNING 1",
        (time.time(), run_id, status, json.dumps(summary), json.dumps(labels), detail, target, group, slot))
    return bool(rows)


@dataclass
class SlotRow:
    target: str
    check_group: str
    slot: int
    due_at: float
    attempts: int
    claimed_at: float
    finished_at: float | None
    status: str | None
    run_id: str | None
    labels: str | None = None
    detail: str | None = None


def rows(store: StateStore, since: float = 0.0) -> list[SlotRow]:
    found = store.execute("SELECT target, check_group, slot, due_at, attempts, claimed_at, finished_at, status, run_id, labels, "
                          "detail FROM fleet_runs WHERE due_at >= ? ORDER BY target, check_group, slot", (since,))
    return [SlotRow(*r) for r in found]
