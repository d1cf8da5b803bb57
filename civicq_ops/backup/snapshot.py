"""The snapshot a backup is taken in: exported by a psql session that holds it until the backup is done.

`backup create` needs a snapshot before pg_dump may start (pg_dump --snapshot, and the row counts
import the same one). A psql child exports it in a few milliseconds, where importing psycopg alone
takes ~85 ms of start-up: so pg_dump starts that much sooner (and `backup create` never imports
psycopg). The same query says which pg_dump to use (the server's major), whether the role is a
superuser, and how many connections it may still open (what may run beside pg_dump), and how many
tables there are (progress).

The transaction stays open (psql waits on its standard input) until `release()`; closing psql's
input, or civicq-ops dying (the parent-death signal of start_tool), ends the session and its
snapshot with it.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from civicq_ops.backup.tools import psql_env, psql_error, start_tool
from civicq_ops.core.errors import ExecutionError
from civicq_ops.core.redaction import redact

EXPORT_TIMEOUT_S = 60.0

# One round trip: the server's major, superuser or not, the connections this role may still open
# (the fewer of what its CONNECTION LIMIT and the server's max_connections leave; superusers may also
# take superuser_reserved_connections), how many tables there are, whether the role may read the
# system identifier (as postgres/probe.py asks), the version and database for the manifest, and the
# exported snapshot. Fields and records end in NUL bytes (a database name may hold any other).
_EXPORT = (
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
    "SELECT current_setting('server_version_num')::int / 10000, r.rolsuper, least("
    " CASE WHEN r.rolconnlimit >= 0 AND NOT r.rolsuper"
    "  THEN r.rolconnlimit - (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user) END,"
    " current_setting('max_connections')::int - coalesce(current_setting('reserved_connections', true)::int, 0)"
    " - CASE WHEN r.rolsuper THEN 0 ELSE current_setting('superuser_reserved_connections')::int END"
    " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    "    OR backend_type IS NULL AND usename IS NOT NULL)),"  # hidden from a role without pg_read_all_stats
    " (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace" + "{where}),"
    " has_function_privilege('pg_control_system()', 'EXECUTE')"
    "  AND (r.rolsuper OR pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')),"
    " current_setting('server_version'), current_database(),"
    " pg_export_snapshot() FROM pg_roles r WHERE r.rolname = current_user;\n"
)
# The tables pg_dump may dump: not the catalogue's, nor an extension's.
_TABLES_WHERE = (
    " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname !~ '^pg_toast' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"
)
_EXPORT = _EXPORT.replace("{where}", _TABLES_WHERE)
_TABLES = ("SELECT n.nspname, c.relname, greatest(c.reltuples::bigint, 0) FROM pg_class c"
           " JOIN pg_namespace n ON n.oid = c.relnamespace" + _TABLES_WHERE + " ORDER BY 1, 2;\n")
_SYSTEM_IDENTIFIER = "SELECT system_identifier::text FROM pg_control_system();\n"


@dataclass(frozen=True)
class Exported:
    major: int
    superuser: bool
    slots_left: int
    tables: int  # how many tables pg_dump may dump (progress)
    sysid_readable: bool
    server_version: str
    database: str
    snapshot: str


class SnapshotHolder:
    """`with SnapshotHolder(psql, env) as held: held.exported.snapshot ... held.release()`."""

    def __init__(self, psql: Path, env: dict[str, str], timeout_s: float = EXPORT_TIMEOUT_S) -> None:
        self.psql = psql
        self._env = psql_env(env)
        self._timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self.exported: Exported | None = None

    def __enter__(self) -> SnapshotHolder:
        args = [str(self.psql), "--no-psqlrc", "--quiet", "--no-align", "--tuples-only", "--field-separator-zero",
                "--record-separator-zero", "--set=ON_ERROR_STOP=1", "--no-password"]
        try:
            self._proc = start_tool(args, self._env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as e:
            raise ExecutionError(f"psql could not start: {e}") from e
        try:
            assert self._proc.stdin is not None
            self.exported = _parse(self._ask(_EXPORT, 8, "export the backup's snapshot"))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """End the session (its transaction rolls back, the snapshot is gone); idempotent."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None:
            try:
                proc.stdin.close()  # psql reads the end of its input and quits
            except OSError:  # psql is already gone
                pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def describe(self) -> tuple[tuple[str, str, str | None], list[dict]]:
        """In the snapshot, on the same session: (server version, database, system identifier or None
        where the role may not read it) and the tables pg_dump may dump (schema, name, rows_estimate)."""
        assert self.exported is not None
        what = "read the tables in the backup's snapshot"
        sysid = self._ask(_SYSTEM_IDENTIFIER, 1, what)[0] if self.exported.sysid_readable else None
        fields = self._ask(_TABLES, 3 * self.exported.tables, what)
        tables = [{"schema": fields[i], "name": fields[i + 1], "rows_estimate": int(fields[i + 2])}
                  for i in range(0, len(fields), 3)]
        return (self.exported.server_version, self.exported.database, sysid), tables

    def _ask(self, query: str, fields: int, what: str) -> list[str]:
        """Send `query`; its `fields` NUL-ended fields (within the timeout), or psql's error."""
        proc = self._proc
        if proc is None:
            raise ExecutionError("the snapshot's psql session has ended")
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(query.encode("utf-8", "surrogateescape"))
            proc.stdin.flush()
        except BrokenPipeError:  # psql has ended: its error is read below
            pass
        out = b""
        deadline = time.monotonic() + self._timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while out.count(b"\0") < fields:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ExecutionError(f"psql did not answer within {self._timeout_s:.0f}s")
                if not sel.select(left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
                if not chunk:  # psql ended: it could not connect, or the query failed
                    proc.wait()
                    error = psql_error(proc.stderr.read().decode(errors="replace"))
                    raise SnapshotError(f"psql could not {what}: " + redact(error or f"it exited with {proc.returncode}"))
                out += chunk
        return out.decode("utf-8", "surrogateescape").split("\0")[:fields]


class SnapshotError(ExecutionError):
    """psql could not connect or export the snapshot (its first line of error)."""


def _parse(fields: list[str]) -> Exported:
    try:
        major, superuser, slots, tables, readable, version, database, snapshot = fields
        return Exported(int(major), superuser == "t", int(slots), int(tables), readable == "t", version, database,
                        snapshot)
    except ValueError:
        raise ExecutionError(f"psql answered the snapshot export with unexpected fields: {fields!r:.80}") from None
