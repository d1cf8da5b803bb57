"""Counters judged over recent activity: the store keeps them per server identity, check and subject."""

from __future__ import annotations

import pytest

from civicq_ops.core.capabilities import Capabilities
from civicq_ops.engine.delta import target_key
from civicq_ops.state.counters import CounterStore, Previous, subject_key
from civicq_ops.state.store import StateStore


def _roundtrip(url: str) -> None:
    store = CounterStore(StateStore(url))
    key = subject_key({"schemaname": "public", "relname": "votes"})
    store.save("7301/civicq", "table-cache-hit-ratio", {key: Previous({"hit": 1.0, "read": 2.0}, "2026-01-01T00:00:00")})
    store.save("7301/civicq", "table-cache-hit-ratio", {key: Previous({"hit": 5.0, "read": 2.0}, "2026-01-02T00:00:00")})
    assert store.load("7301/civicq", "table-cache-hit-ratio") == {
        key: Previous({"hit": 5.0, "read": 2.0}, "2026-01-02T00:00:00")}
    assert store.load("7301/other", "table-cache-hit-ratio") == {}
    assert CounterStore(StateStore(url)).load("7301/civicq", "table-cache-hit-ratio")[key].counters["hit"] == 5.0


def test_counters_survive_reopening_a_sqlite_store(tmp_path):
    _roundtrip(f"sqlite:///{tmp_path / 'state.db'}")


def test_counters_in_a_postgresql_state_store(db):
    _roundtrip(db.url)


@pytest.mark.parametrize(("sysid", "expected"), [("7301", "7301/civicq"), (None, "name:prod/civicq")])
def test_counters_belong_to_the_server_and_database_not_the_target_name(sysid, expected):
    assert target_key(Capabilities(name="prod", system_identifier=sysid)) == expected
