"""Cumulative counters a check saw on its previous run, per target identity, check and subject.

Checks that judge statistics counters (pg_statio_*: block hits and reads) must judge recent
activity, not everything since the last stats reset: the engine subtracts what this table holds.
The table comes from the store's migration 4 (state/store.py) and works on SQLite and PostgreSQL
stores alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol


class _Executes(Protocol):
    def execute(self, text: str, params: tuple = ()) -> list[tuple]: ...

    def executemany(self, text: str, rows: list[tuple]) -> None: ...


@dataclass(frozen=True)
class Previous:
    """The counters of one subject as a previous run saw them, and when (ISO 8601, UTC)."""

    counters: dict[str, float]
    at: str


def subject_key(subject: dict | None) -> str:
    return json.dumps(subject or {}, sort_keys=True, default=str, separators=(",", ":"))


class CounterStore:
    """Previous counters, kept in the state store (one row per target, check and subject)."""

    def __init__(self, store: _Executes) -> None:
        self._store = store

    def load(self, target: str, check_id: str) -> dict[str, Previous]:
        rows = self._store.execute("SELECT subject, counters, at FROM check_counters WHERE target = ? AND check_id = ?",
                                   (target, check_id))
        return {r[0]: Previous(json.loads(r[1]), r[2]) for r in rows}

    def save(self, target: str, check_id: str, entries: dict[str, Previous]) -> None:
        self._store.executemany(
            "INSERT INTO check_counters (target, check_id, subject, counters, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (target, check_id, subject) DO UPDATE SET counters = excluded.counters, at = excluded.at",
            [(target, check_id, key, json.dumps(previous.counters), previous.at) for key, previous in entries.items()])


class MemoryCounters:
    """The same interface in memory: offline tests state their previous counters with it."""

    def __init__(self, entries: dict[tuple[str, str], dict[str, Previous]] | None = None) -> None:
        self.entries = entries or {}

    def load(self, target: str, check_id: str) -> dict[str, Previous]:
        return dict(self.entries.get((target, check_id), {}))

    def save(self, target: str, check_id: str, entries: dict[str, Previous]) -> None:
        self.entries.setdefault((target, check_id), {}).update(entries)
