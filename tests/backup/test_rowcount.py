"""Row counts taken while pg_dump runs (issue 14, point 6): on a psql session of their own that imports
pg_dump's snapshot, so an error while counting never takes the snapshot away from pg_dump, and an
interrupt never waits for a count (real PostgreSQL 15 and 18)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psycopg
import pytest

from civicq_ops.backup.create import BackupOptions, backups_dir, create_backup
from civicq_ops.backup.rowcount import CountError, SnapshotRowCounter
from civicq_ops.backup.tools import client_env
from civicq_ops.config import load_project
from civicq_ops.core.errors import ExecutionError
from civicq_ops.postgres.binaries import first_client


@pytest.fixture
def exported(db):
    """Two tables of 3 and 2 rows, and a session holding an exported snapshot of them: (snapshot, db)."""
    with db.connect() as conn:
        conn.execute("CREATE TABLE a (id int); INSERT INTO a VALUES (1), (2), (3)")
        conn.execute("CREATE TABLE b (id int); INSERT INTO b VALUES (1), (2)")
    with db.connect(autocommit=True) as exporter:
        exporter.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = exporter.execute("SELECT pg_export_snapshot()").fetchone()[0]
        yield snapshot, db
        exporter.execute("ROLLBACK")


def tables(*names: str) -> list[dict]:
    return [{"schema": "public", "name": n} for n in names]


def counter_of(db, snapshot: str, names: tuple[str, ...], **conninfo) -> SnapshotRowCounter:
    """A counter of these tables of `db` in `snapshot`, connecting with db's conninfo changed by `conninfo`."""
    return SnapshotRowCounter(first_client("psql"), client_env({**db.conninfo, **conninfo}), snapshot, tables(*names))


@contextmanager
def login_role(db, prefix: str, *grants: str, options: str = ""):
    """A login role (dropped afterwards) with these GRANT/REVOKE statements ({role} in each): (name, password)."""
    role, password = f"{prefix}_{db.name}", f"{prefix}-pw"
    with db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' {options}")
        for statement in grants:
            conn.execute(statement.format(role=role))
    try:
        yield role, password
    finally:
        with db.connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def project_as(tmp_path, db, role: str, password: str):
    """A project whose one target `src` is `db` reached as `role`."""
    kw = db.conninfo
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\ntargets:\n  src: {{url: 'postgresql://{role}:{password}@{kw['host']}:{kw['port']}/{db.name}'}}\n"
        "backups: {dir: backups}\n")
    return load_project(tmp_path / "civicq-ops.yaml", env={})


def test_counts_are_those_of_the_imported_snapshot_not_of_later_commits(exported):
    snapshot, db = exported
    with db.connect() as conn:
        conn.execute("INSERT INTO a VALUES (4), (5)")
    with counter_of(db, snapshot, ("a", "b")) as counter:
        counted = counter.result()
    assert [(t["name"], t["rows"]) for t in counted] == [("a", 3), ("b", 2)]


def test_a_failed_count_is_reported_and_leaves_the_snapshot_importable(exported):
    snapshot, db = exported
    with login_role(db, "nosel", "GRANT SELECT ON a TO {role}") as (role, password):  # not b
        with counter_of(db, snapshot, ("a", "b"), user=role, password=password) as counter:
            with pytest.raises(CountError, match="permission denied for table b"):
                counter.result()
        with db.connect(autocommit=True) as later:  # what pg_dump's parallel workers do after the count failed
            later.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            later.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            assert later.execute("SELECT count(*) FROM b").fetchone()[0] == 2
            later.execute("ROLLBACK")


def test_stop_cancels_a_count_that_waits_on_a_lock(exported):
    snapshot, db = exported
    with db.connect(autocommit=False) as locker:
        locker.execute("LOCK TABLE b IN ACCESS EXCLUSIVE MODE")
        counter = counter_of(db, snapshot, ("a", "b"))
        with counter:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _waits_on_lock(db):
                time.sleep(0.05)
            assert _waits_on_lock(db), "the count never reached the locked table"
            t0 = time.monotonic()
        assert time.monotonic() - t0 < 5
        assert not any(t.name == "civicq-ops row counts" for t in threading.enumerate())
        assert not _waits_on_lock(db)
        locker.rollback()


