"""A first scaled load builds the secondary indexes after COPY, as pg_restore does (issue 14): the
schema afterwards is exactly the migrated one, and the rows are the same as with the indexes in
place."""

from __future__ import annotations

from civicq_ops.civicq.deferred_indexes import indexes_built_after
from civicq_ops.civicq.seeding import seed

SCHEMA = """
SELECT 'index', tablename || '.' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) || ' ' || convalidated
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2
"""


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


def test_only_non_unique_indexes_backing_no_constraint_are_deferred(civicq_db):
    during = "SELECT i.indisunique, c.conname IS NOT NULL FROM pg_index i LEFT JOIN pg_constraint c " \
             "ON c.conindid = i.indexrelid WHERE i.indrelid = 'votes'::regclass"
    with civicq_db.connect() as conn:
        with indexes_built_after(conn, ["votes"]) as deferred:
            left = conn.execute(during).fetchall()
        conn.rollback()
    assert deferred >= 5 and left and all(unique for unique, _ in left), left
