"""`backup verify` and `restore`: prove a backup whole, and bring it back safely."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from civicq_ops.backup.inventory import update
from civicq_ops.backup.manifest import Manifest, sha256_file
from civicq_ops.backup.tools import client_env, dbname_arg, pg_tool, repeated, start_tool, stopped_on_exit
from civicq_ops.config import DEFAULT_BACKUP_JOBS, Project, Target
from civicq_ops.core.errors import ExecutionError, InputError, PlanRefused
from civicq_ops.core.redaction import redact
from civicq_ops.core.version import Version
from civicq_ops.postgres.binaries import program_version
from civicq_ops.postgres.connect import connect, connect_kwargs, one_row


@dataclass
class VerifyResult:
    ok: bool
    level: str
    problems: list[str] = field(default_factory=list)
    row_mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# A partial or data-only backup does not stand alone: restoring it into an empty scratch database
# fails on what it leaves out (the tables its data goes into, the tables its foreign keys name).
# These kinds are verified to the read level: checksums and a full read of every data file.
RESTORE_VERIFIABLE = ("full", "schema-only", "safety")


def checksum_problems(folder: Path, manifest: Manifest) -> list[str]:
    """Files missing, of the wrong size, or whose SHA-256 differs from the manifest's."""
    problems = []
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
        elif path.stat().st_size != entry.size:
            problems.append(f"{entry.path}: {path.stat().st_size} bytes, the manifest says {entry.size}")
        elif sha256_file(path) != entry.sha256:
            problems.append(f"{entry.path}: checksum mismatch")
    return problems


def verify_backup(project: Project, target: Target, folder: Path, manifest: Manifest, restore: bool = False,
                  jobs: int = DEFAULT_BACKUP_JOBS) -> VerifyResult:
    """Checksums, then a full read of the archive; with `restore`, a restore into a scratch
    database compared table by table with the row counts taken at backup time (full, schema-only
    and safety backups; partial and data-only ones get the read level, said in `notes`).
    Recorded in the manifest."""
    t0 = time.monotonic()
    if restore and manifest.kind not in RESTORE_VERIFIABLE:
        restore = False
        notes = [f"a {manifest.kind} backup is verified to the read level (checksums and a full read): "
                 "restore verification needs the rest of the database it was taken from"]
    else:
        notes = []
    result = VerifyResult(ok=True, level="restore" if restore else "read", notes=notes)
    result.problems += checksum_problems(folder, manifest)
    if manifest.kind.startswith("physical"):  # pg_verifybackup: every file against backup_manifest, and the WAL
        from civicq_ops.backup.physical import verify_physical

        result.level = "pg_verifybackup"
        if restore:
            result.notes.append("a physical backup is verified with pg_verifybackup; restore --physical proves it")
        if not result.problems:
            result.problems += verify_physical(folder, manifest)
        return _record(folder, manifest, result, t0)
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
    return _record(folder, manifest, result, t0)


def _record(folder: Path, manifest: Manifest, result: VerifyResult, t0: float) -> VerifyResult:
    result.ok = not result.problems
    result.seconds = round(time.monotonic() - t0, 3)
    manifest.verification = {"at": datetime.now(UTC).isoformat(), "ok": result.ok, "level": result.level,
                             "problems": result.problems[:20], "notes": result.notes}
    update(folder.parent, manifest)
    return result


