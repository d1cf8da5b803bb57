"""Independent jobs run over several sessions at once, as pg_restore -j runs its restore steps.

Each session takes the next job when it is free, so putting the longest jobs first keeps the
sessions evenly busy. The first failure, or a Ctrl-C in the waiting thread, cancels what the other
sessions are running and waits for them to stop before it is raised: no session is left working
(or holding its locks) for a caller that has given up, and the caller sees one error, not the
cancellations it caused. The caller owns the sessions and closes them.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack

import psycopg
from psycopg import sql

from civicq_ops.core.errors import ExecutionError, QueryFailed, first_line

Job = Callable[[psycopg.Connection], object]

# How long the waiting thread waits for a cancelled session to stop before raising anyway.
STOP_TIMEOUT_S = 30.0


def run_over_sessions(sessions: Sequence[psycopg.Connection], jobs: Iterable[Job],
                      stopping: threading.Event | None = None) -> None:
    """Run every job of `jobs` on one of `sessions` (each a connection no other thread uses); return
    when all have run, or raise the first failure once every session has stopped. `stopping` (the
    caller's, so a job waiting on something other than a query can see it) is set on the way out
    of a failure or a Ctrl-C."""
    pending: queue.SimpleQueue[Job] = queue.SimpleQueue()
    for job in jobs:
        pending.put(job)
    stopping = stopping or threading.Event()
    failures: list[BaseException] = []

    def cancel(but: psycopg.Connection | None = None) -> None:
        for session in sessions:
            if session is not but:
                with contextlib.suppress(psycopg.Error):  # a closed or broken session runs nothing
                    session.cancel_safe(timeout=STOP_TIMEOUT_S)

    def work(session: psycopg.Connection) -> None:
        try:
            while not stopping.is_set():
                try:
                    job = pending.get_nowait()
                except queue.Empty:
                    return
                job(session)
        except BaseException as e:  # noqa: BLE001 - the first one is raised by the waiting thread
            failures.append(e)  # the first comes first: those after it are the cancellations it causes
            stopping.set()
            cancel(but=session)

    threads = [threading.Thread(target=work, args=(s,), name=f"session-job-{i}", daemon=True)
               for i, s in enumerate(sessions)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:  # a KeyboardInterrupt while waiting: stop the sessions before leaving
        stopping.set()
        cancel()
        for thread in threads:
            if thread.ident is not None:
                thread.join(STOP_TIMEOUT_S)
        raise
    if failures:
        raise failures[0]


def run_with_more_sessions(conn: psycopg.Connection, open_session: Callable[[], psycopg.Connection], more: int,
                           jobs: Iterable[Job], stopping: threading.Event | None = None) -> None:
    """run_over_sessions() on `conn` and up to `more` sessions from `open_session`, which it closes
    after; fewer when opening one raises ExecutionError (no connection slot left: slower, not wrong)."""
    with ExitStack() as stack:
        sessions = [conn]
        with contextlib.suppress(ExecutionError):
            for _ in range(more):
                sessions.append(stack.enter_context(open_session()))
        run_over_sessions(sessions, jobs, stopping)


def analyze_job(relations: Sequence[tuple[str, ...]]) -> Job:
    """ANALYZE `relations` (each its identifier's parts: (schema, name) or (name,)) and commit;
    a failure is one QueryFailed naming them, the session left outside a transaction."""
    def job(session: psycopg.Connection) -> None:
        try:
            session.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(sql.Identifier(*r) for r in relations)))
            session.commit()
        except psycopg.Error as e:
            with contextlib.suppress(psycopg.Error):
                session.rollback()
            names = ", ".join(".".join(r) for r in relations)
            raise QueryFailed(f"gathering the statistics of {names} failed: {first_line(e)}") from e
    return job
