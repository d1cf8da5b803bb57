"""Connections to a target, with errors that name the target and never show a password."""

from __future__ import annotations

import hashlib
import os
import re
import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import ProgrammingError, sql
from psycopg.conninfo import conninfo_to_dict

from civicq_ops.config import Project, Target
from civicq_ops.core.errors import InputError, QueryFailed, TargetUnreachable, first_line
from civicq_ops.core.redaction import register_secret

if TYPE_CHECKING:  # imported where used: a backup or a single check never needs the pool or the local cluster
    from psycopg_pool import ConnectionPool

    from civicq_ops.postgres.local_cluster import LocalCluster

APPLICATION_NAME = "civicq-ops"

# A dead host or a cut network is noticed within about half a minute rather than the kernel's
# two hours: TCP keepalives on an idle connection, and tcp_user_timeout (ms) for data the peer
# never acknowledges. A frozen server process whose kernel still answers is caught by the
# client-side deadline of postgres/deadline.py instead. A URL may override each of them.
TCP_DEFAULTS = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
                "tcp_user_timeout": 30_000}


def local_cluster(project: Project, target: Target) -> LocalCluster:
    """The LocalCluster behind an `embedded: true` target."""
    from civicq_ops.postgres.local_cluster import LocalCluster

    if not target.embedded:
        raise InputError(
            f"target '{target.name}' is not embedded: civicq-ops manages only local clusters (embedded: true)"
        )
    data_dir = target.data_dir or str(default_data_dir(project))
    return LocalCluster(data_dir=data_dir, bin_dir=target.bin_dir, port=target.port,
                        wal_archive=_configured_archive(project) or Path(data_dir).parent / "wal-archive")


def _configured_archive(project: Project) -> Path | None:
    configured = project.section("backups").get("wal_archive")
    return (project.root / configured).resolve() if configured else None


def wal_archive_dir(project: Project, target: Target) -> Path:
    """Where the target's WAL is archived: `backups.wal_archive`, else (local cluster) `wal-archive`
    beside its data dir, which the server's OS user can always reach."""
    configured = _configured_archive(project)
    if configured is not None:
        return configured
    archive = local_cluster(project, target).wal_archive if target.embedded else None
    if archive is not None:
        return archive
    raise InputError(f"target '{target.name}': set backups.wal_archive in civicq-ops.yaml to the folder its "
                     "archive_command (`civicq-ops wal archive`) writes to")


def default_data_dir(project: Project):
    """`.civicq-ops/pgdata` in the project, unless (as root) the server's OS user cannot enter the
    project folder (e.g. under /root): then a folder of its own under /var/tmp, named after the project."""
    from civicq_ops.postgres.local_cluster import OS_USER, _ensure_os_user, _first_untraversable

    wanted = project.state_dir / "pgdata"
    if os.geteuid() != 0:
        return wanted
    entry = _ensure_os_user(OS_USER)
    if _first_untraversable(project.root, entry.pw_uid, entry.pw_gid) is None:
        return wanted
    digest = hashlib.sha256(str(project.root.resolve()).encode()).hexdigest()[:12]
    folder = Path("/var/tmp") / f"civicq-ops-data-{digest}"
    folder.mkdir(mode=0o755, exist_ok=True)
    return folder / "pgdata"


