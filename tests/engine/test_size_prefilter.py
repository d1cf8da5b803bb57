"""Size checks measure (pg_relation_size, pg_total_relation_size) only candidates picked from the
catalog's page counts, and never lose a relation whose page count is stale: a table that grew after
its last ANALYZE is measured because its changes since that ANALYZE (n_mod_since_analyze) exceed a
tenth of the rows the catalog knows of. On a real server, against the sizes the server measures."""

from __future__ import annotations

import pytest

from tests.fixtures.pg import run_on


def _decoys(conn, count: int, indexed: bool = True) -> None:
    """`count` small tables (and an index each) whose catalog page counts beat the table under test's."""
    for i in range(count):
        conn.execute(f"CREATE TABLE decoy_{i} (id int, pad text)")
        if indexed:
            conn.execute(f"CREATE INDEX decoy_{i}_pad ON decoy_{i} (pad)")
        conn.execute(f"INSERT INTO decoy_{i} SELECT g, repeat('x', 200) FROM generate_series(1, 200) g")
    conn.execute("SELECT pg_stat_force_next_flush()")  # the inserts counted before the ANALYZE that follows


def _measured_first(db, check: str, key: str, name: str, size_sql: str | None = None) -> None:
    """`check`'s first finding (limit 3) is `name`, with the size the server measures."""
    result = run_on(db, [check], params={check: {"limit": 3}})
    first = result.findings[0]
    assert first.subject[key] == name
    if size_sql:
        assert first.value == _size(db, size_sql)


def _grown_after_analyze(db, decoys: int = 40) -> None:
    """`grown` and its index were analyzed empty (relpages 0 and 1), then filled to several MB; the
    decoys have larger page counts in the catalog than `grown`, so only the guard keeps it."""
    with db.connect() as conn:
        conn.execute("CREATE TABLE grown (id int, note text) WITH (autovacuum_enabled = false)")
        conn.execute("CREATE INDEX grown_note ON grown (note)")
        _decoys(conn, decoys)
    with db.connect() as conn:
        conn.execute("ANALYZE")
        conn.execute("INSERT INTO grown SELECT g, md5(g::text) FROM generate_series(1, 60000) g")
        conn.execute("SELECT pg_stat_force_next_flush()")  # the counters reach the server's stats now
        stale = conn.execute("SELECT relpages FROM pg_class WHERE relname IN ('grown', 'grown_note') "
                             "ORDER BY relname").fetchall()
        assert [r[0] for r in stale] == [0, 1], stale  # the catalog still says empty


def _size(db, query: str) -> int:
    with db.connect() as conn:
        return conn.execute(query).fetchone()[0]


def test_largest_tables_measures_a_table_that_grew_after_its_analyze(db):
    _stale_table_is_measured(db, _grown_after_analyze, "grown")


def test_largest_indexes_measures_an_index_whose_table_grew_after_its_analyze(db):
    _stale_index_is_measured(db, _grown_after_analyze, "grown_note")


def test_unused_indexes_finds_an_index_that_grew_past_min_bytes_after_its_analyze(db):
    _stale_index_is_unused(db, _grown_after_analyze, "grown_note")


def _stale_table_is_measured(db, make_stale, table: str) -> None:
    make_stale(db)
    _measured_first(db, "largest-tables", "relname", table, f"SELECT pg_total_relation_size('{table}')")


def _stale_index_is_measured(db, make_stale, index: str) -> None:
    make_stale(db)
    _measured_first(db, "largest-indexes", "indexname", index, f"SELECT pg_relation_size('{index}')")


def _stale_index_is_unused(db, make_stale, index: str) -> None:
    make_stale(db)
    result = run_on(db, ["unused-indexes"])
    assert [f.subject["indexname"] for f in result.findings if f.status == "warning"] == [index]


@pytest.mark.parametrize("check", ["largest-tables", "largest-indexes"])
def test_the_candidates_give_the_same_ranking_as_measuring_everything(db, check):
    """With current statistics, the top by catalog estimate is the top by measured size."""
    _grown_after_analyze(db, decoys=12)
    with db.connect() as conn:
        conn.execute("ANALYZE")
    query = {"largest-tables": "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', "
                               "'information_schema') AND n.nspname !~ '^pg_toast' "
                               "ORDER BY pg_total_relation_size(c.oid) DESC, c.relname LIMIT 3",
             "largest-indexes": "SELECT indexrelname FROM pg_stat_user_indexes "
                                "ORDER BY pg_relation_size(indexrelid) DESC, indexrelname LIMIT 3"}[check]
    with db.connect() as conn:
        expected = [r[0] for r in conn.execute(query).fetchall()]
    result = run_on(db, [check], params={check: {"limit": 3}})
    key = "relname" if check == "largest-tables" else "indexname"
    assert [f.subject[key] for f in result.findings][:1] == expected[:1]
    assert sorted(f.subject[key] for f in result.findings) == sorted(expected) or \
        len({f.value for f in result.findings}) < 3  # ties between equal decoys may order either way


