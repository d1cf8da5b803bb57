"""The seed's Python API against real PostgreSQL 15 and 18."""

from __future__ import annotations

import logging

import pytest

from civicq_ops import api
from tests.fixtures.pg import REPO


@pytest.fixture
def env_db(civicq_db, monkeypatch):
    monkeypatch.setenv("CIVICQ_DATABASE_URL", civicq_db.url)
    monkeypatch.setenv("CIVICQ_CONFIG", str(REPO / "civicq-ops.yaml"))
    return civicq_db


def test_session_commits_on_success_and_rolls_back_on_error(env_db):
    with api.get_db_session() as conn:
        conn.execute("UPDATE cities SET population = 1 WHERE slug = 'berkeley'")
    with pytest.raises(RuntimeError), api.get_db_session() as conn:
        conn.execute("UPDATE cities SET population = 2 WHERE slug = 'berkeley'")
        raise RuntimeError("boom")
    with env_db.connect() as conn:
        assert conn.execute("SELECT population FROM cities WHERE slug = 'berkeley'").fetchone()[0] == 1


def test_execute_transaction_passes_the_connection(env_db):
    count = api.execute_transaction(lambda conn, slug: conn.execute(
        "SELECT count(*) FROM users u JOIN cities c ON c.id = u.city_id WHERE c.slug = %s", (slug,)).fetchone()[0],
        "oakland")
    assert count == 11


def test_raw_query_binds_values(env_db):
    with env_db.connect() as conn:
        rows = api.execute_raw_query(conn, "SELECT name FROM cities WHERE slug = %s", ("oakland'; DROP TABLE cities; --",))
        assert rows == []
        assert api.execute_raw_query(conn, "SELECT name FROM cities WHERE id = %(id)s", {"id": 1}) == [{"name": "San Francisco"}]


def test_bulk_insert_and_bulk_update(env_db):
    with env_db.connect(autocommit=False) as conn:
        rows = [{"name": f"Topic {i}", "slug": f"topic-{i}"} for i in range(500)]
        assert api.bulk_insert(conn, "topics", rows) == 500
        ids = [r[0] for r in conn.execute("SELECT id FROM topics WHERE slug LIKE 'topic-%%' ORDER BY id")]
        updated = api.bulk_update(conn, "public.topics", [{"id": i, "description": f"d{i}"} for i in ids])
        conn.commit()
    assert updated == 500
    with env_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM topics WHERE description LIKE 'd%'").fetchone()[0] == 500


def test_introspection(env_db):
    with env_db.connect() as conn:
        assert "votes" in api.get_table_names(conn) and len(api.get_table_names(conn)) >= 20
        columns = {c["name"]: c for c in api.get_table_columns(conn, "users")}
        assert columns["email"]["type"] == "text" and not columns["email"]["nullable"]
        indexes = {i["name"] for i in api.get_table_indexes(conn, "votes")}
        assert {"votes_pkey", "votes_one_per_user", "votes_user_created_idx"} <= indexes
        fks = {f["name"]: f["references"] for f in api.get_foreign_keys(conn, "votes")}
        assert fks == {"votes_question_id_fkey": "questions", "votes_user_id_fkey": "users"}
        assert api.get_database_size(conn) > 1_000_000
        assert any(s["table"] == "votes" and s["total_bytes"] > 0 for s in api.get_table_stats(conn))


def test_csv_round_trip(env_db, tmp_path):
    path = tmp_path / "cities.csv"
    with env_db.connect() as conn:
        assert api.export_table_to_csv(conn, "cities", path, ["name", "state", "slug"]) > 0
        assert path.read_text().splitlines()[0] == "name,state,slug"
        conn.execute("CREATE TABLE cities_copy (name text, state text, slug text)")
        assert api.import_csv_to_table(conn, "cities_copy", path) == 3
        assert conn.execute("SELECT string_agg(slug, ',' ORDER BY slug) FROM cities_copy").fetchone()[0] == \
            "berkeley,oakland,san-francisco"


def test_query_performance_tracker_logs_slow_blocks(caplog):
    import time

    tracker = api.QueryPerformanceTracker(slow_ms=10)
    with caplog.at_level(logging.WARNING, logger="civicq_ops.slow_queries"):
        with tracker.track("fast"):
            pass
        with tracker.track("slow"):
            time.sleep(0.02)
    assert tracker.stats["slow"]["slow"] == 1 and tracker.stats["fast"]["slow"] == 0
    assert "slow query block 'slow'" in caplog.text


def test_run_check_and_health_check(env_db):
    findings = api.run_check("unused-indexes", params={"min_bytes": "0"})
    assert findings and all(f.check == "unused-indexes" for f in findings)
    health = api.health_check()
    assert set(health) == {"healthy", "summary", "problems"} and health["summary"]["ok"] > 10
