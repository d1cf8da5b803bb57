"""Every shipped check against real PostgreSQL 15 and 18.

Each case provokes the problem the check looks for (a bloated table, a failed concurrent index
build, a blocked UPDATE, a forgotten prepared transaction...) and asserts the finding, its subject
and its level. Where a condition takes days or a second server to happen for real (wraparound age,
a standby), the case lowers the check's thresholds instead, so the real query still runs against
a real catalog and the assertion still names the subject; the reason is written beside it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from civicq_ops.core.thresholds import Thresholds
from tests.fixtures.pg import Database, shipped_catalog

Setup = Callable[[Database], contextlib.AbstractContextManager]


@dataclass
class Case:
    setup: Setup | None = None
    thresholds: dict | None = None  # lowered thresholds, when the real condition cannot be made in a test
    params: dict = field(default_factory=dict)
    subject: dict | None = None  # expected subject (a subset), or None for a check without subject
    levels: tuple[str, ...] = ("warning", "critical")
    seeded: bool = False  # needs the migrated, seeded CivicQ database
    embedded: bool = False  # run through an embedded (local) target


def sql(*statements: str) -> Setup:
    @contextlib.contextmanager
    def setup(db: Database) -> Iterator[None]:
        with db.connect() as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.05)
        yield

    return setup


@contextlib.contextmanager
def idle_in_transaction(db: Database, isolation: str = "READ COMMITTED") -> Iterator[psycopg.Connection]:
    conn = db.connect(autocommit=False)
    conn.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
    conn.execute("SELECT count(*) FROM pg_class")
    time.sleep(0.3)
    try:
        yield conn
    finally:
        conn.close()


def snapshot_holder(db: Database):
    return idle_in_transaction(db, "REPEATABLE READ")


@contextlib.contextmanager
def in_background(db: Database, statement: str, autocommit: bool = True) -> Iterator[psycopg.Connection]:
    conn = db.connect(autocommit=autocommit)
    pid = conn.info.backend_pid
    thread = threading.Thread(target=lambda: _quietly(conn, statement), daemon=True)
    thread.start()
    time.sleep(0.5)
    try:
        yield _Pid(pid)
    finally:
        with contextlib.suppress(Exception):
            conn.cancel_safe(timeout=2)
        thread.join(5)
        conn.close()


@dataclass
class _Pid:
    """What a background set-up yields: the server pid of its connection (busy in another thread)."""

    pid: int


def _quietly(conn, statement: str) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.execute(statement)


@contextlib.contextmanager
def long_query(db: Database) -> Iterator[_Pid]:
    with in_background(db, "SELECT pg_sleep(5)") as query:
        yield query


@contextlib.contextmanager
def blocked_update(db: Database) -> Iterator[dict]:
    with db.connect() as setup:
        setup.execute("CREATE TABLE ballots_t (id int PRIMARY KEY, v int)")
        setup.execute("INSERT INTO ballots_t VALUES (1, 0)")
    holder = db.connect(autocommit=False)
    holder.execute("UPDATE ballots_t SET v = 1 WHERE id = 1")  # holds the row lock, then goes idle
    try:
        with in_background(db, "UPDATE ballots_t SET v = 2 WHERE id = 1") as waiter:  # waits on the transaction id
            yield {"holder": holder.info.backend_pid, "waiter": waiter.pid}
    finally:
        holder.close()


@contextlib.contextmanager
def prepared(db: Database) -> Iterator[None]:
    with db.connect() as conn:
        conn.execute("CREATE TABLE twopc (a int)")
    conn = db.connect(autocommit=False)
    conn.execute("INSERT INTO twopc VALUES (1)")
    conn.execute(f"PREPARE TRANSACTION 'civicq-test-{db.name}'")
    conn.close()
    try:
        yield
    finally:
        with db.connect() as c:
            c.execute(f"ROLLBACK PREPARED 'civicq-test-{db.name}'")


@contextlib.contextmanager
def deadlock(db: Database) -> Iterator[None]:
    with db.connect() as c:
        c.execute("CREATE TABLE dl (id int PRIMARY KEY, v int)")
        c.execute("INSERT INTO dl VALUES (1, 0), (2, 0)")
    a, b = db.connect(autocommit=False), db.connect(autocommit=False)
    a.execute("UPDATE dl SET v = 1 WHERE id = 1")
    b.execute("UPDATE dl SET v = 1 WHERE id = 2")
    errors: list[Exception] = []

    def cross(conn, row):
        try:
            conn.execute(f"UPDATE dl SET v = 2 WHERE id = {row}")
        except psycopg.errors.DeadlockDetected as e:
            errors.append(e)
            conn.rollback()
            conn.execute("SELECT pg_stat_force_next_flush()")

    t = threading.Thread(target=cross, args=(a, 2))
    t.start()
    time.sleep(0.3)
    cross(b, 1)
    t.join(10)
    a.close()
    b.close()
    assert errors, "no deadlock happened"
    time.sleep(0.2)
    yield


@contextlib.contextmanager
def replication_slot(db: Database) -> Iterator[None]:
    name = f"slot_{db.name}"
    with db.connect() as c:
        c.execute("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
    try:
        yield
    finally:
        with db.connect() as c:
            c.execute("SELECT pg_drop_replication_slot(%s)", (name,))


def alter_system(setting: str, value: str) -> Setup:
    @contextlib.contextmanager
    def setup(db: Database) -> Iterator[None]:
        with db.connect() as c:
            c.execute(f"ALTER SYSTEM SET {setting} = '{value}'")
            c.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
        try:
            yield
        finally:
            with db.connect() as c:
                c.execute(f"ALTER SYSTEM RESET {setting}")
                c.execute("SELECT pg_reload_conf()")
            time.sleep(0.2)

    return setup


@contextlib.contextmanager
def md5_role(db: Database) -> Iterator[None]:
    role = f"md5_{db.name}"
    with db.connect() as c:
        c.execute("SET password_encryption = 'md5'")
        c.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'not-a-real-secret'")
    try:
        yield
    finally:
        with db.connect() as c:
            c.execute(f"DROP ROLE {role}")


@contextlib.contextmanager
def seq_scans(db: Database) -> Iterator[None]:
    with db.connect() as c:
        c.execute("CREATE TABLE scanned (id int, v text)")
        c.execute("INSERT INTO scanned SELECT g, 'x' FROM generate_series(1, 5000) g")
        c.execute("ANALYZE scanned")
        for _ in range(120):
            c.execute("SELECT count(*) FROM scanned WHERE v = 'y'")
        c.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.05)
    yield


@contextlib.contextmanager
def slow_statements(db: Database) -> Iterator[None]:
    with db.connect() as c:
        for _ in range(22):
            c.execute("SELECT pg_sleep(0.02)")
    yield


@contextlib.contextmanager
def spill(db: Database) -> Iterator[None]:
    with db.connect() as c:
        c.execute("SET work_mem = '64kB'")
        c.execute("SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC LIMIT 1")
    yield


@contextlib.contextmanager
def rollbacks(db: Database) -> Iterator[None]:
    with db.connect(autocommit=False) as c:
        for _ in range(30):
            c.execute("SELECT 1")
            c.rollback()
        c.execute("SELECT pg_stat_force_next_flush()")
        c.commit()
    time.sleep(0.05)
    yield


@contextlib.contextmanager
def _cache_misses(db: Database) -> Iterator[None]:
    """Block reads that miss shared_buffers: a table scanned through a ring buffer (_bulk_load)."""
    _bulk_load(db, "missed")
    yield


BLOATED = ("CREATE TABLE bloated (id int, pad text) WITH (autovacuum_enabled = false)",
           "INSERT INTO bloated SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
           "DELETE FROM bloated WHERE id % 10 < 6", "VACUUM bloated", "ANALYZE bloated")
LOWER = "threshold lowered: the real condition needs days or a second server"

CASES: dict[str, Case] = {
    "connection-latency": Case(thresholds={"warning": {"gt": "0ms"}}),  # LOWER: a fast loopback connect
    "server-version-support": Case(thresholds={"warning": {"lt": 100000}}),  # LOWER: both majors are supported
    "recent-restart": Case(thresholds={"warning": {"lt": "100d"}}),  # the test cluster did just start
    "expected-role": Case(subject=None, levels=("critical",)),  # the target claims to be a standby: see below
    "clock-skew": Case(thresholds={"warning": {"gte": 0}}),  # LOWER: runner and server share a clock
    "connection-saturation": Case(thresholds={"warning": {"gt": 0}}),  # LOWER: filling 50 slots is the engine test
    "idle-in-transaction": Case(idle_in_transaction, {"warning": {"gte": "0s"}}, {"min_idle": "0s"}),
    "long-running-queries": Case(long_query, {"warning": {"gte": "0s"}}, {"min_duration": "0s"}),
    "long-transactions": Case(idle_in_transaction, {"warning": {"gte": "0s"}}, {"min_age": "0s"}),
    "prepared-transactions": Case(prepared, {"warning": {"gte": "0s"}}),
    "xmin-horizon": Case(snapshot_holder, {"warning": {"gte": 0}}, {"min_age": 0}, {"holder": "backend"}),
    "blocking-sessions": Case(blocked_update, {"warning": {"gte": "0s"}}, {"min_wait": "0s"}),
    "lock-table-usage": Case(thresholds={"warning": {"gt": 0}}),
    "deadlocks": Case(deadlock, {"warning": {"gt": 0}}),
    "table-dead-tuples": Case(sql("CREATE TABLE dead (id int) WITH (autovacuum_enabled = false)",
                                  "INSERT INTO dead SELECT generate_series(1, 20000)", "DELETE FROM dead WHERE id % 2 = 0"),
                              params={"min_live_tuples": 1000}, subject={"relname": "dead"}, levels=("critical",)),
    "database-xid-age": Case(thresholds={"warning": {"gt": 0}}),  # LOWER
    "table-xid-age": Case(sql("CREATE TABLE young (a int)", "INSERT INTO young VALUES (1)"), {"warning": {"gt": 0}},
                          {"min_age": 0}),  # LOWER; the oldest 50 are the catalogs, all as old as the database
    "database-multixact-age": Case(thresholds={"warning": {"gte": 0}}),  # LOWER
    "table-multixact-age": Case(sql("CREATE TABLE mx (a int)"), {"warning": {"gte": 0}}, {"min_age": 0},
                                {"relname": "mx"}),  # LOWER
    "autovacuum-falling-behind": Case(sql("CREATE TABLE behind (id int) WITH (autovacuum_enabled = false)",
                                          "INSERT INTO behind SELECT generate_series(1, 20000)",
                                          "DELETE FROM behind WHERE id > 5000"), subject={"relname": "behind"}),
    "tables-never-vacuumed": Case(sql("CREATE TABLE unvacuumed (id int) WITH (autovacuum_enabled = false)",
                                      "INSERT INTO unvacuumed SELECT generate_series(1, 3000)"),
                                  params={"min_live_tuples": 1000}, subject={"relname": "unvacuumed"}),
    "tables-never-analyzed": Case(sql("CREATE TABLE unanalyzed (id int) WITH (autovacuum_enabled = false)",
                                      "INSERT INTO unanalyzed SELECT generate_series(1, 3000)"),
                                  params={"min_live_tuples": 1000}, subject={"relname": "unanalyzed"}),
    "statistics-stale": Case(sql("CREATE TABLE churn (id int) WITH (autovacuum_enabled = false)",
                                 "INSERT INTO churn SELECT generate_series(1, 3000)", "ANALYZE churn",
                                 "SELECT pg_stat_force_next_flush()", "UPDATE churn SET id = id + 1"),
                             subject={"relname": "churn"}),
    "autovacuum-disabled-tables": Case(sql("CREATE TABLE noauto (a int) WITH (autovacuum_enabled = false)"),
                                       subject={"relname": "noauto"}),
    "autovacuum-settings": Case(alter_system("autovacuum_naptime", "10min"), subject={"name": "autovacuum_naptime"}),
    "table-bloat": Case(sql(*BLOATED), params={"min_bytes": 0}, subject={"relname": "bloated"}),
    "index-bloat": Case(sql("CREATE TABLE ib (id int, pad text)", "CREATE INDEX ib_pad ON ib (pad)",
                            "INSERT INTO ib SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
                            "DELETE FROM ib WHERE id % 10 < 8", "VACUUM ib", "ANALYZE ib"),
                        params={"min_bytes": 0}, subject={"indexname": "ib_pad"}),
    "invalid-index": Case(subject={"indexname": "dup_a_key"}),  # the failed build is made in the test
    "unused-indexes": Case(sql("CREATE TABLE idle_idx (a int)", "INSERT INTO idle_idx SELECT generate_series(1, 1000)",
                               "CREATE INDEX idle_idx_a ON idle_idx (a)"),
                           params={"min_bytes": 0}, subject={"indexname": "idle_idx_a"}),
    "duplicate-indexes": Case(sql("CREATE TABLE twice (a int)", "CREATE INDEX twice_1 ON twice (a)",
                                  "CREATE INDEX twice_2 ON twice (a)"), subject={"indexname": "twice_1"}),
    "redundant-indexes": Case(sql("CREATE TABLE pre (a int, b int)", "CREATE INDEX pre_a ON pre (a)",
                                  "CREATE INDEX pre_ab ON pre (a, b)"), subject={"indexname": "pre_a"}),
    "missing-indexes": Case(seq_scans, params={"min_live_tuples": 1000, "min_seq_scans": 100},
                            subject={"relname": "scanned"}, levels=("critical",)),
    "fk-without-index": Case(sql("CREATE TABLE parent (id int PRIMARY KEY)",
                                 "CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))"),
                             subject={"constraint_name": "child_parent_id_fkey"}),
    "not-valid-constraints": Case(sql("CREATE TABLE nv (a int)", "INSERT INTO nv VALUES (-1)",
                                      "ALTER TABLE nv ADD CONSTRAINT nv_positive CHECK (a > 0) NOT VALID"),
                                  subject={"constraint_name": "nv_positive"}),
    "disabled-triggers": Case(sql("CREATE TABLE trig (a int)",
                                  "CREATE FUNCTION trig_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
                                  "CREATE TRIGGER trig_t BEFORE INSERT ON trig FOR EACH ROW EXECUTE FUNCTION trig_fn()",
                                  "ALTER TABLE trig DISABLE TRIGGER trig_t"), subject={"trigger_name": "trig_t"}),
    "tables-without-primary-key": Case(sql("CREATE TABLE heap_only (a int)"), subject={"tablename": "heap_only"}),
    "sequence-exhaustion": Case(sql("CREATE TABLE legacy (id serial PRIMARY KEY)",
                                    "SELECT setval('legacy_id_seq', 2100000000)"),
                                subject={"sequencename": "legacy_id_seq"}, levels=("critical",)),
    "integer-key-capacity": Case(sql("CREATE TABLE ids (id int PRIMARY KEY)",
                                     "INSERT INTO ids SELECT generate_series(1999999000, 2000000000)", "ANALYZE ids"),
                                 subject={"tablename": "ids"}, levels=("critical",)),
    "slow-queries": Case(slow_statements, {"warning": {"gt": "10ms"}}, {"min_calls": 20}),  # LOWER: 20 ms sleeps
    "top-queries-by-total-time": Case(slow_statements, {"warning": {"gt": 0}}, {"min_total": "0s"}),  # LOWER
    "temp-file-spills": Case(spill, {"warning": {"gt": 0}}),  # LOWER: a small real spill
    "statements-evicted": Case(thresholds={"warning": {"gte": 0}}),  # LOWER: evicting needs 5,000 distinct statements
    "database-cache-hit-ratio": Case(lambda db: _cache_misses(db), {"warning": {"lte": 1}}, {"min_blocks": 0}),
    "checkpoints-requested": Case(sql("CHECKPOINT"), {"warning": {"gte": 0}}, {"min_checkpoints": 0}),  # LOWER
    "rollback-ratio": Case(rollbacks, {"warning": {"gt": 0}}, {"min_transactions": 0}),  # LOWER
    "inactive-replication-slots": Case(replication_slot),
    "wal-retained-by-slots": Case(replication_slot, {"warning": {"gte": 0}}),  # LOWER: a slot holding 1 GB of WAL
    "database-size": Case(thresholds={"warning": {"gt": "1MB"}}),  # LOWER
    "largest-tables": Case(sql("CREATE TABLE big (a int)", "INSERT INTO big SELECT generate_series(1, 1000)"),
                           {"warning": {"gt": 0}}, subject={"relname": "big"}),  # LOWER
    "largest-indexes": Case(sql("CREATE TABLE bigi (a int PRIMARY KEY)"), {"warning": {"gt": 0}},
                            subject={"indexname": "bigi_pkey"}),  # LOWER
    "disk-usage": Case(thresholds={"warning": {"gt": 0}}, embedded=True),  # LOWER; an embedded target
    "settings-review": Case(subject={"name": "fsync"}, levels=("critical",)),  # test clusters run with fsync=off
    "superuser-count": Case(thresholds={"warning": {"gt": 0}}),  # LOWER: one superuser is normal
    "public-schema-create": Case(sql("GRANT CREATE ON SCHEMA public TO PUBLIC"), subject={"schemaname": "public"}),
    "security-definer-search-path": Case(sql("CREATE FUNCTION whoami() RETURNS text LANGUAGE sql SECURITY DEFINER "
                                             "AS 'SELECT current_user::text'"), subject={"function_name": "whoami"}),
    "md5-passwords": Case(md5_role),
    "extensions-update-available": Case(sql("DROP EXTENSION pgstattuple", "CREATE EXTENSION pgstattuple VERSION '1.4'"),
                                        subject={"name": "pgstattuple"}),
    "matview-not-populated": Case(sql("CREATE MATERIALIZED VIEW later AS SELECT 1 AS a WITH NO DATA"),
                                  subject={"matviewname": "later"}, levels=("critical",)),
    "matview-stale": Case(thresholds={"warning": {"gt": "0s"}}, subject={"matviewname": "popular_questions"},
                          seeded=True),  # LOWER: the seed refreshed it moments ago
    "civicq-moderation-backlog": Case(sql("UPDATE reports SET created_at = now() - interval '30 hours' WHERE id = 2"),
                                      seeded=True),
    "civicq-audit-log-silent": Case(sql("DELETE FROM audit_logs"), seeded=True),
    "civicq-soft-delete-orphans": Case(sql("UPDATE questions SET deleted_at = now() WHERE id = 3"),
                                       subject={"kind": "votes"}, seeded=True),
    "civicq-untranscribed-answers": Case(sql("UPDATE video_answers SET created_at = now() - interval '8 hours' "
                                             "WHERE transcript IS NULL"), seeded=True),
}

# The value of each finding, computed independently on the same server (or from the provoked state),
# as (expected, tolerance): a lowered threshold alone proves only that the query returns a number.


def one(db: Database, query: str, *args):
    with db.connect() as conn:
        return conn.execute(query, args).fetchone()[0]


def _stat_db(db: Database, *columns: str) -> list[float]:
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(f"SELECT {', '.join(columns)} FROM pg_stat_database WHERE datname = current_database()")
        return [float(v) for v in row.fetchone()]


def _pid_of(finding) -> int:
    return int(str(finding.subject.get("pid") or finding.subject.get("blocked_pid") or finding.subject["name"]).split()[0])


def _activity_age(column: str):
    def truth(db, finding, made):
        pid = made.info.backend_pid if isinstance(made, psycopg.Connection) else made.pid
        assert _pid_of(finding) == pid, (finding.subject, pid)
        return float(one(db, f"SELECT extract(epoch FROM now() - {column}) FROM pg_stat_activity WHERE pid = %s", pid)), 1.5
    return truth


def _blocking(db, finding, made):
    assert finding.subject["blocked_pid"] == made["waiter"] and finding.evidence["head_pid"] == made["holder"]
    return float(one(db, "SELECT extract(epoch FROM now() - state_change) FROM pg_stat_activity WHERE pid = %s",
                     made["waiter"])), 1.5


def _xmin_holder(db, finding, made):
    assert _pid_of(finding) == made.info.backend_pid
    return one(db, "SELECT age(backend_xmin) FROM pg_stat_activity WHERE pid = %s", made.info.backend_pid), 3


def _statement(db: Database, finding, column: str) -> float:
    return float(one(db, f"SELECT {column} FROM pg_stat_statements WHERE queryid::text = %s AND dbid = "
                         "(SELECT oid FROM pg_database WHERE datname = current_database())", finding.subject["queryid"]))


def _slow(db, finding, _):
    assert "pg_sleep" in finding.evidence["query"] and finding.value >= 20
    return _statement(db, finding, "mean_exec_time"), 0.01


def _top(db, finding, _):
    assert "pg_sleep" in finding.evidence["query"]
    total = float(one(db, "SELECT sum(total_exec_time) FROM pg_stat_statements WHERE query !~* '^\\s*/\\* civicq-ops' "
                          "AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"))
    return _statement(db, finding, "total_exec_time") / total, 0.05


def _spill(db, finding, _):
    assert "generate_series" in finding.evidence["query"]
    assert finding.evidence["temp_bytes_per_call"] == finding.value // max(finding.evidence["calls"], 1)
    return _statement(db, finding, "temp_blks_written") * 8192, 0


def _ratio_of(part: str, other: str):
    """part / (part + other) of pg_stat_database, from the counters the check saw: each is checked
    against the server's (they only grow, and this test's own queries move them)."""
    def truth(db, finding, _):
        seen_part, seen_other = finding.evidence[part], finding.evidence[other]
        server_part, server_other = _stat_db(db, part, other)
        assert 0 < seen_part <= server_part and 0 <= seen_other <= server_other, (finding.evidence, server_part)
        return seen_part / (seen_part + seen_other), 1e-9
    return truth


def _deadlocks(db, finding, _):
    with db.connect() as conn:
        deadlocks, started, now = conn.execute(
            "SELECT deadlocks, coalesce(stats_reset, pg_postmaster_start_time()), now() FROM pg_stat_database "
            "WHERE datname = current_database()").fetchone()
    assert deadlocks >= 1 and finding.evidence["deadlocks"] == deadlocks
    assert finding.evidence["days"] == pytest.approx((now - started).total_seconds() / 86400, abs=1e-4)
    return deadlocks / max((now - started).total_seconds() / 86400, 1), 1e-6


def _checkpoints(db, finding, _):
    view, timed, requested = (("pg_stat_checkpointer", "num_timed", "num_requested")
                              if int(one(db, "SHOW server_version_num")) >= 170000
                              else ("pg_stat_bgwriter", "checkpoints_timed", "checkpoints_req"))
    with db.connect() as conn:
        t, r = conn.execute(f"SELECT {timed}, {requested} FROM {view}").fetchone()
    assert r >= 1
    return r / (t + r), 0


def _saturation(db, finding, _):
    with db.connect() as conn:
        used = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]
        settings = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', "
                                     "'superuser_reserved_connections', 'reserved_connections')").fetchall())
    available = int(settings["max_connections"]) - int(settings["superuser_reserved_connections"]) \
        - int(settings.get("reserved_connections", 0))
    assert finding.evidence["available"] == available
    return (used - 1) / available, 2 / available  # minus the connection asking


def _locks(db, finding, _):
    with db.connect() as conn:
        settings = dict(conn.execute("SELECT name, setting::int FROM pg_settings WHERE name IN ('max_connections', "
                                     "'max_locks_per_transaction', 'max_prepared_transactions')").fetchall())
        locks = conn.execute("SELECT count(*) FROM pg_locks").fetchone()[0]
    capacity = settings["max_locks_per_transaction"] * (settings["max_connections"] + settings["max_prepared_transactions"])
    assert finding.evidence["capacity"] == capacity
    return locks / capacity, 10 / capacity


def _disk(db, finding, _):
    import shutil

    usage = shutil.disk_usage(db.cluster.local.data_dir)
    return usage.used / usage.total, 0.01


def _relation(query: str, key: str, tolerance: float = 0):
    def truth(db, finding, _):
        return one(db, query, finding.subject[key]), tolerance
    return truth


def _database_age(db, finding, _):
    assert finding.evidence["wraparound_ratio"] == pytest.approx(finding.value / 2147483647)
    return one(db, "SELECT age(datfrozenxid) FROM pg_database WHERE datname = %s", finding.subject["datname"]), 3


def _stale(db, finding, _):
    changed, tuples = one(db, "SELECT ARRAY[n_mod_since_analyze::float8, n_live_tup::float8] FROM pg_stat_user_tables "
                              "WHERE relname = %s", finding.subject["relname"])
    return changed / max(tuples, 1), 0.001


def _table_age(db, finding, _):
    return one(db, "SELECT greatest(age(c.relfrozenxid), coalesce(age(t.relfrozenxid), 0)) FROM pg_class c "
                   "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class t ON t.oid = c.reltoastrelid "
                   "WHERE n.nspname = %s AND c.relname = %s", finding.subject["schemaname"], finding.subject["relname"]), 3


def _restart(db, finding, _):
    return float(one(db, "SELECT extract(epoch FROM now() - pg_postmaster_start_time())")), 5


def _eol(db, finding, _):
    import datetime as dt

    assert finding.evidence["major"] == int(one(db, "SHOW server_version_num")) // 10000
    return (dt.date.fromisoformat(finding.evidence["eol"]) - one(db, "SELECT current_date")).days, 0


def _dead(db, finding, _):
    dead, live = one(db, "SELECT ARRAY[n_dead_tup, n_live_tup] FROM pg_stat_user_tables WHERE relname = %s",
                     finding.subject["relname"])
    return dead / (dead + live), 0.001


def _seq_ratio(db, finding, _):
    seq, idx = one(db, "SELECT ARRAY[seq_scan, coalesce(idx_scan, 0)] FROM pg_stat_user_tables WHERE relname = %s",
                   finding.subject["relname"])
    return seq / (seq + idx), 0.001


def _behind(db, finding, _):
    dead, tuples = one(db, "SELECT ARRAY[s.n_dead_tup::float8, greatest(c.reltuples, 0)::float8] FROM pg_stat_user_tables s "
                           "JOIN pg_class c ON c.oid = s.relid WHERE s.relname = %s", finding.subject["relname"])
    threshold = float(one(db, "SHOW autovacuum_vacuum_threshold"))
    scale = float(one(db, "SHOW autovacuum_vacuum_scale_factor"))
    return dead / (threshold + scale * tuples), 0.001


TRUTH: dict[str, Callable] = {
    "server-version-support": _eol,
    "recent-restart": _restart,
    "clock-skew": lambda db, f, _: (0.0, 1.0),  # runner and server share a clock here
    "connection-latency": lambda db, f, _: (50.0, 50.0),  # a loopback connect: more than 0, well under 100 ms
    "connection-saturation": _saturation,
    "idle-in-transaction": _activity_age("state_change"),
    "long-running-queries": _activity_age("query_start"),
    "long-transactions": _activity_age("xact_start"),
    "prepared-transactions": lambda db, f, _: (float(one(db, "SELECT extract(epoch FROM now() - prepared) FROM "
                                                             "pg_prepared_xacts WHERE gid = %s", f.subject["gid"])), 1.5),
    "xmin-horizon": _xmin_holder,
    "blocking-sessions": _blocking,
    "lock-table-usage": _locks,
    "deadlocks": _deadlocks,
    "table-dead-tuples": _dead,
    "database-xid-age": _database_age,
    "table-xid-age": _table_age,
    "database-multixact-age": _relation("SELECT mxid_age(datminmxid) FROM pg_database WHERE datname = %s", "datname"),
    "table-multixact-age": _relation("SELECT mxid_age(relminmxid) FROM pg_class WHERE relname = %s", "relname"),
    "autovacuum-falling-behind": _behind,
    "missing-indexes": _seq_ratio,
    "slow-queries": _slow,
    "top-queries-by-total-time": _top,
    "temp-file-spills": _spill,
    "statements-evicted": lambda db, f, _: (one(db, "SELECT dealloc FROM pg_stat_statements_info"), 0),
    "database-cache-hit-ratio": _ratio_of("blks_hit", "blks_read"),
    "checkpoints-requested": _checkpoints,
    "rollback-ratio": _ratio_of("xact_rollback", "xact_commit"),
    "wal-retained-by-slots": _relation("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots "
                                       "WHERE slot_name = %s", "slot_name", 1 << 20),
    "database-size": _relation("SELECT pg_database_size(%s)", "datname", 1 << 20),
    "largest-tables": _relation("SELECT pg_total_relation_size(%s::regclass)", "relname"),
    "largest-indexes": _relation("SELECT pg_relation_size(%s::regclass)", "indexname"),
    "disk-usage": _disk,
    "statistics-stale": _stale,
    "superuser-count": lambda db, f, _: (one(db, "SELECT count(*) FROM pg_roles WHERE rolsuper AND rolcanlogin"), 0),
}


# Negative controls: objects made beside the provoked problem that the check must NOT report (a
# query that lost a filter reports them), as (statements, subjects that must not fire).
NEGATIVE: dict[str, tuple[tuple[str, ...], tuple[dict, ...]]] = {
    "public-schema-create": (("CREATE SCHEMA closed_s",), ({"schemaname": "closed_s"},)),
    "security-definer-search-path": (
        ("CREATE FUNCTION safe_definer() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog "
         "AS 'SELECT 1'", "CREATE FUNCTION invoker() RETURNS int LANGUAGE sql AS 'SELECT 1'",
         "CREATE FUNCTION definer_other() RETURNS int LANGUAGE sql SECURITY DEFINER SET work_mem = '1MB' AS 'SELECT 1'"),
        ({"function_name": "safe_definer"}, {"function_name": "invoker"})),
    "disabled-triggers": (
        ("CREATE TABLE trig_ok (a int)",
         "CREATE FUNCTION trig_ok_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
         "CREATE TRIGGER trig_on BEFORE INSERT ON trig_ok FOR EACH ROW EXECUTE FUNCTION trig_ok_fn()"),
        ({"trigger_name": "trig_on"},)),
    "autovacuum-disabled-tables": (("CREATE TABLE auto_on (a int) WITH (autovacuum_enabled = true)",),
                                   ({"relname": "auto_on"},)),
    "tables-without-primary-key": (("CREATE TABLE with_pk (a int PRIMARY KEY)",), ({"tablename": "with_pk"},)),
    "matview-not-populated": (("CREATE MATERIALIZED VIEW filled AS SELECT 1 AS a",), ({"matviewname": "filled"},)),
    "tables-never-analyzed": (("CREATE TABLE analyzed_t (id int) WITH (autovacuum_enabled = false)",
                               "INSERT INTO analyzed_t SELECT generate_series(1, 3000)", "ANALYZE analyzed_t"),
                              ({"relname": "analyzed_t"},)),
    "tables-never-vacuumed": (("CREATE TABLE vacuumed_t (id int) WITH (autovacuum_enabled = false)",
                               "INSERT INTO vacuumed_t SELECT generate_series(1, 3000)", "VACUUM vacuumed_t"),
                              ({"relname": "vacuumed_t"},)),
    "duplicate-indexes": (("CREATE TABLE two_cols (a int, b int)", "CREATE INDEX two_a ON two_cols (a)",
                           "CREATE INDEX two_b ON two_cols (b)", "CREATE INDEX two_ab ON two_cols (a, b)"),
                          ({"indexname": "two_a"}, {"indexname": "two_b"}, {"indexname": "two_ab"})),
    "redundant-indexes": (("CREATE TABLE other_cols (a int, b int)", "CREATE INDEX other_b ON other_cols (b)",
                           "CREATE INDEX other_ab ON other_cols (a, b)", "CREATE UNIQUE INDEX other_a ON other_cols (a)"),
                          ({"indexname": "other_b"}, {"indexname": "other_ab"}, {"indexname": "other_a"})),
    "integer-key-capacity": (("CREATE TABLE big_ids (id bigint PRIMARY KEY)",
                              "INSERT INTO big_ids SELECT generate_series(2999999000, 3000000000)", "ANALYZE big_ids",
                              "CREATE TABLE few_ids (id int PRIMARY KEY)", "INSERT INTO few_ids VALUES (1), (2)",
                              "ANALYZE few_ids"),
                             ({"tablename": "big_ids"}, {"tablename": "few_ids"})),
    "statistics-stale": (("CREATE TABLE fresh_stats (id int) WITH (autovacuum_enabled = false)",
                          "INSERT INTO fresh_stats SELECT generate_series(1, 3000)", "ANALYZE fresh_stats"),
                         ({"relname": "fresh_stats"},)),
}
NEGATIVE["superuser-count"] = (("DO $$BEGIN CREATE ROLE plain_login_for_tests LOGIN; "
                                "EXCEPTION WHEN duplicate_object THEN NULL; END$$",), ())  # counted only if super
# Positive controls made by NEGATIVE's statements: a second object the check must report.
PRESENT = {"security-definer-search-path": ({"function_name": "definer_other"},)}
# Checks whose provoked problem is the only one there is: a second finding means a lost filter.
ONLY = {"idle-in-transaction", "long-running-queries", "long-transactions", "xmin-horizon", "blocking-sessions",
        "prepared-transactions", "public-schema-create", "disabled-triggers"}


# Conditions this machine cannot create; the test still runs the real query and checks the outcome.
NOT_PROVOKED = {
    "checksum-failures": ("ok", "needs a page corrupted on disk"),
    "standby-replay-lag": ("skipped", "needs a standby; on a primary it is skipped"),
    "replication-lag": ("ok", "needs a connected standby"),
    "archiver-failing": ("skipped", "needs archive_mode = on and a failing archive_command"),
}


# Checks whose real test needs more than a database, and where it lives.
TESTED_ELSEWHERE = {
    "backup-freshness": "tests/backup/test_backup_real.py (needs real backups in a backups folder)",
    "backup-size-drop": "tests/backup/test_backup_real.py",
    "table-cache-hit-ratio": "test_cache_hit_ratios_* below (need a state store and two runs)",
    "index-cache-hit-ratio": "test_cache_hit_ratios_* below (need a state store and two runs)",
}


def test_every_shipped_check_has_a_real_case():
    assert set(CASES) | set(NOT_PROVOKED) | set(TESTED_ELSEWHERE) == set(shipped_catalog().checks)


def _run(db: Database, check_id: str, case: Case):
    from civicq_ops.config import Target
    from civicq_ops.engine.run import RunOptions, Selection, run_checks
    from civicq_ops.facts import default_providers

    catalog = shipped_catalog()
    check = catalog.checks[check_id]
    if case.thresholds:
        check.thresholds = Thresholds.parse(case.thresholds, check.unit)
    project, target = db.project()
    if check_id == "expected-role":
        target = Target(name="env", url=target.url, role="standby")
    if case.embedded:
        target = Target(name="local", embedded=True, data_dir=str(db.cluster.local.data_dir), database=db.name)
    return run_checks(project, [target], catalog, Selection(checks=[check_id]),
                      RunOptions(params={check_id: case.params}, facts=default_providers(project)))


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_check_finds_its_provoked_problem(request, pg_cluster, check_id):
    case = CASES[check_id]
    db: Database = request.getfixturevalue("civicq_db" if case.seeded else "db")
    if check_id == "invalid-index":
        with db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE TABLE dup (a int)")
            conn.execute("INSERT INTO dup VALUES (1), (1)")
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_a_key ON dup (a)")
    statements, absent = NEGATIVE.get(check_id, ((), ()))
    if statements:
        with db.connect() as conn:
            for statement in statements:
                conn.execute(statement)
    with (case.setup(db) if case.setup else contextlib.nullcontext()) as made:
        result = _run(db, check_id, case)
        everything = [f for f in result.findings if f.status in case.levels]
        for subject in absent:
            assert not [f for f in everything if all((f.subject or {}).get(k) == v for k, v in subject.items())], \
                f"{check_id} reports the negative control {subject}"
        if check_id in ONLY:
            assert len(everything) == 1, [f.subject for f in everything]
        for subject in PRESENT.get(check_id, ()):
            assert [f for f in everything if all((f.subject or {}).get(k) == v for k, v in subject.items())], \
                f"{check_id} misses the positive control {subject}"
        truth = [f for f in result.findings if f.status in case.levels]
        if check_id in TRUTH and truth:
            subject = case.subject or {}
            truth = [f for f in truth if all((f.subject or {}).get(k) == v for k, v in subject.items())] or truth
            expected, tolerance = TRUTH[check_id](db, truth[0], made)
            assert truth[0].value == pytest.approx(expected, abs=tolerance), \
                f"{check_id}: {truth[0].subject} value {truth[0].value}, computed on the server: {expected}"
    firing = [f for f in result.findings if f.status in case.levels]
    assert not [f for f in result.findings if f.status == "error"], [f.reason for f in result.findings]
    if case.subject:
        firing = [f for f in firing if f.subject and all(f.subject.get(k) == v for k, v in case.subject.items())]
    assert firing, f"{check_id}: no {'/'.join(case.levels)} finding; got " + \
        "; ".join(f"{f.subject} {f.status} {f.reason or f.message}" for f in result.findings)
    assert firing[0].message and firing[0].recommendation


@pytest.mark.parametrize("check_id", sorted(NOT_PROVOKED))
def test_check_that_cannot_be_provoked_here_still_runs(db, check_id):
    expected, _why = NOT_PROVOKED[check_id]
    result = _run(db, check_id, Case())
    assert [(f.status, f.subject) for f in result.findings] == [(expected, None)], [f.reason for f in result.findings]


# Findings a clean, freshly migrated and seeded CivicQ database is expected to show, and why.
EXPECTED_ON_CLEAN = {
    ("settings-review", "fsync"): "test clusters run with fsync=off for speed",
    ("settings-review", "full_page_writes"): "test clusters run with full_page_writes=off for speed",
    ("recent-restart", None): "the test cluster started minutes ago",
    ("checkpoints-requested", None): "every CREATE DATABASE of the test suite forces a checkpoint",
    ("statements-evicted", None): "the whole suite sends thousands of distinct statements to this shared cluster",
}


def test_whole_catalogue_is_clean_on_a_fresh_civicq_database(civicq_db):
    from tests.fixtures.pg import run_on

    result = run_on(civicq_db)
    unexpected = []
    for f in result.findings:
        if f.status in ("ok", "skipped"):
            continue
        key = (f.check, next(iter(f.subject.values())) if f.subject else None)
        if key == ("server-version-support", None) and result.targets[0].server_version.startswith("15."):
            continue  # true: PostgreSQL 15 reaches end of life in November 2027, within a year
        if key not in EXPECTED_ON_CLEAN:
            unexpected.append(f"{f.check} {f.subject} {f.status}: {f.reason or f.message}")
    assert unexpected == []
    skipped = {f.check for f in result.findings if f.status == "skipped"}
    # backup-*: the test database was never backed up and its target declares no backups.expect: no evidence
    assert skipped == {"standby-replay-lag", "archiver-failing", "disk-usage", "backup-freshness", "backup-size-drop"}


def test_bloat_estimate_agrees_with_pgstattuple_within_five_points(db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE measured (id int, a text, b timestamptz, c int) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO measured SELECT g, md5(g::text), now(), g FROM generate_series(1, 100000) g")
        conn.execute("DELETE FROM measured WHERE id % 10 < 4")
        conn.execute("VACUUM measured")
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("ANALYZE measured")
        truth = conn.execute("SELECT free_percent + dead_tuple_percent FROM pgstattuple('measured')").fetchone()[0]
    catalog = shipped_catalog()
    catalog.checks["table-bloat"].variants = []  # the statistics-based estimate alone, not the pgstattuple variant
    from tests.fixtures.pg import run_on

    result = run_on(db, ["table-bloat"], catalog=catalog, params={"table-bloat": {"min_bytes": "0"}})
    [finding] = [f for f in result.findings if f.subject["relname"] == "measured"]
    assert abs(finding.value * 100 - float(truth)) <= 5, (finding.value, truth)
    assert finding.confidence == "high"


def test_whole_catalogue_runs_as_a_monitoring_role_without_errors(civicq_db):
    """Production runners connect as a pg_monitor member, not as a superuser."""
    from civicq_ops.config import Target
    from civicq_ops.engine.run import RunOptions, Selection, run_checks
    from civicq_ops.facts import default_providers
    from tests.fixtures.pg import project_for

    role = f"monitor_{civicq_db.name}"
    with civicq_db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'monitor-pw' IN ROLE pg_monitor")
    kw = civicq_db.conninfo
    url = f"postgresql://{role}:monitor-pw@{kw['host']}:{kw['port']}/{civicq_db.name}"
    try:
        project, _ = project_for(url)
        result = run_checks(project, [Target(name="env", url=url)], shipped_catalog(), Selection(),
                             RunOptions(facts=default_providers(project)))
        assert result.errors == []
        assert [(f.check, f.reason) for f in result.findings if f.status == "error"] == []
    finally:
        with civicq_db.connect() as conn:
            conn.execute(f"DROP ROLE {role}")


# --- the catalogue must not disturb what it measures ------------------------------------------------


def _block_reads(db: Database, relname: str) -> int:
    """Buffer accesses (hits + reads, every fork) counted for one table or index, fresh from the stats."""
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT coalesce(heap_blks_hit + heap_blks_read, 0) FROM pg_statio_user_tables WHERE relname = %s "
            "UNION ALL SELECT idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes WHERE indexrelname = %s",
            (relname, relname)).fetchone()
    return int(row[0])


def test_bloat_checks_read_only_the_relations_their_estimate_suspects(db):
    """pgstattuple_approx and pgstatindex run only for candidates: a healthy table and index of the
    same size are never read (their buffer counters stay still), while the bloated ones are."""
    with db.connect() as conn:
        for statement in BLOATED:
            conn.execute(statement)
        conn.execute("CREATE INDEX bloated_pad ON bloated (pad)")
        conn.execute("DELETE FROM bloated WHERE id % 10 >= 6 AND id % 10 < 9")
        conn.execute("VACUUM bloated")
        conn.execute("ANALYZE bloated")
        # Never vacuumed: no page is all-visible, so pgstattuple_approx would read every heap page.
        conn.execute("CREATE TABLE healthy (id int, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO healthy SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
        conn.execute("CREATE INDEX healthy_pad ON healthy (pad)")
        conn.execute("ANALYZE healthy")
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.2)
    before = {name: _block_reads(db, name) for name in ("healthy", "healthy_pad", "bloated", "bloated_pad")}
    from tests.fixtures.pg import run_on

    result = run_on(db, ["table-bloat", "index-bloat"], params={"table-bloat": {"min_bytes": 0},
                                                                "index-bloat": {"min_bytes": 0}})
    assert {f.subject["relname" if f.check == "table-bloat" else "indexname"] for f in result.findings
            if f.status != "ok" and f.subject} >= {"bloated", "bloated_pad"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_block_reads(db, "bloated") == before["bloated"]
                                           or _block_reads(db, "bloated_pad") == before["bloated_pad"]):
        time.sleep(0.1)  # the run's connections flush their statistics when they close
    after = {name: _block_reads(db, name) for name in before}
    assert after["bloated"] > before["bloated"] and after["bloated_pad"] > before["bloated_pad"], (before, after)
    assert (after["healthy"], after["healthy_pad"]) == (before["healthy"], before["healthy_pad"]), (before, after)


def test_five_runs_of_the_catalogue_on_an_idle_database_find_what_the_first_found(civicq_db, tmp_path):
    """The tool's own reads must not turn into findings: runs 2-5 give the same ids and statuses."""
    from civicq_ops.state.counters import CounterStore
    from civicq_ops.state.store import StateStore
    from tests.fixtures.pg import run_on

    counters = CounterStore(StateStore(f"sqlite:///{tmp_path / 'state.db'}"))

    def findings() -> dict[str, str]:
        result = run_on(civicq_db, counters=counters)
        # recent-restart changes with the clock by design (a warning for 5 minutes after a start):
        # a slow machine crosses that line between two runs on a fresh test cluster.
        return {f"{f.check} {f.subject or ''}": f.status for f in result.findings if f.check != "recent-restart"}

    first = findings()
    for run in range(2, 6):
        assert findings() == first, f"run {run} differs from the first"


