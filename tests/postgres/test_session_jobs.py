"""Jobs over several sessions (postgres.session_jobs): they run at once, the first failure stops the
other sessions and is the one error raised, and a Ctrl-C while waiting leaves no session running."""

from __future__ import annotations

import signal
import threading
import time

import psycopg
import pytest

from civicq_ops.postgres import session_jobs
from civicq_ops.postgres.session_jobs import run_over_sessions

SLEEP = "SELECT pg_sleep(20)"


@pytest.fixture
def sessions(db):
    conns = [db.connect() for _ in range(2)]
    yield conns
    for conn in conns:
        conn.close()


def _running(db, sql_text: str) -> int:
    with db.connect() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query = %s AND state = 'active'",
                            (sql_text,)).fetchone()[0]


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_jobs_run_on_every_session_at_once(sessions):
    together = threading.Barrier(2, timeout=10)  # broken unless two jobs run at the same time
    pids = []

    def job(conn):
        pids.append(conn.info.backend_pid)
        together.wait()
        conn.execute("SELECT 1")

    run_over_sessions(sessions, [job, job, job, job])
    assert set(pids) == {conn.info.backend_pid for conn in sessions} and len(pids) == 4


def test_the_first_failure_cancels_the_other_session_and_is_the_one_error_raised(db, sessions):
    def sleeper(conn):
        conn.execute(SLEEP)

    def failing(conn):
        _wait_until(lambda: _running(db, SLEEP) == 1)
        conn.execute("SELECT 1 / 0")

    started = time.monotonic()
    with pytest.raises(psycopg.errors.DivisionByZero):  # not the QueryCanceled it caused
        run_over_sessions(sessions, [sleeper, failing])
    assert time.monotonic() - started < 10 and _running(db, SLEEP) == 0


def test_ctrl_c_while_waiting_cancels_every_session(db, sessions, monkeypatch):
    monkeypatch.setattr(session_jobs, "STOP_TIMEOUT_S", 5.0)
    main = threading.main_thread().ident
    assert main is not None

    def interrupt():
        _wait_until(lambda: _running(db, SLEEP) == 2)
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_over_sessions(sessions, [lambda conn: conn.execute(SLEEP)] * 2)
    assert time.monotonic() - started < 10 and _running(db, SLEEP) == 0
