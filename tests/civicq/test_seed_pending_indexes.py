"""The plain indexes of a first scaled load are built after its commit, listed meanwhile in
civicq_ops_pending_indexes (civicq.pending_indexes, issue 14): the table goes once they are built;
a failed or interrupted build leaves the load committed and the index listed, and the next seed
builds it; a build is claimed once; a table another role may write to is refused; and a view is
refreshed only once the indexes of the tables it reads are built.

The index builds are held or failed on purpose through an index on votes over zz_gate(), which
raises while the database setting civicq_test.fail is on and otherwise waits for the advisory lock
GATE_KEY that a test may hold from another session. Neither is evaluated inside the load's
transaction: the load drops the index, and its build is the after-commit one."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from civicq_ops.civicq import pending_indexes, view_refresh
from civicq_ops.civicq.deferred_indexes import PlainIndex
from civicq_ops.civicq.seeding import seed
from civicq_ops.core.errors import QueryFailed
from tests.civicq.test_seed_deferred_indexes import _schema
from tests.civicq.test_seed_view_refresh import _no_session_left

TABLE = pending_indexes.TABLE
GATE_KEY = 4242
GATED = "zz_votes_gate_idx"
GATE = f"""
CREATE FUNCTION zz_gate(bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF current_setting('civicq_test.fail', true) = 'on' THEN
        RAISE EXCEPTION 'zz_gate refuses, as the test asked';
    END IF;
    PERFORM pg_advisory_xact_lock_shared({GATE_KEY});
    RETURN $1;
END $$
"""
# A partial index, not one on an expression: the statistics of those are gathered by a job that
# waits for their builds too (pending_indexes.Builds.jobs), which would hide whether a view waits.
GATED_DEFINITION = f"CREATE INDEX {GATED} ON public.votes USING btree (id) WHERE (zz_gate(id) IS NOT NULL)"
# The build of the gated index, waiting at the gate.
GATE_WAIT = ("SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
             "WHERE a.datname = current_database() AND NOT l.granted AND l.locktype = 'advisory' "
             f"AND l.objid = {GATE_KEY} AND a.query LIKE 'CREATE INDEX {GATED} %%'")


def _table_exists(database) -> bool:
    with database.connect() as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()[0]


def _listed(database) -> list[str]:
    with database.connect() as conn:
        return [name for (name,) in conn.execute(sql.SQL("SELECT index_name FROM {} ORDER BY 1").format(
            sql.Identifier(TABLE)))]


def _index_names(database) -> set[str]:
    return {name.split(".", 1)[1] for kind, name, _ in _schema(database) if kind == "index"}


def _missing(before: list[tuple], database) -> set[str]:
    """The indexes of `before` (a _schema()) that the database lacks now."""
    return {name.split(".", 1)[1] for kind, name, _ in before if kind == "index"} - _index_names(database)


def _gated_index(database) -> None:
    with database.connect() as conn:
        conn.execute(GATE)
        conn.execute(GATED_DEFINITION)


def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _seen(database, query: str, params=()) -> Callable[[], bool]:
    def check() -> bool:
        with database.connect() as conn:
            return conn.execute(query, params).fetchone() is not None
    return check


def test_a_scaled_seed_drops_the_pending_index_table_and_leaves_the_migrated_schema(civicq_db):
    before = _schema(civicq_db)
    assert seed(*civicq_db.project(), scale=1).rows["votes"] == 10_000
    assert not _table_exists(civicq_db)
    assert _schema(civicq_db) == before


def test_an_index_build_failing_after_the_commit_is_listed_and_built_by_the_next_seed(civicq_db):
    _gated_index(civicq_db)
    before = _schema(civicq_db)
    with civicq_db.connect() as conn:
        votes = conn.execute("SELECT count(*) FROM votes").fetchone()[0]
        conn.execute(sql.SQL("ALTER DATABASE {} SET civicq_test.fail = 'on'").format(sql.Identifier(civicq_db.name)))
    project, target = civicq_db.project()
    with pytest.raises(QueryFailed) as failed:
        seed(project, target, scale=1)
    message = failed.value.message
    assert "\n" not in message and f"building index public.{GATED} failed" in message, message
    assert "zz_gate refuses" in message and "loaded its data" in message, message  # the after-commit build
    assert f"the indexes still listed in {TABLE} are not built yet" in message, message
    assert "`civicq-ops db seed` again builds them" in message, message
    with civicq_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM votes").fetchone()[0] == votes + 10_000
    listed = _listed(civicq_db)
    # Listed: the failed build and any the failure cancelled or left unstarted, i.e. exactly those not built.
    assert GATED in listed and set(listed) == _missing(before, civicq_db), listed

    with civicq_db.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET civicq_test.fail").format(sql.Identifier(civicq_db.name)))
    result = seed(project, target)
    assert "indexes left by an earlier seed" in result.phases
    assert not _table_exists(civicq_db) and _schema(civicq_db) == before


def test_ctrl_c_during_an_index_build_after_the_commit_leaves_it_listed_for_the_next_seed(civicq_db):
    _gated_index(civicq_db)
    before = _schema(civicq_db)
    main = threading.main_thread().ident
    assert main is not None
    interrupted = threading.Event()

    def interrupt_when_building() -> None:
        with civicq_db.connect() as conn:
            deadline = time.monotonic() + 60
            while not conn.execute(GATE_WAIT).fetchone():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
        interrupted.set()
        signal.pthread_kill(main, signal.SIGINT)
        # A seed that does not stop its builds would wait at the gate for ever: open it after a while,
        # so that such a seed fails the test (its build ends and takes its row) instead of hanging it.
        if not returned.wait(15):
            with civicq_db.connect() as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (holder_pid,))

    with civicq_db.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        holder_pid = holder.info.backend_pid
        returned = threading.Event()
        threading.Thread(target=interrupt_when_building, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            try:
                seed(*civicq_db.project(), scale=1)
            finally:
                returned.set()
        assert interrupted.is_set() and time.monotonic() - started < 10
    # The gate is open again: a build left running would now finish (and take its row).
    assert _no_session_left(civicq_db)
    listed = _listed(civicq_db)
    assert GATED in listed and set(listed) == _missing(before, civicq_db), listed

    result = seed(*civicq_db.project())
    assert "indexes left by an earlier seed" in result.phases
    assert not _table_exists(civicq_db) and _schema(civicq_db) == before


def test_a_session_lost_during_an_index_build_after_the_commit_leaves_it_listed_for_the_next_seed(civicq_db):
    _gated_index(civicq_db)
    before = _schema(civicq_db)

    def terminate_the_build() -> None:
        with civicq_db.connect() as conn:
            _until(lambda: conn.execute(GATE_WAIT).fetchone() is not None, "the gated build")
            conn.execute("SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a "
                         "WHERE a.datname = current_database() AND a.query LIKE %s", (f"CREATE INDEX {GATED} %",))

    with civicq_db.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        killer = threading.Thread(target=terminate_the_build, daemon=True)
        killer.start()
        with pytest.raises(QueryFailed) as failed:
            seed(*civicq_db.project(), scale=1)
        killer.join(5)
    message = failed.value.message
    assert "\n" not in message and "loaded its data" in message and GATED in message, message
    assert f"the indexes still listed in {TABLE} are not built yet" in message, message
    assert _no_session_left(civicq_db)
    listed = _listed(civicq_db)
    assert GATED in listed and set(listed) == _missing(before, civicq_db), listed

    seed(*civicq_db.project())
    assert not _table_exists(civicq_db) and _schema(civicq_db) == before


def test_two_claimants_of_a_pending_index_build_it_once_and_neither_fails(civicq_db):
    with civicq_db.connect() as conn:
        conn.execute(GATE)
    with civicq_db.connect(autocommit=False) as conn:
        pending_indexes.record(conn, [PlainIndex("public", GATED, "votes", GATED_DEFINITION, False)])
        conn.commit()
        (index,) = pending_indexes.pending(conn)
    errors: list[BaseException] = []

    def claim(session: psycopg.Connection) -> None:
        try:
            pending_indexes.build_job(index)(session)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    with (civicq_db.connect() as holder, civicq_db.connect(autocommit=False) as first,
          civicq_db.connect(autocommit=False) as second):
        holder.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        threads = [threading.Thread(target=claim, args=(first,), daemon=True)]
        threads[0].start()
        # The first has claimed the row and builds, held at the gate; the second then claims the same row.
        _until(_seen(civicq_db, GATE_WAIT), "the first claimant to build")
        threads.append(threading.Thread(target=claim, args=(second,), daemon=True))
        threads[1].start()
        pid = second.info.backend_pid
        _until(_seen(civicq_db, "SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)),
               "the second claimant to wait")
        holder.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    with civicq_db.connect() as conn:
        built = conn.execute("SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass(%s) AND indisvalid",
                             (GATED,)).fetchone()[0]
    assert built == 1 and _listed(civicq_db) == []


@pytest.fixture
def other_role(civicq_db) -> Iterator[str]:
    role = f"{civicq_db.name}_other"
    with civicq_db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with civicq_db.connect() as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


PLANTED = PlainIndex("public", "zz_should_not_exist", "votes",
                     "CREATE INDEX zz_should_not_exist ON public.votes USING btree (value)", False)


def _planted_table(database) -> None:
    with database.connect(autocommit=False) as conn:
        pending_indexes.record(conn, [PLANTED])
        conn.commit()


@pytest.mark.parametrize("untrusted", [
    pytest.param("GRANT INSERT ON {table} TO {role}", id="writable-by-another-role"),
    pytest.param("ALTER TABLE {table} OWNER TO {role}", id="owned-by-another-role"),
    pytest.param("GRANT TRIGGER ON {table} TO {role}", id="triggers-of-another-role"),
    pytest.param("GRANT DELETE ON {table} TO PUBLIC", id="deletable-by-public"),
    # Column privileges are in pg_attribute.attacl, not in pg_class.relacl: the check reads both.
    pytest.param("GRANT UPDATE (definition) ON {table} TO {role}", id="column-writable-by-another-role"),
])
def test_a_pending_index_table_another_role_may_write_is_refused_and_nothing_in_it_runs(civicq_db, other_role,
                                                                                          untrusted):
    _planted_table(civicq_db)
    with civicq_db.connect() as conn:
        conn.execute(sql.SQL(untrusted).format(table=sql.Identifier(TABLE), role=sql.Identifier(other_role)))
    with pytest.raises(QueryFailed) as refused:
        seed(*civicq_db.project())
    message = refused.value.message
    assert "\n" not in message and f": refusing to build the indexes listed in public.{TABLE}" in message, message
    assert "zz_should_not_exist" not in _index_names(civicq_db) and _listed(civicq_db) == ["zz_should_not_exist"]


def test_a_listed_definition_that_is_not_a_create_index_of_that_index_is_refused_and_not_run(civicq_db):
    with civicq_db.connect(autocommit=False) as conn:
        pending_indexes.record(conn, [PlainIndex("public", "zz_should_not_exist", "votes",
                                                 "CREATE TABLE zz_planted (x int)", False)])
        conn.commit()
    with pytest.raises(QueryFailed) as refused:
        seed(*civicq_db.project())
    message = refused.value.message
    assert "\n" not in message and "refusing to run the definition listed for index public.zz_should_not_exist" \
        in message, message
    with civicq_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('zz_planted')").fetchone()[0] is None
    assert _listed(civicq_db) == ["zz_should_not_exist"]  # refused in its own transaction: still listed


def test_db_migrate_refuses_an_untrusted_list_with_one_line_and_migrates_nothing(civicq_db, other_role):
    from civicq_ops.civicq.migrations import migrate

    _planted_table(civicq_db)
    with civicq_db.connect() as conn:
        conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(sql.Identifier(TABLE), sql.Identifier(other_role)))
    with pytest.raises(QueryFailed) as refused:
        migrate(*civicq_db.project())
    message = refused.value.message
    assert "\n" not in message and message.startswith("migrating target 'env': refusing to build the indexes")
    assert "DROP TABLE public.civicq_ops_pending_indexes" in message and "nothing was migrated" in message


def test_a_scaled_seed_builds_its_indexes_where_default_privileges_grant_tables_to_another_role(civicq_db,
                                                                                                other_role):
    with civicq_db.connect() as conn:
        conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE "
                             "ON TABLES TO {}").format(sql.Identifier(other_role)))  # an app role, as is common
    before = _schema(civicq_db)
    seed(*civicq_db.project(), scale=1)
    assert not _table_exists(civicq_db) and _schema(civicq_db) == before


def test_a_view_is_refreshed_only_once_the_indexes_of_the_tables_it_reads_are_built(civicq_db, monkeypatch):
    # zz_saw records, when refreshed, how many indexes votes had then (what its refresh could use).
    _gated_index(civicq_db)
    with civicq_db.connect() as conn:
        conn.execute("CREATE MATERIALIZED VIEW zz_saw AS SELECT count(*) AS votes, "
                     "(SELECT count(*) FROM pg_index WHERE indrelid = 'votes'::regclass) AS indexes FROM votes "
                     "WITH NO DATA")
        votes_oid = conn.execute("SELECT 'votes'::regclass::oid").fetchone()[0]
    waiting = threading.Event()
    wait = pending_indexes.Builds.wait

    def watched_wait(self, tables):
        tables = set(tables)
        if votes_oid in tables and sys._getframe(1).f_globals["__name__"] == view_refresh.__name__:
            waiting.set()  # a view refresh waits for the builds on votes
        return wait(self, tables)

    monkeypatch.setattr(pending_indexes.Builds, "wait", watched_wait)
    populated = _seen(civicq_db, "SELECT 1 FROM pg_matviews WHERE matviewname = 'zz_saw' AND ispopulated")
    held = _seen(civicq_db, GATE_WAIT)
    opened = threading.Event()

    def open_gate_once_the_view_waits(holder: psycopg.Connection) -> None:
        # Held until the build of the gated index waits at the gate and a view reading votes either
        # waits for it, or was refreshed without waiting.
        try:
            _until(lambda: held() and (waiting.is_set() or populated()), "the view refresh to wait or run", 60)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
            opened.set()

    with civicq_db.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        gate = threading.Thread(target=open_gate_once_the_view_waits, args=(holder,), daemon=True)
        gate.start()
        seed(*civicq_db.project(), scale=1)
        gate.join(30)
    assert opened.is_set()
    with civicq_db.connect() as conn:
        saw = conn.execute("SELECT votes, indexes FROM zz_saw").fetchone()
        now = conn.execute("SELECT (SELECT count(*) FROM votes), "
                           "(SELECT count(*) FROM pg_index WHERE indrelid = 'votes'::regclass)").fetchone()
    assert saw == now