# --- recommendations that are safe to paste ------------------------------------------------------------


def _statements(recommendation: str) -> list[str]:
    from tests.templating.test_recommendation_sql import _sql_segments

    return _sql_segments(recommendation)


def test_unused_indexes_keep_the_index_backing_a_foreign_key(db):
    """Dropping the only index on a foreign key makes every delete on the parent scan the child."""
    from tests.fixtures.pg import run_on

    with db.connect() as conn:
        conn.execute("CREATE TABLE parent (id int PRIMARY KEY)")
        conn.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id), note text)")
        conn.execute("CREATE INDEX child_parent ON child (parent_id)")
        conn.execute("CREATE INDEX child_note ON child (note)")
    params = {"unused-indexes": {"min_bytes": 0}}
    flagged = {f.subject["indexname"] for f in run_on(db, ["unused-indexes"], params=params).findings if f.subject}
    assert flagged == {"child_note"}
    with db.connect() as conn:  # a second index on the key: the older one stays, the newer may go
        conn.execute("CREATE INDEX child_parent_2 ON child (parent_id, id)")
    flagged = {f.subject["indexname"] for f in run_on(db, ["unused-indexes"], params=params).findings if f.subject}
    assert flagged == {"child_note", "child_parent_2"}


def test_not_valid_constraints_say_how_to_find_the_violating_rows_first(db):
    """The recommendation's query lists exactly the rows VALIDATE would trip on; once they are fixed,
    the recommended ALTER TABLE runs as written, on a table whose name needs quoting."""
    from tests.fixtures.pg import run_on

    with db.connect() as conn:
        conn.execute('CREATE SCHEMA "Odd Schema"')
        conn.execute('CREATE TABLE "Odd Schema"."p, 1" (id int PRIMARY KEY)')
        conn.execute('CREATE TABLE "Odd Schema"."Weird ""nv"" 100%" (a int, b int)')
        conn.execute('INSERT INTO "Odd Schema"."p, 1" VALUES (1)')
        conn.execute('INSERT INTO "Odd Schema"."Weird ""nv"" 100%" VALUES (-1, 1), (2, 7), (3, NULL), (NULL, 1)')
        conn.execute('ALTER TABLE "Odd Schema"."Weird ""nv"" 100%" ADD CONSTRAINT "Positive A" CHECK (a > 0) NOT VALID')
        conn.execute('ALTER TABLE "Odd Schema"."Weird ""nv"" 100%" ADD CONSTRAINT "b fk" FOREIGN KEY (b) '
                     'REFERENCES "Odd Schema"."p, 1" (id) NOT VALID')
    findings = {f.subject["constraint_name"]: f for f in run_on(db, ["not-valid-constraints"]).findings if f.subject}
    assert set(findings) == {"Positive A", "b fk"}
    violating = {"Positive A": [(-1, 1)], "b fk": [(2, 7)]}
    with db.connect() as conn:
        for name, finding in findings.items():
            find, validate = _statements(finding.recommendation)
            assert sorted(conn.execute(find).fetchall()) == violating[name], (name, find)
            with pytest.raises(psycopg.errors.CheckViolation if name == "Positive A"
                               else psycopg.errors.ForeignKeyViolation):
                conn.execute(validate)
        conn.execute('DELETE FROM "Odd Schema"."Weird ""nv"" 100%" WHERE a < 0 OR b = 7')
        for finding in findings.values():
            conn.execute(_statements(finding.recommendation)[1])
    assert [f.status for f in run_on(db, ["not-valid-constraints"]).findings] == ["ok"]


