"""The state store's schema versions: a store of every earlier layout opens, reaches the latest
version with its rows intact, and a store from a newer civicq-ops is refused. SQLite, and
PostgreSQL 15 and 18 (a store shared by several runners)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from civicq_ops.core.errors import ExecutionError
from civicq_ops.state.store import MIGRATIONS, SCHEMA_VERSION, StateStore

V1 = (Path(__file__).parent / "fixtures" / "state_v1.sql").read_text()


def _statements(script: str) -> list[str]:
    text = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def _v1_sqlite(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(V1)
    conn.close()
    return f"sqlite:///{path}"


def _assert_upgraded(store: StateStore) -> None:
    assert store.version == SCHEMA_VERSION == len(MIGRATIONS)
    [run] = store.runs()
    assert run["id"] == "0a1b2c3d4e5f" and run["exit_code"] == 1 and run["fail_on"] is None
    [value] = store.finding_history("f-dead")
    assert value["value"] == 0.42 and value["subject"] == {"relname": "votes"}
    [action] = store.audit()
    assert action["plan_id"] == "plan-1" and action["result"] == "done"
    assert store.last_action("local", "vacuum-dead", "public.votes") == "2026-11-20T02:05:00+00:00"
    assert store.execute("SELECT count(*) FROM schema_version") == [(1,)]


def test_a_version_1_sqlite_store_is_upgraded_on_open_and_keeps_its_rows(tmp_path):
    store = StateStore(_v1_sqlite(tmp_path / "state.db"))
    _assert_upgraded(store)
    store.close()
    again = StateStore(f"sqlite:///{tmp_path / 'state.db'}")  # opening an upgraded store changes nothing
    _assert_upgraded(again)


def test_a_new_sqlite_store_starts_at_the_latest_version(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'new.db'}")
    assert store.version == SCHEMA_VERSION
    assert store.runs() == []


def test_a_store_from_a_newer_civicq_ops_is_refused(tmp_path):
    url = _v1_sqlite(tmp_path / "state.db")
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ExecutionError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this civicq-ops"):
        StateStore(url)


def test_a_failing_migration_leaves_the_store_at_its_version(tmp_path, monkeypatch):
    url = _v1_sqlite(tmp_path / "state.db")

    def broken(store):
        store.execute("CREATE TABLE half_done (x INTEGER)")
        store.execute("THIS IS NOT SQL")

    monkeypatch.setattr("civicq_ops.state.store.MIGRATIONS", [MIGRATIONS[0], broken])
    monkeypatch.setattr("civicq_ops.state.store.SCHEMA_VERSION", 2)
    with pytest.raises(ExecutionError, match="cannot open the state store"):
        StateStore(url)
    conn = sqlite3.connect(tmp_path / "state.db")
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []


def test_a_version_1_postgresql_store_is_upgraded_once_by_two_runners_at_the_same_time(db, monkeypatch):
    with db.connect() as conn:
        for statement in _statements(V1):
            conn.execute(statement)
    real = MIGRATIONS[1]

    def slow(store):  # holds the upgrade open long enough for the other runner to arrive
        time.sleep(0.5)
        real(store)

    monkeypatch.setattr("civicq_ops.state.store.MIGRATIONS", [MIGRATIONS[0], slow, *MIGRATIONS[2:]])
    stores: list[StateStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(StateStore(db.url))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for store in stores:
        _assert_upgraded(store)
        store.close()
    with db.connect() as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'runs' ORDER BY ordinal_position")]
    assert columns[-1] == "fail_on" and columns.count("fail_on") == 1


def test_an_unreachable_postgresql_store_is_one_line_naming_the_store():
    with pytest.raises(ExecutionError, match=r"^cannot connect to the state store at 127\.0\.0\.1:1 .*: ") as caught:
        StateStore("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "secret" not in str(caught.value)


def test_only_a_runs_history_is_synced_lazily(tmp_path):
    """History may wait for the WAL checkpoint; remediation claims and leases sync at their commit."""
    from civicq_ops.state.store import StateStore

    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    synchronous = lambda: store.execute("PRAGMA synchronous")[0][0]  # noqa: E731 - 1 NORMAL, 2 FULL
    assert synchronous() == 2
    with store.transaction(durable=False):
        assert synchronous() == 1
    assert synchronous() == 2
    with store.transaction():
        assert synchronous() == 2
    store.close()
