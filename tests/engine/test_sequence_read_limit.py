"""sequence-exhaustion reads a sequence with pg_sequence_last_value, which locks it until the check's
transaction ends: tens of thousands of sequences fill the server's lock table ("out of shared
memory"). One run reads at most max_read of them (0: half the lock table), the riskiest first (the
smallest range, then the table that took the most inserts), and warns of how many it did not read."""

from __future__ import annotations

from tests.fixtures.pg import run_on


def _sequences(db) -> None:
    with db.connect() as conn:
        for i in range(3):
            conn.execute(f"CREATE TABLE wide_{i} (id bigserial PRIMARY KEY)")
        conn.execute("CREATE TABLE narrow (id smallserial PRIMARY KEY)")
        conn.execute("SELECT setval('narrow_id_seq', 32000)")


def test_the_smallest_range_is_read_first_and_the_rest_counted_as_not_read(db):
    _sequences(db)
    result = run_on(db, ["sequence-exhaustion"], params={"sequence-exhaustion": {"max_read": 2}})
    by_name = {f.subject["sequencename"]: f for f in result.findings}
    assert by_name["narrow_id_seq"].status == "critical"  # smallint: 97.7% of 32,767
    unread = by_name["(not read)"]
    assert unread.status == "warning" and unread.confidence == "low"  # unread sequences are never ok
    assert unread.evidence["unread_count"] == 2  # 4 sequences, 2 read
    assert "2 sequences were not read" in unread.message


def test_every_sequence_is_read_within_the_lock_table_share(db):
    _sequences(db)
    result = run_on(db, ["sequence-exhaustion"], list_ok=True)
    names = sorted(f.subject["sequencename"] for f in result.findings)
    assert names == ["narrow_id_seq"]  # the wide ones were never called: no last value, nothing to say
    assert all(f.confidence == "high" for f in result.findings)


def test_a_queue_table_that_burnt_its_sequence_is_read_before_bigger_tables(db):
    """A queue keeps few rows but has taken many inserts: its sequence, not the largest tables', is
    the one near its end (the order once put it last, behind tables with more rows)."""
    with db.connect() as conn:
        for i in range(3):
            conn.execute(f"CREATE TABLE busy_{i} (id serial PRIMARY KEY, v int)")
            conn.execute(f"INSERT INTO busy_{i} (v) SELECT g FROM generate_series(1, 300) g")
        conn.execute("CREATE TABLE job_queue (id serial PRIMARY KEY, v int)")
        conn.execute("INSERT INTO job_queue (v) SELECT g FROM generate_series(1, 2000) g")
        conn.execute("DELETE FROM job_queue WHERE id > 1")
        conn.execute("SELECT setval('job_queue_id_seq', 2140000000)")  # as if it had run for years
        conn.execute("ANALYZE")
        conn.execute("SELECT pg_stat_force_next_flush()")
    with db.connect() as conn:
        conn.execute("SELECT 1")  # a transaction that flushes the counters
    result = run_on(db, ["sequence-exhaustion"], params={"sequence-exhaustion": {"max_read": 1}})
    by_name = {f.subject["sequencename"]: f for f in result.findings}
    assert by_name["job_queue_id_seq"].status == "critical"
    assert by_name["(not read)"].evidence["unread_count"] == 3