def test_autovacuum_falling_behind_says_when_autovacuum_is_off_for_the_table(db):
    from tests.fixtures.pg import run_on

    with db.connect() as conn:
        for table, options in (("lagging_off", "WITH (autovacuum_enabled = false)"), ("lagging_on", "")):
            conn.execute(f"CREATE TABLE {table} (id int) {options}")
            conn.execute(f"INSERT INTO {table} SELECT generate_series(1, 20000)")
            conn.execute(f"DELETE FROM {table} WHERE id > 5000")
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.1)
    findings = {f.subject["relname"]: f for f in run_on(db, ["autovacuum-falling-behind"]).findings if f.subject}
    off = findings["lagging_off"]
    assert off.status in ("warning", "critical")
    assert "autovacuum is off" in off.message.lower() and "Autovacuum is off" in off.recommendation
    assert 'RESET (autovacuum_enabled)' in off.recommendation
    if "lagging_on" in findings:  # autovacuum may already have cleaned it
        assert "off" not in findings["lagging_on"].message


# --- cache hit ratios over recent activity -----------------------------------------------------------


def _io(db: Database, table: str, index: str) -> dict[str, int]:
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        heap = conn.execute("SELECT heap_blks_hit, heap_blks_read FROM pg_statio_user_tables WHERE relname = %s",
                            (table,)).fetchone()
        idx = conn.execute("SELECT idx_blks_hit, idx_blks_read FROM pg_statio_user_indexes WHERE indexrelname = %s",
                           (index,)).fetchone()
    return {"heap_hit": heap[0], "heap_read": heap[1], "idx_hit": idx[0], "idx_read": idx[1]}


