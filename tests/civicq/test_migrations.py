"""Migrations: schema, 100+ concurrent indexes, views; round trips and recovery from interruption."""

from __future__ import annotations

import psycopg
import pytest

from civicq_ops.civicq.migrations import current, history, migrate, migration_sql, rollback
from civicq_ops.core.errors import InputError

INDEXES_SQL = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"
TABLES_SQL = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"


def _count(conn, query: str) -> int:
    return conn.execute(query).fetchone()[0]


def test_migrate_creates_the_schema_indexes_and_views(db):
    project, target = db.project()
    result = migrate(project, target)
    assert (result.before, result.after) == (None, "0004")
    with db.connect() as conn:
        assert _count(conn, TABLES_SQL) >= 20
        plain = _count(conn, "SELECT count(*) FROM pg_indexes i WHERE schemaname = 'public' AND NOT EXISTS "
                             "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)")
        assert plain >= 100  # besides primary keys and unique constraints
        invalid = _count(conn, "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        assert invalid == 0
        views = {r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'")} - {
            "pg_stat_statements", "pg_stat_statements_info"}
        matviews = {r[0] for r in conn.execute("SELECT matviewname FROM pg_matviews WHERE schemaname = 'public'")}
    assert views | matviews == {
        "popular_questions", "contest_summary", "candidate_profiles", "user_activity_summary",
        "video_answer_stats", "city_dashboard", "moderation_queue", "trending_questions", "recent_audit_trail",
    }


def test_every_foreign_key_has_an_index_leading_with_its_columns(db):
    project, target = db.project()
    migrate(project, target)
    with db.connect() as conn:
        missing = conn.execute("""
            SELECT c.conrelid::regclass, c.conname FROM pg_constraint c
            WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace AND NOT EXISTS (
              SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid
                AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey)
        """).fetchall()
    assert missing == []


def test_rollback_to_empty_and_migrate_again_round_trips(db):
    project, target = db.project()
    migrate(project, target)
    assert rollback(project, target, steps=4).after is None
    with db.connect() as conn:
        assert _count(conn, TABLES_SQL) == 0
    migrate(project, target)
    with db.connect() as conn:
        assert _count(conn, TABLES_SQL) >= 20
    assert current(project, target) == "0004"


def test_rollback_one_step_drops_only_the_views(db):
    project, target = db.project()
    migrate(project, target)
    assert rollback(project, target, steps=2).after == "0002"
    with db.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM pg_matviews WHERE schemaname = 'public'") == 0
        assert _count(conn, TABLES_SQL) >= 20


def test_interrupted_index_migration_rebuilds_the_invalid_index(db):
    """A failed CREATE INDEX CONCURRENTLY leaves an INVALID index; re-running must rebuild it."""
    project, target = db.project()
    migrate(project, target, "0001")
    with db.connect() as conn:
        conn.execute("INSERT INTO cities (name, state, slug) VALUES ('A', 'CA', 'a')")
        conn.execute("INSERT INTO users (email, password_hash, full_name, city_id, role) "
                     "VALUES ('a@x.org', 'x', 'A', 1, 'voter'), ('b@x.org', 'x', 'B', 1, 'voter')")
        # Same name as the migration's index, built as UNIQUE over duplicates: it fails, INVALID.
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY users_city_role_idx ON users (city_id, role)")
        valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_city_role_idx'::regclass")
        assert valid.fetchone()[0] is False
    migrate(project, target)
    with db.connect() as conn:
        row = conn.execute("SELECT indisvalid, indisunique FROM pg_index "
                           "WHERE indexrelid = 'users_city_role_idx'::regclass").fetchone()
        assert row == (True, False)
        assert _count(conn, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0


def test_history_lists_the_revisions_in_order():
    from tests.fixtures.pg import project_for

    project, _ = project_for("postgresql://unused@127.0.0.1:1/x")
    assert [r.revision for r in history(project)] == ["0001", "0002", "0003", "0004"]


def test_migration_sql_needs_no_database_and_shows_concurrent_builds():
    from tests.fixtures.pg import project_for

    project, _ = project_for("postgresql://unused@127.0.0.1:1/x")
    text = migration_sql(project)
    assert "CREATE TABLE users" in text
    assert text.count("CREATE INDEX CONCURRENTLY IF NOT EXISTS") == 105
    assert "CREATE MATERIALIZED VIEW popular_questions" in text


def test_unknown_revision_is_an_input_error(db):
    project, target = db.project()
    with pytest.raises(InputError, match="Can't locate revision"):
        migrate(project, target, "9999")


def test_migrate_create_adds_a_numbered_revision(tmp_path):
    import shutil

    from civicq_ops.civicq.migrations import create_migration
    from civicq_ops.config import load_project
    from tests.fixtures.pg import REPO

    shutil.copytree(REPO / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\ntargets:\n  local: {embedded: true}\n")
    project = load_project(tmp_path / "civicq-ops.yaml", env={})
    path = create_migration(project, "add city timezones")
    assert path.name == "0005_add_city_timezones.py"
    assert "down_revision = '0004'" in path.read_text() or 'down_revision = "0004"' in path.read_text()