def connect_kwargs(project: Project, target: Target, dbname: str | None = None) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for `target`."""
    if target.embedded:
        kw = local_cluster(project, target).conninfo(dbname or target.database)
        register_secret(str(kw["password"]))
    else:
        kw = {"conninfo": target.url or ""}
        if dbname:
            kw["dbname"] = dbname
    given = url_params(target.url) if not target.embedded else {}
    for key, value in {**TCP_DEFAULTS, "application_name": APPLICATION_NAME,
                       "connect_timeout": target.connect_timeout}.items():
        if key not in given:
            kw.setdefault(key, value)
    return kw


_LIBPQ_PREFIX = re.compile(r'^connection to server (at "[^"]*"(?: \([^)]*\))?, port \d+|on socket "[^"]*") failed: ')


def url_params(url: str | None) -> dict[str, str]:
    """A URL's or conninfo string's parameters, read by libpq's parser ({} if it cannot read it:
    connecting then reports why)."""
    try:
        return {k: str(v) for k, v in conninfo_to_dict(url or "").items()}
    except ProgrammingError:
        return {}


def where(kw: dict[str, Any]) -> str:
    """host:port (and database) that `kw` points at, for messages; never the password."""
    params = {**url_params(str(kw.get("conninfo", ""))), **{k: str(v) for k, v in kw.items() if k != "conninfo"}}
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "the local socket"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE")
    return f"{host}:{port}" + (f" (database {dbname})" if dbname else "")


def connect(
    project: Project, target: Target, *, dbname: str | None = None, autocommit: bool = False,
    timeout: float | None = None,
) -> psycopg.Connection:
    """Open a connection; failures become TargetUnreachable with a redacted one-line reason that
    names the host and port. `timeout` shortens connect_timeout (e.g. to what a run budget has left)."""
    kw = connect_kwargs(project, target, dbname)
    if timeout is not None:
        kw["connect_timeout"] = max(1, min(int(kw.get("connect_timeout") or target.connect_timeout), int(timeout + 0.999)))
    return open_connection(kw, what=f"target '{target.name}'", autocommit=autocommit)


def open_connection(kwargs: dict[str, Any], *, what: str, autocommit: bool = False) -> psycopg.Connection:
    """psycopg.connect(**kwargs): the one place where a failed connection becomes an error naming
    `what` ("target 'prod'", "the state store") and the host and port, with a one-line reason
    (redacted when printed)."""
    try:
        return psycopg.connect(autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as e:
        reason = _LIBPQ_PREFIX.sub("", first_line(e))  # it repeats the host and port named here
        raise TargetUnreachable(f"cannot connect to {what} at {where(kwargs)}: {reason}") from e
    except psycopg.ProgrammingError as e:  # a malformed URL
        raise TargetUnreachable(f"{what} has an invalid connection string: {first_line(e)}") from e


def one_row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (an aggregate, current_setting(), ...)."""
    row = cursor.fetchone()
    if row is None:
        raise QueryFailed("the server returned no row where one was certain")
    return row


def open_pool(project: Project, target: Target, size: int, warm: int = 0) -> ConnectionPool:
    """A psycopg_pool of up to `size` autocommit connections (a caller opens its own transaction: in a
    pipeline, psycopg's implicit BEGIN costs a round trip of its own), `warm` of them opened at once in
    the background. A caller connects once with connect() first, so an unreachable target fails
    there with the real reason. Each connection is checked when taken, so one the server
    terminated or that broke is replaced."""
    from psycopg_pool import ConnectionPool

    kw = connect_kwargs(project, target)
    conninfo = str(kw.pop("conninfo", ""))
    size = max(1, size)
    return ConnectionPool(conninfo, kwargs={**kw, "autocommit": True}, min_size=min(warm, size), max_size=size,
                          open=True, check=check_idle, name=f"civicq-ops:{target.name}",
                          timeout=float(target.connect_timeout))


def check_idle(conn: psycopg.Connection) -> None:
    """The pool's check of a connection it hands out, without a round trip (psycopg_pool's
    check_connection sends an empty query each time: a third of a run's client time on a small
    database). An idle connection's socket has nothing to read; a backend that was terminated
    (pg_terminate_backend, a restart, idle_session_timeout) has left its FATAL message and the end
    of the stream there, so a readable socket means a dead connection, and the pool replaces it.
    Anything else the server could send unasked to an idle session only costs a new connection."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        conn.close()  # the pool replaces a closed connection (one it finds idle it would hand out again)
        raise psycopg.OperationalError("the server sent something on an idle connection (it was terminated?)")


@contextmanager
def pooled(pool: ConnectionPool, target: Target) -> Iterator[psycopg.Connection]:
    """A connection from `pool`; a pool that cannot connect in time becomes TargetUnreachable."""
    from psycopg_pool import PoolTimeout

    try:
        conn = pool.getconn()
    except PoolTimeout as e:
        raise TargetUnreachable(f"cannot connect to target '{target.name}': {first_line(e)}") from e
    try:
        yield conn
    finally:
        pool.putconn(conn)  # the pool rolls back or discards a connection left in a bad state


# The local cluster preloads pg_stat_statements; these make the query and bloat checks work there.
LOCAL_EXTENSIONS = ("pg_stat_statements", "pgstattuple")


def ensure_database(project: Project, target: Target) -> bool:
    """Create the target's database on a local cluster if it is missing, with the monitoring
    extensions. True if the database was created."""
    with connect(project, target, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
    with connect(project, target, autocommit=True) as conn:
        for ext in LOCAL_EXTENSIONS:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
    return not exists