def _bulk_load(db: Database, table: str, index: str | None = None) -> None:
    """A table of ~1.5 x a quarter of shared_buffers, loaded the way bulk loads run: CREATE TABLE AS
    writes through a ring buffer (so most pages leave shared_buffers), and scans of a table that
    large (the index build's too) read through a small ring: block reads, not hits."""
    with db.connect() as conn:
        buffers = int(conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'shared_buffers'").fetchone()[0])
        rows = buffers // 4 * 35 * 3 // 2  # about 35 of these rows fill an 8 kB page
        # No autovacuum on it: an autoanalyze of the fresh table between two runs would read blocks
        # the test does not count (seen once under load), and the test is about the checks.
        conn.execute(f"CREATE TABLE {table} WITH (autovacuum_enabled = false) AS "
                     "SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, %s) g", (rows,))
        if index:
            conn.execute(f"CREATE INDEX {index} ON {table} (id)")
        conn.execute(f"SELECT count(*) FROM {table}")  # the morning report after the load
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.1)


def _ratio(before: dict, after: dict, kind: str) -> float:
    hit = after[f"{kind}_hit"] - before[f"{kind}_hit"]
    return hit / (hit + after[f"{kind}_read"] - before[f"{kind}_read"])


def test_cache_hit_ratios_judge_recent_activity_not_a_bulk_load(db, tmp_path):
    """A bulk load and an index build leave a bad cumulative ratio; after normal reads the checks judge
    those reads (the increase since the previous run, kept in the state store), not the load."""
    from civicq_ops.state.counters import CounterStore
    from civicq_ops.state.store import StateStore
    from tests.fixtures.pg import run_on

    counters = CounterStore(StateStore(f"sqlite:///{tmp_path / 'state.db'}"))
    checks = ["table-cache-hit-ratio", "index-cache-hit-ratio"]
    params = {c: {"min_blocks": 2000} for c in checks}
    _bulk_load(db, "loaded", index="loaded_id")
    loaded = _io(db, "loaded", "loaded_id")
    cumulative = loaded["heap_hit"] / (loaded["heap_hit"] + loaded["heap_read"])
    assert cumulative < 0.8, loaded  # what judging cumulative counters called critical

    first = run_on(db, checks, params=params, counters=counters).findings
    assert [(f.check, f.status, f.subject) for f in first] == [(c, "ok", None) for c in checks]
    assert all("seen for the first time" in f.message for f in first)

    quiet = run_on(db, checks, params=params, counters=counters).findings
    assert all(f.status == "ok" and "not enough recent activity" in f.message for f in quiet), quiet

    before = _io(db, "loaded", "loaded_id")
    with db.connect() as conn:
        conn.execute("SET enable_bitmapscan = off")
        conn.execute("SET enable_seqscan = off")
        for i in range(3000):  # the application's reads: a hot set of rows, looked up by key
            conn.execute("SELECT pad FROM loaded WHERE id = %s", (i % 3000 + 1,))
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.1)
    after = _io(db, "loaded", "loaded_id")
    judged = {f.check: f for f in run_on(db, checks, params=params, counters=counters).findings}
    table, index = judged["table-cache-hit-ratio"], judged["index-cache-hit-ratio"]
    assert table.subject == {"schemaname": "public", "relname": "loaded"} and table.status == "ok", table
    assert index.subject == {"schemaname": "public", "indexname": "loaded_id"} and index.status == "ok", index
    assert table.value == pytest.approx(_ratio(before, after, "heap"), abs=1e-9)
    assert index.value == pytest.approx(_ratio(before, after, "idx"), abs=1e-9)
    assert table.evidence["heap_blks_hit"] == after["heap_hit"] - before["heap_hit"]


