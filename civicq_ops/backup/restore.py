"""`backup verify` and `restore`: prove a backup whole, and bring it back safely."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from civicq_ops.backup.inventory import update
from civicq_ops.backup.manifest import Manifest, sha256_file
from civicq_ops.backup.tools import client_env, pg_tool, repeated
from civicq_ops.config import DEFAULT_BACKUP_JOBS, Project, Target
from civicq_ops.core.errors import ExecutionError, InputError, PlanRefused
from civicq_ops.core.redaction import redact
from civicq_ops.core.version import Version
from civicq_ops.postgres.binaries import program_version


@dataclass
class VerifyResult:
    ok: bool
    level: str
    problems: list[str] = field(default_factory=list)
    row_mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0


def verify_backup(project: Project, target: Target, folder: Path, manifest: Manifest, restore: bool = False,
                  jobs: int = DEFAULT_BACKUP_JOBS) -> VerifyResult:
    """Checksums, then a full read of the archive; with `restore`, a restore into a scratch
    database compared table by table with the row counts taken at backup time. Recorded in the manifest."""
    t0 = time.monotonic()
    result = VerifyResult(ok=True, level="restore" if restore else "read")
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            result.problems.append(f"{entry.path}: missing")
        elif path.stat().st_size != entry.size:
            result.problems.append(f"{entry.path}: {path.stat().st_size} bytes, the manifest says {entry.size}")
        elif sha256_file(path) != entry.sha256:
            result.problems.append(f"{entry.path}: checksum mismatch")
    major = Version.parse(manifest.pg_dump_version).major
    pg_restore = pg_tool("pg_restore", major)
    if not result.problems:
        # A full read decompresses every data file: truncated or corrupt archives fail here.
        proc = subprocess.run([str(pg_restore), "--file", "/dev/null", str(folder / manifest.dump_path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            result.problems.append(f"pg_restore cannot read the archive: {_last(proc.stderr)}")
    if not result.problems and restore:
        result.row_mismatches = _restore_and_count(project, target, folder, manifest, pg_restore, jobs)
        result.problems += result.row_mismatches
    result.ok = not result.problems
    result.seconds = round(time.monotonic() - t0, 3)
    manifest.verification = {"at": datetime.now(UTC).isoformat(), "ok": result.ok, "level": result.level,
                             "problems": result.problems[:20]}
    update(folder.parent, manifest)
    return result


def _restore_and_count(project, target, folder, manifest, pg_restore, jobs) -> list[str]:
    from psycopg import sql

    from civicq_ops.postgres.connect import connect, connect_kwargs, one_row

    scratch = f"civicq_ops_verify_{int(time.time())}"
    with connect(project, target, dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        _pg_restore(pg_restore, connect_kwargs(project, target, scratch), folder / manifest.dump_path,
                    ["--jobs", str(jobs), "--no-owner", "--exit-on-error"])
        mismatches = []
        with connect(project, target, dbname=scratch, autocommit=True) as conn:
            for t in manifest.tables:
                if "rows" not in t:
                    continue
                q = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(t["schema"]), sql.Identifier(t["name"]))
                got = one_row(conn.execute(q))[0]
                if got != t["rows"]:
                    mismatches.append(f"{t['schema']}.{t['name']}: {got} rows restored, {t['rows']} backed up")
            conn.execute("ANALYZE")
        return mismatches
    finally:
        with connect(project, target, dbname="postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))


def _pg_restore(pg_restore: Path, kw: dict, archive: Path, extra: list[str], progress=None, total: int = 0) -> None:
    """Run pg_restore --verbose, reporting each table whose data is loaded."""
    env = client_env(kw)
    args = [str(pg_restore), "--no-password", "--verbose", "--dbname", env.get("PGDATABASE", "postgres"), *extra,
            str(archive)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    lines, done = [], 0
    for line in proc.stderr:
        line = line.rstrip()
        if "processing data for table" in line or "finished item" in line and "TABLE DATA" in line:
            done += 1
            if progress:
                progress(line.rsplit(" ", 1)[-1].strip('"'), min(done, total or done), total or done)
        elif "error" in line.lower():
            lines.append(line)
    code = proc.wait()
    if code != 0:
        raise ExecutionError(f"pg_restore failed (exit {code}): {_last(chr(10).join(lines))}")


def _last(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return redact(lines[-1]) if lines else "no output"


@dataclass
class RestoreOptions:
    target_db: str | None = None
    clean: bool = False
    tables: list[str] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    jobs: int = DEFAULT_BACKUP_JOBS
    exit_on_error: bool = True


@dataclass
class RestoreResult:
    database: str
    safety_backup: str | None
    seconds: float


def list_contents(folder: Path, manifest: Manifest) -> str:
    pg_restore = pg_tool("pg_restore", Version.parse(manifest.pg_dump_version).major)
    proc = subprocess.run([str(pg_restore), "--list", str(folder / manifest.dump_path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExecutionError(f"pg_restore --list failed: {_last(proc.stderr)}")
    return proc.stdout


def restore_backup(project: Project, target: Target, folder: Path, manifest: Manifest, options: RestoreOptions,
                   safety_backup=None, progress=None) -> RestoreResult:
    """Restore into a new database by default; over an existing one only with `clean` and an explicit
    `target_db`, after a safety backup of it, and never while other sessions use it."""
    from psycopg import sql

    from civicq_ops.postgres.connect import connect, connect_kwargs, one_row

    t0 = time.monotonic()
    dumped_with = Version.parse(manifest.pg_dump_version)
    pg_restore = pg_tool("pg_restore", dumped_with.major)
    restore_version = program_version(pg_restore)
    if restore_version.major < dumped_with.major:
        raise InputError(f"pg_restore {restore_version} at {pg_restore} is older than the pg_dump "
                         f"{dumped_with} that made backup {manifest.id}; use a newer pg_restore")
    name = options.target_db or f"{manifest.database}_restored_{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
    safety = None
    with connect(project, target, dbname="postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not (options.clean and options.target_db):
            raise PlanRefused(f"database {name} exists: restoring over it needs --clean and --target-db {name} "
                              f"(a safety backup is taken first)")
        if exists:
            others = one_row(admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                           "AND pid <> pg_backend_pid()", (name,)))[0]
            if others:
                raise PlanRefused(f"database {name} has {others} other session(s) connected: stop them first")
        else:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if exists:
        from dataclasses import replace

        from civicq_ops.backup.create import BackupOptions, create_backup

        over = replace(target, database=name, url=_with_db(target.url, name) if target.url else None)
        safety = (safety_backup or create_backup)(project, over, BackupOptions(format="custom", globals=False)).id
    extra = ["--jobs", str(options.jobs), "--no-owner"]
    if options.clean:
        extra += ["--clean", "--if-exists"]
    if options.exit_on_error:
        extra.append("--exit-on-error")
    extra += repeated("--table", options.tables) + repeated("--schema", options.schemas)
    _pg_restore(pg_restore, connect_kwargs(project, target, name), folder / manifest.dump_path, extra,
                progress=progress, total=len(manifest.tables))
    with connect(project, target, dbname=name, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return RestoreResult(database=name, safety_backup=safety, seconds=round(time.monotonic() - t0, 3))


def _with_db(url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo("", **{**conninfo_to_dict(url), "dbname": name})
