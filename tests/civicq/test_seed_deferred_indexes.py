"""A first scaled load builds indexes and keys after COPY, as pg_restore does (issue 14): the schema
afterwards is exactly the migrated one, the rows are the same as with the indexes in place, and a
failure anywhere leaves every index and constraint where it was."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from civicq_ops.civicq.deferred_indexes import indexes_built_after
from civicq_ops.civicq.seeding import seed
from civicq_ops.core.errors import QueryFailed
from tests.fixtures.pg import _clone, _drop, project_for

SCHEMA = """
SELECT 'index', tablename || '.' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) || ' ' || convalidated
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2
"""
ROWS = "SELECT (SELECT count(*) FROM votes), (SELECT count(*) FROM users), (SELECT count(*) FROM cities)"


def _schema(database) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(SCHEMA).fetchall()


def test_a_scaled_seed_leaves_the_migrated_indexes_and_constraints(civicq_db):
    before = _schema(civicq_db)
    project, target = civicq_db.project()
    assert seed(project, target, scale=1).rows["votes"] == 10_000
    after = _schema(civicq_db)
    assert [r for r in after if r[0] == "index"] and after == before


def test_the_indexes_built_after_the_load_hold_every_row(civicq_db):
    project, target = civicq_db.project()
    seed(project, target, scale=1)
    with civicq_db.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        by_index = conn.execute("SELECT count(*) FROM votes WHERE created_at > '-infinity'").fetchone()[0]
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN SELECT count(*) FROM votes WHERE created_at > '-infinity'"))
        total = conn.execute("SELECT count(*) FROM votes").fetchone()[0]
    assert "votes_created_at_idx" in plan and by_index == total


def test_a_bulk_load_keeps_the_development_votes_and_loads_the_rest_frozen(civicq_db):
    with civicq_db.connect() as conn:
        dev = conn.execute("SELECT id, question_id, user_id, value, created_at FROM votes ORDER BY id").fetchall()
    project, target = civicq_db.project()
    seed(project, target, scale=1)
    with civicq_db.connect() as conn:
        kept = conn.execute("SELECT id, question_id, user_id, value, created_at FROM votes WHERE id <= %s "
                            "ORDER BY id", (dev[-1][0],)).fetchall()
        # COPY FREEZE marks the pages all-visible: an index-only scan fetches no heap row.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM votes WHERE user_id > 0").fetchone()[0]
    assert kept == dev

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)
    scans = [n for n in nodes(plan[0]["Plan"]) if n["Node Type"] == "Index Only Scan"]
    assert scans and all(n["Heap Fetches"] == 0 for n in scans), scans


def test_keys_that_foreign_keys_point_at_stay_during_the_load(civicq_db):
    during = "SELECT indrelid::regclass::text, indexrelid::regclass::text FROM pg_index " \
             "WHERE indrelid = ANY(%s::regclass[])"
    with civicq_db.connect(autocommit=False) as conn:
        with indexes_built_after(conn, ["votes", "users"]) as deferred:
            left = conn.execute(during, (["votes", "users"],)).fetchall()
        conn.rollback()
    # votes loses every index (its key and unique constraint too); users keeps the key that
    # votes_user_id_fkey and a dozen other foreign keys point at, and nothing else.
    assert deferred >= 9 and left == [("users", "users_pkey")], left


def test_foreign_keys_come_back_validated(civicq_db):
    before = _schema(civicq_db)
    with civicq_db.connect(autocommit=False) as conn:
        with indexes_built_after(conn, ["votes"], foreign_keys=True):
            fks = conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'votes'::regclass "
                               "AND contype = 'f'").fetchone()[0]
        conn.commit()
    assert fks == 0 and _schema(civicq_db) == before


@pytest.mark.parametrize("foreign_keys", [False, True], ids=["unique-key", "foreign-key"])
def test_a_row_that_breaks_a_deferred_key_fails_and_leaves_the_schema(civicq_db, foreign_keys):
    before = _schema(civicq_db)
    with civicq_db.connect(autocommit=False) as conn:
        question, user = conn.execute("SELECT question_id, user_id FROM votes LIMIT 1").fetchone()
        # a vote on a question that does not exist, or a second vote of a user on the same question
        bad = f"999999\t{424242 if foreign_keys else question}\t{user}\t1\t2026-01-01\n"
        with pytest.raises(psycopg.errors.IntegrityError):
            with indexes_built_after(conn, ["votes"], foreign_keys=foreign_keys):
                conn.execute("SET LOCAL session_replication_role = replica")  # no foreign key trigger
                with conn.cursor().copy("COPY votes (id, question_id, user_id, value, created_at) FROM STDIN") as cp:
                    cp.write(bad)
        conn.rollback()
    assert _schema(civicq_db) == before


def test_a_failure_mid_load_leaves_every_index_constraint_and_row_in_place(civicq_db):
    # audit_logs is the last table loaded: by then votes is in, frozen, with all its indexes dropped.
    with civicq_db.connect() as conn:
        conn.execute("ALTER TABLE audit_logs ADD CONSTRAINT no_generated_votes CHECK (action <> 'question.vote')")
        rows = conn.execute(ROWS).fetchone()
    before = _schema(civicq_db)
    project, target = civicq_db.project()
    with pytest.raises(QueryFailed, match="no_generated_votes"):
        seed(project, target, scale=2)
    assert _schema(civicq_db) == before
    with civicq_db.connect() as conn:
        assert conn.execute(ROWS).fetchone() == rows


@pytest.fixture
def owner(civicq_db):
    """(project, target) of a role that owns every CivicQ table and view but is no superuser."""
    role = f"{civicq_db.name}_owner"
    with civicq_db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'owner-pw'").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))  # as migrations had
        for (rel,) in conn.execute("SELECT oid::regclass::text FROM pg_class WHERE relnamespace = "
                                   "'public'::regnamespace AND relkind = 'r'").fetchall():
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.SQL(rel), sql.Identifier(role)))
        for (rel,) in conn.execute("SELECT oid::regclass::text FROM pg_class WHERE relnamespace = "
                                   "'public'::regnamespace AND relkind = 'm'").fetchall():
            conn.execute(sql.SQL("ALTER MATERIALIZED VIEW {} OWNER TO {}").format(sql.SQL(rel), sql.Identifier(role)))
    try:
        kw = civicq_db.conninfo
        yield project_for(f"postgresql://{role}:owner-pw@{kw['host']}:{kw['port']}/{civicq_db.name}")
    finally:
        with civicq_db.connect() as conn:
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))  # its privileges
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_scaled_seed_by_a_table_owner_without_superuser_validates_the_foreign_keys(civicq_db, owner):
    before = _schema(civicq_db)
    assert seed(*owner, scale=1).rows["votes"] == 10_000
    assert _schema(civicq_db) == before


def test_a_later_scaled_seed_by_a_table_owner_loads_parents_before_votes(civicq_db, owner):
    # Units already present: the foreign keys stay, and their triggers check every vote as it comes.
    seed(*owner, scale=1)
    assert seed(*owner, scale=2).rows["votes"] == 10_000
    with civicq_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM votes v JOIN questions q ON q.id = v.question_id "
                            "WHERE q.title LIKE 'Load question%'").fetchone()[0] == 20_000


VOTES = """
SELECT question_id - min(question_id) OVER (), user_id - min(user_id) OVER (), value,
       created_at - max(created_at) OVER ()