def test_cache_hit_ratios_find_a_table_read_from_disk_recently(db, tmp_path):
    """The same checks still catch misses: reads through a ring buffer (a table above a quarter of
    shared_buffers, scanned sequentially) since the previous run give a low recent ratio."""
    from civicq_ops.state.counters import CounterStore
    from civicq_ops.state.store import StateStore
    from tests.fixtures.pg import run_on

    counters = CounterStore(StateStore(f"sqlite:///{tmp_path / 'state.db'}"))
    params = {"table-cache-hit-ratio": {"min_blocks": 2000}}
    _bulk_load(db, "scanned_big")
    run_on(db, ["table-cache-hit-ratio"], params=params, counters=counters)
    before = _io_table(db, "scanned_big")
    with db.connect() as conn:
        for _ in range(2):
            conn.execute("SELECT count(*) FROM scanned_big")
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.1)
    after = _io_table(db, "scanned_big")
    [finding] = [f for f in run_on(db, ["table-cache-hit-ratio"], params=params, counters=counters).findings
                 if f.subject]
    expected = _ratio(before, after, "heap")
    assert expected < 0.8, (before, after)
    assert finding.value == pytest.approx(expected, abs=1e-9) and finding.status == "critical"


def _io_table(db: Database, table: str) -> dict[str, int]:
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        heap = conn.execute("SELECT heap_blks_hit, heap_blks_read FROM pg_statio_user_tables WHERE relname = %s",
                            (table,)).fetchone()
    return {"heap_hit": heap[0], "heap_read": heap[1]}