def _waits_on_lock(db) -> bool:
    with db.connect() as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                 "AND query LIKE 'SELECT count(*) FROM %%'").fetchone()[0])


def test_backup_by_a_role_that_cannot_read_a_table_names_it_and_keeps_nothing(tmp_path, civicq_db):
    with login_role(civicq_db, "reader", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
                    "REVOKE SELECT ON votes FROM {role}") as (role, password):
        project = project_as(tmp_path, civicq_db, role, password)
        with pytest.raises(ExecutionError, match="permission denied for table votes") as failed:
            create_backup(project, project.target("src"), BackupOptions(format="custom"))
        assert "snapshot" not in str(failed.value)
        assert list(backups_dir(project).iterdir()) == []


def test_a_role_whose_connection_limit_pg_dump_fills_still_gets_counts_and_globals(tmp_path, civicq_db):
    with login_role(civicq_db, "limited", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
                    "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
                    options="CONNECTION LIMIT 2") as (role, password):
        project = project_as(tmp_path, civicq_db, role, password)
        # the snapshot's session and pg_dump take both slots: the counts and pg_dumpall come after
        m = create_backup(project, project.target("src"), BackupOptions(format="custom"))
        with civicq_db.connect() as conn:
            votes = conn.execute("SELECT count(*) FROM votes").fetchone()[0]
        assert {t["name"]: t["rows"] for t in m.tables}["votes"] == votes
        assert m.globals_file == "globals.sql"
        assert f"CREATE ROLE {role}" in (backups_dir(project) / m.id / "globals.sql").read_text()


def test_a_counting_session_that_cannot_connect_leaves_the_counts_to_the_caller(exported):
    snapshot, db = exported
    with login_role(db, "full", options="CONNECTION LIMIT 0") as (role, password):
        with counter_of(db, snapshot, ("a", "b"), user=role, password=password) as counter:
            assert counter.result() is None
        with counter_of(db, snapshot, ("a", "b"), user=role, password=password) as counter:  # after pg_dump
            with pytest.raises(CountError, match="too many connections for role"):
                counter.result(must_connect=True)


def test_names_of_any_spelling_are_counted(db):
    odd = ['we"ird', "Mixed Case", "sp ace;drop"]
    with db.connect() as conn:
        for name in odd:
            conn.execute(psycopg.sql.SQL("CREATE TABLE {} (id int)").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("INSERT INTO {} VALUES (1), (2)").format(psycopg.sql.Identifier(odd[1])))
    with db.connect(autocommit=True) as exporter:
        exporter.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = exporter.execute("SELECT pg_export_snapshot()").fetchone()[0]
        with counter_of(db, snapshot, tuple(odd)) as counter:
            assert [t["rows"] for t in counter.result()] == [0, 2, 0]


@pytest.fixture
def latin1_db(pg_cluster):
    """A LATIN1 database holding a table and a schema whose names are not ASCII."""
    from tests.fixtures.pg import Database, _drop

    name = f"latin1_{pg_cluster.major}_{time.monotonic_ns()}"
    with pg_cluster.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    database = Database(pg_cluster, name)
    with database.connect() as conn:
        conn.execute('CREATE SCHEMA "résumé"')
        conn.execute('CREATE TABLE "résumé"."café" (id int); INSERT INTO "résumé"."café" VALUES (1), (2), (3)')
    yield database
    _drop(database)


def test_a_latin1_database_with_names_beyond_ascii_is_backed_up_with_its_counts(latin1_db, tmp_path):
    """psql sends names in the client encoding: the sessions ask for UTF-8 (a LATIN1 byte is not
    UTF-8), while pg_dump keeps the database's own encoding."""
    kw = latin1_db.conninfo
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\ntargets:\n  src: {{url: 'postgresql://{kw['user']}:{kw['password']}@{kw['host']}:{kw['port']}"
        f"/{latin1_db.name}'}}\nbackups: {{dir: backups}}\n")
    project = load_project(tmp_path / "civicq-ops.yaml", env={})
    manifest = create_backup(project, project.target("src"), BackupOptions(format="custom"))
    assert [(t["schema"], t["name"], t["rows"]) for t in manifest.tables] == [("résumé", "café", 3)]