FROM votes WHERE user_id > (SELECT max(id) FROM users WHERE email NOT LIKE 'load-%') ORDER BY id
"""
QUESTIONS = "SELECT title, vote_score, status, created_at - max(created_at) OVER () FROM questions " \
            "WHERE title LIKE 'Load question%' ORDER BY id"


def test_a_scaled_seed_is_deterministic(pg_cluster, seeded_template):
    seen = []
    for _ in range(2):
        database = _clone(pg_cluster, seeded_template)
        try:
            seed(*project_for(database.url), scale=2)
            with database.connect() as conn:
                seen.append((conn.execute(VOTES).fetchall(), conn.execute(QUESTIONS).fetchall()))
        finally:
            _drop(database)
    assert len(seen[0][0]) == 20_000 and len(seen[0][1]) == 100 and seen[0] == seen[1]


def test_a_scaled_seed_says_where_its_time_went(civicq_db):
    result = seed(*civicq_db.project(), scale=1)
    assert list(result.phases) == ["development set", "load", "keys and unique indexes", "commit",
                                   "statistics, indexes, views"]
    assert 0 < sum(result.phases.values()) <= result.seconds


def _interrupted_seed_state(database) -> None:
    """What a seed interrupted after its commit leaves: a plain index dropped and listed as pending."""
    from civicq_ops.civicq import pending_indexes
    from civicq_ops.civicq.deferred_indexes import PlainIndex

    with database.connect(autocommit=False) as conn:
        definition = conn.execute("SELECT pg_get_indexdef('votes_created_at_idx'::regclass)").fetchone()[0]
        conn.execute("DROP INDEX votes_created_at_idx")
        pending_indexes.record(conn, [PlainIndex("public", "votes_created_at_idx", "votes", definition, False)])
        conn.commit()


def test_db_migrate_first_builds_the_indexes_an_interrupted_seed_left(civicq_db):
    from civicq_ops.civicq.migrations import migrate

    before = _schema(civicq_db)
    _interrupted_seed_state(civicq_db)
    assert _schema(civicq_db) != before
    migrate(*civicq_db.project())
    assert _schema(civicq_db) == before  # the index is back and the list is gone


def test_with_no_second_session_the_listed_indexes_and_the_views_are_done_on_one(civicq_db):
    from civicq_ops.civicq.seeding import build_pending
    from civicq_ops.core.errors import ExecutionError

    def no_slot():
        raise ExecutionError("no connection slot left")  # as connect() says when the server is full

    before = _schema(civicq_db)
    _interrupted_seed_state(civicq_db)
    with civicq_db.connect(autocommit=False) as conn:
        last = conn.execute("SELECT max(id) FROM matview_refresh_log").fetchone()[0]
        conn.commit()
        build_pending(conn, no_slot, views=True)
        refreshed = conn.execute("SELECT count(DISTINCT view_name) FROM matview_refresh_log WHERE id > %s",
                                 (last,)).fetchone()[0]
    assert _schema(civicq_db) == before and refreshed == 4