@pytest.mark.parametrize(("check_id", "part", "other", "param", "setup"), [
    ("database-cache-hit-ratio", "blks_hit", "blks_read", "min_blocks", _cache_misses),
    ("rollback-ratio", "xact_rollback", "xact_commit", "min_transactions", rollbacks),
    ("checkpoints-requested", "requested", "timed", "min_checkpoints", sql("CHECKPOINT")),
])
def test_minimum_params_gate_on_the_sum_of_both_counters(db, check_id, part, other, param, setup):
    """min_* counts every event (both counters): the check judges once their sum reaches it, not before."""
    from tests.fixtures.pg import run_on

    with setup(db):
        [first] = run_on(db, [check_id], params={check_id: {param: 0}}).findings
        seen = first.evidence[part] + first.evidence[other]
        assert first.evidence[part] > 0, first.evidence
        [at_the_sum] = run_on(db, [check_id], params={check_id: {param: seen}}).findings
        assert at_the_sum.value is not None and at_the_sum.evidence[part] + at_the_sum.evidence[other] >= seen
        [above] = run_on(db, [check_id], params={check_id: {param: 10**12}}).findings
        assert above.value is None and above.status == "ok"


def test_duplicate_indexes_say_which_copy_to_drop(db):
    """Both copies are reported, but only one recommends its own DROP: never both."""
    from tests.fixtures.pg import run_on

    with db.connect() as conn:
        conn.execute("CREATE TABLE twice (a int)")
        conn.execute("CREATE INDEX twice_1 ON twice (a)")
        conn.execute("CREATE INDEX twice_2 ON twice (a)")
        conn.execute("CREATE TABLE uniq (a int)")
        conn.execute("CREATE INDEX uniq_plain ON uniq (a)")
        conn.execute("ALTER TABLE uniq ADD CONSTRAINT uniq_a UNIQUE (a)")  # older plain, newer enforcing
    found = {f.subject["indexname"]: f.recommendation for f in run_on(db, ["duplicate-indexes"]).findings}
    dropping = {name for name, rec in found.items() if rec.startswith("`DROP INDEX")}
    assert set(found) == {"twice_1", "twice_2", "uniq_plain", "uniq_a"}
    assert dropping == {"twice_2", "uniq_plain"}, found
    assert '`DROP INDEX CONCURRENTLY "public"."uniq_plain";`' in found["uniq_plain"]