def _filled_never_analyzed(db, decoys: int = 40) -> None:
    """`unseen` is created with its index and filled with autovacuum off, never vacuumed nor analyzed
    (reltuples -1, relpages 0 in the catalog), and the statistics counters are reset afterwards, so
    only the catalog's own "never measured" mark can keep it: the decoys have larger page counts."""
    with db.connect() as conn:
        _decoys(conn, decoys)
    with db.connect() as conn:
        conn.execute("ANALYZE")
        conn.execute("CREATE TABLE unseen (id int, note text) WITH (autovacuum_enabled = false)")
        conn.execute("CREATE INDEX unseen_note ON unseen (note)")
        conn.execute("INSERT INTO unseen SELECT g, md5(g::text) FROM generate_series(1, 60000) g")
        conn.execute("SELECT pg_stat_force_next_flush()")  # the insert counters reach the server's stats now,
        conn.execute("SELECT pg_stat_reset()")  # and are reset: no counter says the table grew
        assert conn.execute("SELECT pg_stat_get_mod_since_analyze('unseen'::regclass)").fetchone()[0] == 0
        stale = conn.execute("SELECT relname, relpages, reltuples FROM pg_class WHERE relname IN ('unseen', 'unseen_note') "
                             "ORDER BY relname").fetchall()
        assert stale == [("unseen", 0, -1), ("unseen_note", 1, 0)], stale
        assert conn.execute("SELECT pg_relation_size('unseen')").fetchone()[0] > 3 * 2**20


def test_largest_tables_measures_a_filled_table_never_analyzed(db):
    _stale_table_is_measured(db, _filled_never_analyzed, "unseen")


def test_largest_indexes_measures_the_index_of_a_filled_table_never_analyzed(db):
    _stale_index_is_measured(db, _filled_never_analyzed, "unseen_note")


def test_unused_indexes_finds_the_index_of_a_filled_table_never_analyzed(db):
    _stale_index_is_unused(db, _filled_never_analyzed, "unseen_note")


@pytest.mark.parametrize(("check", "key", "name"), [("largest-tables", "relname", "grown"),
                                                     ("largest-indexes", "indexname", "grown_note"),
                                                     ("unused-indexes", "indexname", "grown_note")])
def test_a_relation_grown_after_its_analyze_is_measured_after_the_statistics_were_reset(db, check, key, name):
    """pg_stat_reset (or a crash) loses n_mod_since_analyze: a table with no vacuum or analyze known to
    the statistics is measured, since nothing can say whether it grew since its page count was set."""
    _grown_after_analyze(db)
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_reset()")
        assert conn.execute("SELECT pg_stat_get_mod_since_analyze('grown'::regclass)").fetchone()[0] == 0
    params = {check: {"limit": 3}} if check != "unused-indexes" else {}
    result = run_on(db, [check], params=params)
    assert [f.subject[key] for f in result.findings if f.status != "ok" or check != "unused-indexes"][0] == name


def _decoys_and_growing(db, decoys: int = 40) -> None:
    with db.connect() as conn:
        conn.execute("CREATE TABLE growing (id int, note text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO growing VALUES (1, 'one')")
        _decoys(conn, decoys, indexed=False)
    with db.connect() as conn:
        conn.execute("ANALYZE")
        trusted = conn.execute("SELECT count(*) FROM pg_class WHERE relname ~ '^decoy_' "
                               "AND pg_stat_get_mod_since_analyze(oid) = 0").fetchone()[0]
        assert trusted == decoys  # every decoy's page count is trusted: only the guards can keep `growing`


def test_largest_tables_measures_a_table_an_open_transaction_is_filling(db):
    """The rows of a transaction still open are in no statistics: a table being written is measured."""
    _decoys_and_growing(db)
    writer = db.connect(autocommit=False)
    try:
        writer.execute("INSERT INTO growing SELECT g, md5(g::text) FROM generate_series(1, 60000) g")  # not committed
        _measured_first(db, "largest-tables", "relname", "growing")
    finally:
        writer.rollback()
        writer.close()


def test_largest_tables_measures_a_table_left_large_by_a_rolled_back_load(db):
    """A rolled-back bulk insert counts no change since ANALYZE, only dead rows, until a vacuum."""
    _decoys_and_growing(db)
    with db.connect(autocommit=False) as conn:
        conn.execute("INSERT INTO growing SELECT g, md5(g::text) FROM generate_series(1, 60000) g")
        conn.rollback()
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.commit()
    with db.connect() as conn:
        conn.execute("SELECT 1")
    _measured_first(db, "largest-tables", "relname", "growing", "SELECT pg_total_relation_size('growing')")
