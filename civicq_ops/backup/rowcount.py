"""Exact row counts in pg_dump's snapshot, taken by a psql session of their own while pg_dump runs.

The counting session imports the snapshot that `backup create` exported for pg_dump
(SET TRANSACTION SNAPSHOT), so its counts are exactly what the dump holds. It never shares the
exporting session: an error while counting (a table the role may not read, a lock timeout) ends
only the counting session, so pg_dump keeps its snapshot, and pg_dump's own error (which names
the table) is the one reported. Leaving the block early (Ctrl-C, pg_dump failed) cancels the
running count (SIGINT: psql sends the server a cancel request) and ends the session, even when a
count waits on a lock.

psql rather than psycopg: `backup create` then never imports psycopg (~85 ms of CPU at start-up,
as much as a tenth of a small dump).
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

from civicq_ops.backup.tools import psql_env, psql_error, psql_ident, start_tool
from civicq_ops.core.errors import ExecutionError
from civicq_ops.core.redaction import redact

CANCEL_GRACE_S = 10.0
_PSQL_CONNECTION_BAD = 2  # psql's exit status when it has no connection (or lost it)


class CountError(ExecutionError):
    """A count failed: the server's message (`permission denied for table b`, a lock timeout)."""


class SnapshotRowCounter:
    """`with SnapshotRowCounter(psql, env, snapshot, tables) as counter: ... counter.result()`.

    `env` is the libpq environment of the target (tools.client_env); `tables` are dicts with
    `schema` and `name`, each of which gets `rows`."""

    def __init__(self, psql: Path, env: dict[str, str], snapshot: str, tables: list[dict],
                 lock_timeout_ms: int | None = None) -> None:
        if not all(c in "0123456789ABCDEFabcdef-" for c in snapshot):
            raise ValueError(f"not a snapshot identifier: {snapshot!r}")
        self._psql = psql
        self._env = psql_env(env)
        self._snapshot = snapshot
        self._tables = tables
        self._lock_timeout_ms = lock_timeout_ms
        self._proc: subprocess.Popen | None = None
        self._out = b""
        self._err = b""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._count, name="civicq-ops row counts", daemon=True)

    def __enter__(self) -> SnapshotRowCounter:
        args = [str(self._psql), "--no-psqlrc", "--quiet", "--no-align", "--tuples-only", "--record-separator-zero",
                "--set=ON_ERROR_STOP=1", "--no-password"]
        self._proc = start_tool(args, self._env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def result(self, must_connect: bool = False) -> list[dict] | None:
        """The tables with their counts, once counted; the count's error (CountError) if one failed;
        None if psql could not connect (e.g. the role's or the server's connection limit, reached
        with pg_dump's own sessions): the caller then counts after pg_dump, on a new session. With
        `must_connect`, not connecting is an error too."""
        while self._thread.is_alive():
            self._thread.join(0.2)  # in short waits: Ctrl-C is seen at once
        if self._error is not None:
            raise self._error
        proc = self._proc
        assert proc is not None
        counts = self._out.split(b"\0")[:-1]
        if proc.returncode == 0 and len(counts) == len(self._tables):
            for entry, count in zip(self._tables, counts, strict=True):
                entry["rows"] = int(count)
            return self._tables
        message = psql_error(self._err.decode(errors="replace")) or f"psql exited with {proc.returncode}"
        if proc.returncode == _PSQL_CONNECTION_BAD and not counts and not must_connect:
            return None
        raise CountError(f"row counts in the backup's snapshot failed: {redact(message)}")

    def stop(self) -> None:
        """Cancel what is still running and wait for the session to end (bounded)."""
        proc = self._proc
        if proc is None or not self._thread.is_alive():
            self._thread.join()
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # psql cancels the running query, then stops (ON_ERROR_STOP)
        self._thread.join(CANCEL_GRACE_S)
        if self._thread.is_alive():
            proc.kill()
            self._thread.join()

    def _script(self) -> bytes:
        # No parallel workers: a count runs beside pg_dump (and the application), and on a 1M-row table
        # three processes finish it no sooner than one (17 ms either way at --scale 100).
        lines = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;",
                 f"SET TRANSACTION SNAPSHOT '{self._snapshot}';",
                 "SET LOCAL max_parallel_workers_per_gather = 0;"]
        if self._lock_timeout_ms:
            lines.append(f"SET LOCAL lock_timeout = {int(self._lock_timeout_ms)};")
        lines += [f"SELECT count(*) FROM {psql_ident(t['schema'])}.{psql_ident(t['name'])};" for t in self._tables]
        lines.append("ROLLBACK;")
        return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")

    def _count(self) -> None:
        proc = self._proc
        assert proc is not None
        try:
            self._out, self._err = proc.communicate(self._script())
        except BaseException as e:  # handed to result(); a thread has nobody else to tell
            self._error = e
