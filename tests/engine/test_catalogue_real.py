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
def in_background(db: Database, statement: str, autocommit: bool = True) -> Iterator[None]:
    conn = db.connect(autocommit=autocommit)
    thread = threading.Thread(target=lambda: _quietly(conn, statement), daemon=True)
    thread.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            conn.cancel_safe(timeout=2)
        thread.join(5)
        conn.close()


def _quietly(conn, statement: str) -> None:
    with contextlib.suppress(psycopg.Error):
        conn.execute(statement)


@contextlib.contextmanager
def long_query(db: Database) -> Iterator[None]:
    with in_background(db, "SELECT pg_sleep(5)"):
        yield


@contextlib.contextmanager
def blocked_update(db: Database) -> Iterator[None]:
    with db.connect() as setup:
        setup.execute("CREATE TABLE ballots_t (id int PRIMARY KEY, v int)")
        setup.execute("INSERT INTO ballots_t VALUES (1, 0)")
    holder = db.connect(autocommit=False)
    holder.execute("UPDATE ballots_t SET v = 1 WHERE id = 1")  # holds the row lock, then goes idle
    try:
        with in_background(db, "UPDATE ballots_t SET v = 2 WHERE id = 1"):  # waits on the transaction id
            yield
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
    "database-cache-hit-ratio": Case(thresholds={"warning": {"lte": 1}}, params={"min_blocks": 0}),  # LOWER
    "table-cache-hit-ratio": Case(seq_scans, {"warning": {"lte": 1}}, {"min_blocks": 0}, {"relname": "scanned"}),
    "index-cache-hit-ratio": Case(sql("CREATE TABLE looked (id int PRIMARY KEY)",
                                      "INSERT INTO looked SELECT generate_series(1, 1000)",
                                      "SELECT * FROM looked WHERE id = 7"),
                                  {"warning": {"lte": 1}}, {"min_blocks": 0}, {"indexname": "looked_pkey"}),
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
}


def test_every_shipped_check_has_a_real_case():
    assert set(CASES) | set(NOT_PROVOKED) | set(TESTED_ELSEWHERE) == set(shipped_catalog().checks)


def _run(db: Database, check_id: str, case: Case):
    from civicq_ops.config import Target
    from civicq_ops.engine.run import RunOptions, Selection, run_checks

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
                      RunOptions(params={check_id: case.params}))


@pytest.mark.parametrize("check_id", sorted(CASES))
def test_check_finds_its_provoked_problem(request, pg_cluster, check_id):
    case = CASES[check_id]
    db: Database = request.getfixturevalue("civicq_db" if case.seeded else "db")
    if check_id == "invalid-index":
        with db.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE TABLE dup (a int)")
            conn.execute("INSERT INTO dup VALUES (1), (1)")
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_a_key ON dup (a)")
    with (case.setup(db) if case.setup else contextlib.nullcontext()):
        result = _run(db, check_id, case)
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
    assert {f.status for f in result.findings} == {expected}, [f.reason for f in result.findings]


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
    from tests.fixtures.pg import project_for

    role = f"monitor_{civicq_db.name}"
    with civicq_db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'monitor-pw' IN ROLE pg_monitor")
    kw = civicq_db.conninfo
    url = f"postgresql://{role}:monitor-pw@{kw['host']}:{kw['port']}/{civicq_db.name}"
    try:
        project, _ = project_for(url)
        result = run_checks(project, [Target(name="env", url=url)], shipped_catalog(), Selection(), RunOptions())
        assert result.errors == []
        assert [(f.check, f.reason) for f in result.findings if f.status == "error"] == []
    finally:
        with civicq_db.connect() as conn:
            conn.execute(f"DROP ROLE {role}")
