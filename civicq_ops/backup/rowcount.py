"""Exact row counts in pg_dump's snapshot, taken on a connection of their own while pg_dump runs.

The counting session imports the snapshot that `backup create` exported for pg_dump
(SET TRANSACTION SNAPSHOT), so its counts are exactly what the dump holds. It never shares the
exporting session: an error while counting (a table the role may not read, a lock timeout) ends
only the counting transaction, so pg_dump keeps its snapshot, and pg_dump's own error (which names
the table) is the one reported. Leaving the block early (Ctrl-C, pg_dump failed) cancels the
running count and closes its connection, even when a count waits on a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

CANCEL_GRACE_S = 10.0


class SnapshotRowCounter:
    """`with SnapshotRowCounter(connect, snapshot, tables) as counter: ... counter.result()`.

    `connect()` opens an autocommit connection to the same database; `tables` are dicts with
    `schema` and `name`, each of which gets `rows`, or a function that reads them in the snapshot.
    `about(conn)`, read first in the same session, is kept as `.about` (what `backup create` records
    of the server); `count=False` reads and counts nothing more."""

    def __init__(self, connect: Callable[[], Any], snapshot: str, tables: list[dict] | Callable[[Any], list[dict]],
                 lock_timeout_ms: int | None = None, *, count: bool = True,
                 about: Callable[[Any], Any] | None = None) -> None:
        self._connect = connect
        self._snapshot = snapshot
        self._tables = tables
        self._lock_timeout_ms = lock_timeout_ms
        self._counting = count
        self._about = about
        self.about: Any = None
        self._conn: Any = None
        self._stopped = False
        self._error: BaseException | None = None
        self._connected = False
        self._thread = threading.Thread(target=self._count, name="civicq-ops row counts", daemon=True)

    def __enter__(self) -> SnapshotRowCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def result(self, must_connect: bool = False) -> list[dict] | None:
        """The tables with their counts, once counted; the counting session's error if it failed; None
        if it could not connect (e.g. the role's or the server's connection limit, reached with
        pg_dump's own sessions): the caller then counts after pg_dump, on a new session. With
        `must_connect`, not connecting is an error too."""
        while self._thread.is_alive():
            self._thread.join(0.2)  # in short waits: Ctrl-C is seen at once
        if self._error is not None:
            if not self._connected and not must_connect:
                return None
            raise self._error
        assert not callable(self._tables)
        return self._tables

    def stop(self) -> None:
        """Cancel what is still running and wait for the session to close (bounded)."""
        self._stopped = True
        deadline = time.monotonic() + CANCEL_GRACE_S
        while self._thread.is_alive() and time.monotonic() < deadline:
            conn = self._conn
            if conn is not None:  # again on each turn: a count may start just after a cancel
                try:
                    conn.cancel_safe(timeout=2.0)
                except Exception:  # noqa: S110 - the session may be closing; the join below is what counts
                    pass
            self._thread.join(0.1)

    def _count(self) -> None:
        from psycopg import sql

        from civicq_ops.postgres.connect import one_row

        try:
            with self._connect() as conn:
                self._conn, self._connected = conn, True
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self._snapshot)))
                if self._lock_timeout_ms:
                    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(self._lock_timeout_ms)))
                if self._about is not None:
                    self.about = self._about(conn)
                if callable(self._tables):
                    self._tables = self._tables(conn)
                for entry in self._tables if self._counting else ():
                    if self._stopped:
                        return
                    query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(entry["schema"]),
                                                                         sql.Identifier(entry["name"]))
                    entry["rows"] = one_row(conn.execute(query))[0]
                conn.execute("ROLLBACK")
        except BaseException as e:  # handed to result(); a thread has nobody else to tell
            self._error = e
        finally:
            self._conn = None
