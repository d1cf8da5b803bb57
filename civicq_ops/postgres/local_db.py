"""What the `db up | down | status | url | psql` commands do, as library calls: the local
cluster of an embedded target, its status as text or JSON, a target's URL, and psql on a target."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from civicq_ops.config import Project, Target
from civicq_ops.core.errors import InputError, first_line
from civicq_ops.core.redaction import redact
from civicq_ops.postgres.binaries import find_client
from civicq_ops.postgres.connect import connect_kwargs, ensure_database, local_cluster
from civicq_ops.postgres.local_cluster import ClusterStatus

STATUS_FORMATS = ("text", "json")


def db_up(project: Project, target: Target) -> ClusterStatus:
    """Start the local cluster (initialising it on first use) and create the target's database."""
    status = local_cluster(project, target).start()
    if ensure_database(project, target):
        status.notes.append(f"created database {target.database}")
    return status


def db_down(project: Project, target: Target) -> str:
    """Stop the local cluster by its pid; the sentence to print."""
    stopped = local_cluster(project, target).stop()
    return "local PostgreSQL stopped" if stopped else "local PostgreSQL was not running"


def db_status(project: Project, target: Target) -> ClusterStatus:
    return local_cluster(project, target).status()


def status_text(status: ClusterStatus, fmt: str = "text") -> str:
    """`db status` output: notes, state, data dir, version, and where it listens when running."""
    if fmt not in STATUS_FORMATS:
        raise InputError(f"unknown format '{fmt}' (choose from {', '.join(STATUS_FORMATS)})")
    if fmt == "json":
        return json.dumps(status.to_dict(), indent=2) + "\n"
    lines = [f"note: {note}" for note in status.notes]
    state = "running" if status.running else ("stopped" if status.initialized else "not initialised")
    lines += [f"local PostgreSQL: {state}", f"  data dir: {status.data_dir}"]
    if status.version:
        lines.append(f"  version:  {status.version}")
    if status.running:
        lines.append(f"  port:     {status.port} (127.0.0.1)  pid: {status.pid}")
        lines.append(f"  socket:   {status.socket_dir}")
    return "\n".join(lines) + "\n"


def target_url(project: Project, target: Target, show_password: bool = False) -> str:
    """The target's connection URL, its password masked unless `show_password`."""
    if target.embedded:
        kw = connect_kwargs(project, target)
        secret = quote(str(kw["password"]), safe="")
        link = f"postgresql://{kw['user']}:{secret}@{kw['host']}:{kw['port']}/{kw['dbname']}"
    else:
        link = target.url or ""
    return link if show_password else redact(link)


def psql_environment(kw: dict, embedded: bool) -> tuple[dict[str, str], list[str], str | None]:
    """psql's environment, arguments and service-file text for a target: secrets never on its
    command line, where `ps` shows them to every local user; the password goes in PGPASSWORD
    (readable only by this user), the rest as a conninfo argument without secrets."""
    env = dict(os.environ)
    env["PGAPPNAME"] = "civicq-ops psql"
    if embedded:
        env.update(PGHOST=str(kw["host"]), PGPORT=str(kw["port"]), PGUSER=str(kw["user"]),
                   PGPASSWORD=str(kw["password"]), PGDATABASE=str(kw["dbname"]))
        return env, [], None
    try:
        params = conninfo_to_dict(str(kw["conninfo"]))
    except ProgrammingError as e:
        raise InputError(f"the target's connection string is invalid: {first_line(e)}") from e
    if kw.get("dbname"):
        params["dbname"] = kw["dbname"]
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    ssl_password = params.pop("sslpassword", None)
    service = f"[civicq-ops]\nsslpassword={ssl_password}\n" if ssl_password is not None else None
    return env, [make_conninfo("", **params)] if params else [], service


def run_psql(project: Project, target: Target, extra: list[str]) -> int:
    """Run psql on the target in the foreground; its exit code. Secrets libpq has no variable for
    (sslpassword) go in a 0600 service file that lives as long as psql."""
    env, args, secrets = psql_environment(connect_kwargs(project, target), target.embedded)
    program = find_client("psql")
    with tempfile.TemporaryDirectory(prefix="civicq-psql-") as folder:
        if secrets:
            service = Path(folder) / "pg_service.conf"
            service.touch(mode=0o600)
            service.write_text(secrets)
            env.update(PGSERVICEFILE=str(service), PGSERVICE="civicq-ops")
        return subprocess.run([str(program), *args, *extra], env=env).returncode