def _restore_and_count(project, target, folder, manifest, pg_restore, jobs) -> list[str]:
    from psycopg import sql

    from civicq_ops.postgres.connect import one_row

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
    # The name goes inside a connection string: a bare --dbname with `=` in it would be read as one.
    args = [str(pg_restore), "--no-password", "--verbose", "--dbname", dbname_arg(env.get("PGDATABASE", "postgres")),
            *extra, str(archive)]
    proc = start_tool(args, env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines, done = [], 0
    with stopped_on_exit(proc):
        assert proc.stderr is not None
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
        raise ExecutionError(f"pg_restore failed (exit {code}): {_first(lines)}")


def _first(lines: list[str]) -> str:
    """The first error: with --exit-on-error it is the cause; later lines are consequences."""
    return redact(lines[0]) if lines else "no output"


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
    force: bool = False  # restore although the checksums do not match
    confirmed: bool = False  # the user confirmed restoring another server's or database's backup, or over production


class NeedsConfirmation(PlanRefused):
    """The restore is allowed only after the user confirms this question (exit 5 without it)."""

    def __init__(self, question: str) -> None:
        super().__init__(f"{question.rstrip('?')}: needs a confirmation (at the prompt, or --yes)")
        self.question = question


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
    `target_db`, after a safety backup of it, and never while other sessions use it. The checksums are
    checked first; another server's or database's backup, or an overwrite on a production target,
    needs `confirmed`. A failed restore into a new database drops it; a failed overwrite says how to
    put the safety backup back."""
    from psycopg import sql

    from civicq_ops.postgres.probe import system_identifier

    t0 = time.monotonic()
    if options.jobs < 1:
        raise InputError(f"--jobs must be at least 1 (got {options.jobs})")
    if manifest.kind.startswith("physical"):
        raise InputError(f"backup {manifest.id} is physical: restore it with --physical (into a new cluster)")
    dumped_with = Version.parse(manifest.pg_dump_version)
    pg_restore = pg_tool("pg_restore", dumped_with.major)
    restore_version = program_version(pg_restore)
    if restore_version.major < dumped_with.major:
        raise InputError(f"pg_restore {restore_version} at {pg_restore} is older than the pg_dump "
                         f"{dumped_with} that made backup {manifest.id}; use a newer pg_restore")
    damaged = checksum_problems(folder, manifest)
    if damaged and not options.force:
        raise PlanRefused(f"backup {manifest.id} is damaged ({'; '.join(damaged[:3])}): nothing was restored "
                          f"(`civicq-ops backup verify {manifest.id}` shows why; --force restores it anyway)")
    name = options.target_db or f"{manifest.database}_restored_{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
    with connect(project, target, dbname="postgres", autocommit=True) as admin:
        sysid = system_identifier(admin)
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not (options.clean and options.target_db):
            raise PlanRefused(f"database {name} exists: restoring over it needs --clean and --target-db {name} "
                              f"(a safety backup is taken first)")
        if not options.confirmed:
            question = _confirmation_needed(manifest, target, sysid, name, bool(exists))
            if question:
                raise NeedsConfirmation(question)
        if exists:
            others = one_row(admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                           "AND pid <> pg_backend_pid()", (name,)))[0]
            if others:
                raise PlanRefused(f"database {name} has {others} other session(s) connected: stop them first")
        else:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    safety = None
    if exists:
        from dataclasses import replace

        from civicq_ops.backup.create import BackupOptions, create_backup

        over = replace(target, database=name, url=_with_db(target.url, name) if target.url else None)
        safety = (safety_backup or create_backup)(project, over, BackupOptions(format="custom", globals=False,
                                                                               kind="safety")).id
    extra = ["--jobs", str(options.jobs), "--no-owner"]
    if options.clean:
        extra += ["--clean", "--if-exists"]
    if options.exit_on_error:
        extra.append("--exit-on-error")
    extra += repeated("--table", options.tables) + repeated("--schema", options.schemas)
    try:
        _pg_restore(pg_restore, connect_kwargs(project, target, name), folder / manifest.dump_path, extra,
                    progress=progress, total=len(manifest.tables))
        with connect(project, target, dbname=name, autocommit=True) as conn:
            conn.execute("ANALYZE")
    except BaseException as e:
        if not exists:  # nothing half-restored is left behind
            with connect(project, target, dbname="postgres", autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            raise
        if isinstance(e, ExecutionError):
            yes = " --yes" if target.environment == "production" else ""
            raise ExecutionError(
                f"{e.message}; database {name} may be half-restored. Its state before was saved as safety "
                f"backup {safety}: put it back with `civicq-ops --target {target.name} restore {safety} --clean "
                f"--target-db {name}{yes}`") from e
        raise
    return RestoreResult(database=name, safety_backup=safety, seconds=round(time.monotonic() - t0, 3))


def _confirmation_needed(manifest: Manifest, target: Target, sysid: str | None, name: str, exists: bool) -> str | None:
    """Why this restore must be confirmed by the user, or None."""
    if manifest.system_identifier and sysid and manifest.system_identifier != sysid:
        return (f"backup {manifest.id} is of another server (system identifier {manifest.system_identifier}, "
                f"database {manifest.database}); target '{target.name}' is server {sysid}: restore it into {name}?")
    if exists and manifest.database != name:
        return (f"backup {manifest.id} is of database {manifest.database} (target '{manifest.target}'), not of {name}: "
                f"overwrite {name} with it?")
    if exists and target.environment == "production":
        return f"restore backup {manifest.id} over database {name} of production target '{target.name}'?"
    return None


def _with_db(url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo("", **{**conninfo_to_dict(url), "dbname": name})
