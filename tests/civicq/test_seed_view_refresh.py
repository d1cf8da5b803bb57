"""After a first scaled load the materialized views are refreshed over two sessions once the load is
committed (civicq.view_refresh, issue 14): each view holds what its query returns, is logged and
analyzed; a failing refresh is one error that leaves the load with its indexes and keys; neither a
failure nor a Ctrl-C leaves a session of the seed behind."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from civicq_ops.civicq.seeding import seed
from civicq_ops.core.errors import QueryFailed
from tests.civicq.test_seed_deferred_indexes import _schema

VIEWS = "SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' ORDER BY 1"
# Rows in the view but not in its query's result, and the reverse.
DIFFERENCE = "SELECT count(*) FROM ((TABLE {v} EXCEPT ALL ({q})) UNION ALL (({q}) EXCEPT ALL TABLE {v})) d"
SEED_SESSIONS = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                 "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


def _no_session_left(database, timeout: float = 10.0) -> bool:
    """True once only our own session is on the database (a closed session's backend exits shortly after)."""
    deadline = time.monotonic() + timeout
    with database.connect() as conn:
        while conn.execute(SEED_SESSIONS).fetchall():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return True


def _log_after(conn, last_id: int) -> list[tuple]:
    return conn.execute("SELECT view_name, was_concurrent FROM matview_refresh_log WHERE id > %s ORDER BY id",
                        (last_id,)).fetchall()


def test_a_scaled_seed_refreshes_logs_and_analyzes_every_view(civicq_db):
    with civicq_db.connect() as conn:
        last, started = conn.execute("SELECT max(id), now() FROM matview_refresh_log").fetchone()
    seed(*civicq_db.project(), scale=1)
    with civicq_db.connect() as conn:
        views = [v for (v,) in conn.execute(VIEWS)]
        for view in views:
            query = conn.execute("SELECT pg_get_viewdef(%s::regclass)", (view,)).fetchone()[0].rstrip().rstrip(";")
            assert conn.execute(f"SELECT count(*) FROM {view}").fetchone()[0] > 0, view
            assert conn.execute(DIFFERENCE.format(v=view, q=query)).fetchone()[0] == 0, view
        analyzed = [v for (v,) in conn.execute("SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
                                               "AND last_analyze > %s ORDER BY 1", (views, started))]
        logged = _log_after(conn, last)
    assert len(views) == 4 and analyzed == views and sorted(logged) == [(v, False) for v in views]


def test_a_failing_view_refresh_is_one_error_that_leaves_the_load_complete(civicq_db):
    with civicq_db.connect() as conn:
        conn.execute("CREATE MATERIALIZED VIEW zz_broken AS SELECT 1 / (count(*) - count(*)) AS x FROM cities "
                     "WITH NO DATA")
        votes = conn.execute("SELECT count(*) FROM votes").fetchone()[0]
    before = _schema(civicq_db)
    with pytest.raises(QueryFailed) as failed:
        seed(*civicq_db.project(), scale=1)
    message = failed.value.message
    assert "\n" not in message and "zz_broken" in message and "division by zero" in message, message
    assert "loaded its data" in message and "db seed" in message
    assert _schema(civicq_db) == before  # every index and constraint back after the load
    with civicq_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM votes").fetchone()[0] == votes + 10_000
    assert _no_session_left(civicq_db)


def test_views_that_read_other_views_are_refreshed_one_by_one_in_name_order(civicq_db):
    with civicq_db.connect() as conn:
        conn.execute("CREATE MATERIALIZED VIEW zz_base AS SELECT count(*) AS n FROM votes")
        conn.execute("CREATE MATERIALIZED VIEW zz_copy AS SELECT n FROM zz_base")
        last = conn.execute("SELECT max(id) FROM matview_refresh_log").fetchone()[0]
    seed(*civicq_db.project(), scale=1)
    with civicq_db.connect() as conn:
        counts = conn.execute("SELECT (SELECT count(*) FROM votes), (SELECT n FROM zz_base), (SELECT n FROM zz_copy)"
                              ).fetchone()
        order = [name for name, _ in _log_after(conn, last)]
        views = [v for (v,) in conn.execute(VIEWS)]
    assert order == views and counts[0] == counts[1] == counts[2]


def test_ctrl_c_during_the_view_refresh_leaves_no_session_behind(civicq_db):
    with civicq_db.connect() as conn:
        conn.execute("CREATE MATERIALIZED VIEW zz_slow AS SELECT 1 AS x FROM pg_sleep(30) WITH NO DATA")
    main = threading.main_thread().ident
    assert main is not None

    def interrupt_when_refreshing():
        deadline = time.monotonic() + 60
        with civicq_db.connect() as conn:
            while not conn.execute("SELECT 1 FROM pg_stat_activity WHERE state = 'active' "
                                   "AND query LIKE 'REFRESH MATERIALIZED VIEW %%zz_slow%%'").fetchone():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt_when_refreshing, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        seed(*civicq_db.project(), scale=1)
    assert time.monotonic() - started < 25 and _no_session_left(civicq_db)


def test_a_scaled_seed_analyzes_the_development_tables_it_wrote_and_no_other(civicq_db):
    with civicq_db.connect() as conn:
        conn.execute("DELETE FROM follows")  # the development set puts them back
        started = conn.execute("SELECT now()").fetchone()[0]
    seed(*civicq_db.project(), scale=1)
    with civicq_db.connect() as conn:
        fresh = {t for (t,) in conn.execute("SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
                                            "AND last_analyze > %s", (["follows", "topics", "votes"], started))}
    assert fresh == {"follows", "votes"}  # topics: not written, its statistics are as good as before
