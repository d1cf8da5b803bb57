"""Connections to a target, with errors that name the target and never show a password."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicq_ops.config import Project, Target
from civicq_ops.core.errors import InputError, TargetUnreachable, first_line
from civicq_ops.core.redaction import register_secret
from civicq_ops.postgres.local_cluster import LocalCluster

if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "civicq-ops"


def local_cluster(project: Project, target: Target) -> LocalCluster:
    """The LocalCluster behind an `embedded: true` target."""
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
    if target.embedded:
        return local_cluster(project, target).wal_archive
    raise InputError(f"target '{target.name}': set backups.wal_archive in civicq-ops.yaml to the folder its "
                     "archive_command (`civicq-ops wal archive`) writes to")


def default_data_dir(project: Project):
    """`.civicq-ops/pgdata` in the project, unless (as root) the server's OS user cannot enter the
    project folder (e.g. under /root): then a folder of its own under /var/tmp, named after the project."""
    import hashlib
    import os
    from pathlib import Path

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
    kw.setdefault("application_name", APPLICATION_NAME)
    kw.setdefault("connect_timeout", target.connect_timeout)
    return kw


def connect(
    project: Project, target: Target, *, dbname: str | None = None, autocommit: bool = False
) -> psycopg.Connection:
    """Open a connection; failures become TargetUnreachable with a redacted one-line reason."""
    import psycopg

    kw = connect_kwargs(project, target, dbname)
    try:
        return psycopg.connect(autocommit=autocommit, **kw)
    except psycopg.OperationalError as e:
        raise TargetUnreachable(f"cannot connect to target '{target.name}': {first_line(e)}") from e
    except psycopg.ProgrammingError as e:  # a malformed URL
        raise TargetUnreachable(f"target '{target.name}' has an invalid connection string: {first_line(e)}") from e


# The local cluster preloads pg_stat_statements; these make the query and bloat checks work there.
LOCAL_EXTENSIONS = ("pg_stat_statements", "pgstattuple")


def ensure_database(project: Project, target: Target) -> bool:
    """Create the target's database on a local cluster if it is missing, with the monitoring
    extensions. True if the database was created."""
    from psycopg import sql

    with connect(project, target, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
    with connect(project, target, autocommit=True) as conn:
        for ext in LOCAL_EXTENSIONS:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
    return not exists
