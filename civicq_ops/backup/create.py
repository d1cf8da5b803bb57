"""`backup create`: pg_dump into `<id>.partial/`, checksum, manifest, rename into place.

Row counts are taken in the same snapshot pg_dump uses (pg_export_snapshot + --snapshot), so a
restore can be compared with the source exactly, even while the application writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from civicq_ops.backup.rowcount import SnapshotRowCounter
from civicq_ops.backup.snapshot import SnapshotError, SnapshotHolder
from civicq_ops.backup.tools import (
    client_env,
    client_kwargs,
    compress_arg,
    compress_spec,
    compression_methods,
    pg_tool,
    repeated,
    setpriv_path,
    start_tool,
    stopped_on_exit,
)
from civicq_ops.config import DEFAULT_BACKUP_JOBS, Project, Target
from civicq_ops.core.errors import ExecutionError, InputError
from civicq_ops.core.redaction import redact
from civicq_ops.postgres.binaries import find_client, first_client

if TYPE_CHECKING:  # imported where used: hashing and the manifest are not needed before pg_dump starts
    from civicq_ops.backup.manifest import Manifest

Progress = Callable[[str, int, int], None]


@dataclass
class BackupOptions:
    format: str = "directory"  # directory | custom
    jobs: int = DEFAULT_BACKUP_JOBS
    compress: str | None = None  # gzip[:level] | lz4[:level] | zstd[:level] | none; None: the format's default
    schema_only: bool = False
    data_only: bool = False
    tables: list[str] = field(default_factory=list)
    exclude_tables: list[str] = field(default_factory=list)
    lock_wait_timeout: str | None = "30s"
    globals: bool = True
    row_counts: bool = True
    kind: str | None = None  # None: from the options above; "safety" for restore's own backup


def backups_dir(project: Project) -> Path:
    return project.root / project.backups.dir


def new_backup_id(target: Target, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{target.name}-{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z"


def create_backup(project: Project, target: Target, options: BackupOptions, progress: Progress | None = None,
                  backup_id: str | None = None) -> Manifest:
    """Make one backup of the target's database; returns its manifest. Nothing is listed until done,
    and a failed or interrupted attempt removes its `.partial` folder and stops its child tools.

    The order is what lets pg_dump start early: a psql session exports the snapshot (backup/snapshot.py)
    and pg_dump starts in it; only then does that session read the server's identity and the tables,
    and another psql session that imports the snapshot counts their rows (backup/rowcount.py), beside
    pg_dump when a connection slot is free. psycopg is not imported at all."""
    if options.format not in ("directory", "custom"):
        raise InputError(f"unknown backup format '{options.format}' (directory or custom)")
    if options.schema_only and options.data_only:
        raise InputError("--schema-only and --data-only exclude each other")
    if options.jobs < 1:
        raise InputError(f"--jobs must be at least 1 (got {options.jobs})")
    root = backups_dir(project)
    private_dir(root)
    backup_id = backup_id or new_backup_id(target)
    final = root / backup_id
    partial = root / f"{backup_id}.partial"
    if final.exists() or partial.exists():
        raise InputError(f"backup {backup_id} already exists")
    started = datetime.now(UTC)
    t0 = time.monotonic()
    env = client_env(client_kwargs(project, target))
    lookup = threading.Thread(target=_warm_client_lookup, name="civicq-ops client lookup", daemon=True)
    lookup.start()  # the client programs' --version run while psql connects
    with contextlib.ExitStack() as held:
        holder = held.enter_context(_snapshot_held(project, target, env))
        exported = holder.exported
        assert exported is not None
        lookup.join()
        pg_dump = pg_tool("pg_dump", exported.major)
        compress = compress_spec(options.compress, options.format)
        if compress.split(":")[0] not in ("none", "gzip") and compress.split(":")[0] not in compression_methods(pg_dump):
            raise InputError(f"{pg_dump} cannot compress with {options.compress} "
                             f"(it supports {', '.join(compression_methods(pg_dump))}, none)")
        partial.mkdir(mode=0o700)
        try:
            (partial / "pid").write_text(str(os.getpid()))
            filtered = bool(options.tables or options.exclude_tables)
            counting = options.row_counts and not options.schema_only
            globals_file = "globals.sql" if options.globals else None
            # Beside pg_dump only when the server and the role have a connection slot for each of
            # them left after pg_dump's own: they must never take the one pg_dump needs.
            dump_sessions = max(1, options.jobs) + 1 if options.format == "directory" and options.jobs > 1 else 1
            beside = exported.slots_left >= dump_sessions + 2
            lock_ms = _ms(options.lock_wait_timeout) if options.lock_wait_timeout else None

            def counter(tables: list[dict]) -> SnapshotRowCounter:
                # a psql session of its own that imports the snapshot (backup/rowcount.py)
                return SnapshotRowCounter(holder.psql, env, exported.snapshot, tables, lock_ms)

            with contextlib.ExitStack() as running:  # whatever ends the block stops what still runs
                dump = running.enter_context(_dump_started(
                    _dump_args(pg_dump, partial, exported.snapshot, options, compress), env))
                # While pg_dump runs: the globals, the server's identity and the tables (on the snapshot's
                # own session), and (without table filters) their row counts.
                dumpall = running.enter_context(_globals_started(exported.major, partial / globals_file, env,
                                                                 exported.superuser)) if globals_file and beside else None
                about, candidates = holder.describe()
                early = running.enter_context(counter(candidates)) if beside and counting and not filtered else None
                warnings = _dump_followed(dump, len(candidates), progress)
                counted = early.result() if early is not None else None
                if counted is not None:
                    tables = counted
                else:  # filtered, not counting, no slot to spare beside pg_dump, or none left when it tried
                    tables = candidates
                    if filtered:  # only what pg_dump really took
                        tables = _in_archive(pg_dump, partial / _dump_name(options), tables)
                    if counting:
                        with counter(tables) as late:  # pg_dump's slots are free again
                            tables = late.result(must_connect=True) or []  # (None only without must_connect)
                if globals_file and (dumpall is None or not _globals_finished(dumpall)):
                    # After pg_dump, alone: no slot to spare, or beside pg_dump it found none left.
                    with _globals_started(exported.major, partial / globals_file, env, exported.superuser) as after:
                        _globals_finished(after, last_try=True)
            holder.release()  # the snapshot is let go only after pg_dump and the counts are done with it
            server_version, database, sysid = about
            (partial / "pid").unlink()
            from civicq_ops.backup.manifest import Manifest, checksum_files, fsync_dir, fsync_tree, kind_of, write_manifest

            names = [_dump_name(options)] + ([globals_file] if globals_file else [])
            private_tree(partial)
            files = checksum_files(partial, names)
            finished = datetime.now(UTC)
            manifest = Manifest(
                id=backup_id, target=target.name, database=database, format=options.format,
                started_at=started.isoformat(), finished_at=finished.isoformat(),
                duration_s=round(time.monotonic() - t0, 3), server_version=server_version,
                pg_dump_version=_version_of(pg_dump), system_identifier=sysid,
                options={"jobs": options.jobs, "compress": compress, "schema_only": options.schema_only,
                         "data_only": options.data_only, "tables": options.tables,
                         "exclude_tables": options.exclude_tables},
                files=files, tables=tables, globals_file=globals_file, size_bytes=sum(f.size for f in files),
                warnings=warnings, kind=options.kind or kind_of({"schema_only": options.schema_only,
                                                                 "data_only": options.data_only,
                                                                 "tables": options.tables,
                                                                 "exclude_tables": options.exclude_tables}),
            )
            # The manifest is only a file of the .partial folder until the rename, so it may come before
            # the fsyncs: one pass then makes every file and the folder's own entries (the manifest's
            # too) durable before the folder is renamed into place.
            write_manifest(partial, manifest)
            fsync_tree(partial)
            os.replace(partial, final)
            fsync_dir(root)
        except BaseException as e:
            holder.release()
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(e, OSError):  # e.g. the manifest on a full disk
                raise ExecutionError(f"backup {backup_id} failed: {e.strerror or e} ({e.filename or root}); "
                                     "nothing was kept") from e
            raise
    return manifest


def create_verified_backup(project: Project, target: Target, options: BackupOptions,
                           progress: Progress | None = None) -> Manifest:
    """A backup, then `verify` (checksums and a full read): what the `backup` remediation runs, so the
    finding it answers (no recent *verified* backup) really clears."""
    from civicq_ops.backup.restore import verify_backup

    manifest = create_backup(project, target, options, progress)
    result = verify_backup(project, target, backups_dir(project) / manifest.id, manifest)
    if not result.ok:
        raise ExecutionError(f"backup {manifest.id} was made but does not verify: {'; '.join(result.problems[:3])}")
    return manifest


def private_dir(folder: Path) -> None:
    """The backups folder and every backup in it are 0700: dumps and role password hashes inside."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def private_tree(folder: Path) -> None:
    """Folders 0700, files 0600 (the tools already write under umask 077; this makes sure)."""
    for dirpath, _dirs, files in os.walk(folder):
        os.chmod(dirpath, 0o700)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o600)


def _dump_args(pg_dump: Path, partial: Path, snapshot: str, options: BackupOptions, compress: str) -> list[str]:
    args = [str(pg_dump), "--format", options.format[0], "--file", str(partial / _dump_name(options)),
            "--snapshot", snapshot, "--verbose", "--no-password"]
    if options.format == "directory":
        args += ["--jobs", str(max(1, options.jobs))]
    args += ["--compress", compress_arg(pg_dump, compress)]
    if options.schema_only:
        args.append("--schema-only")
    if options.data_only:
        args.append("--data-only")
    args += repeated("--table", options.tables) + repeated("--exclude-table", options.exclude_tables)
    if options.lock_wait_timeout:
        args += [f"--lock-wait-timeout={_ms(options.lock_wait_timeout)}"]
    return args


def _dump_name(options: BackupOptions) -> str:
    return "dump" if options.format == "directory" else "dump.custom"


@contextlib.contextmanager
def _snapshot_held(project: Project, target: Target, env: dict[str, str]) -> Iterator[SnapshotHolder]:
    """The snapshot exported by psql (backup/snapshot.py). When psql cannot connect, psycopg tries: the
    error is then the one every command gives for an unreachable target (and psql's if psycopg can)."""
    try:
        holder = SnapshotHolder(first_client("psql"), env).__enter__()
    except SnapshotError:
        _connect(project, target).close()
        raise
    try:
        yield holder
    finally:
        holder.release()


def _connect(project: Project, target: Target):
    from civicq_ops.postgres.connect import connect

    return connect(project, target, autocommit=True)


def _warm_client_lookup() -> None:
    """Fill the per-run caches of client lookup (each bin folder's version, setpriv); failures are
    left for the real lookup after it, which reports them."""
    with contextlib.suppress(Exception):
        find_client("pg_dump")
        setpriv_path()


def _ms(duration: str) -> int:
    from civicq_ops.core.units import parse_duration

    return int(parse_duration(duration) * 1000)


def _version_of(program: Path) -> str:
    from civicq_ops.postgres.binaries import program_version

    return str(program_version(program))


def _in_archive(pg_dump: Path, archive: Path, tables: list[dict]) -> list[dict]:
    """The tables whose definition or data the archive holds (what --table / --exclude-table selected)."""
    pg_restore = pg_dump.with_name("pg_restore")
    proc = subprocess.run([str(pg_restore), "--list", str(archive)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExecutionError(f"pg_restore --list failed on the new archive: {redact(proc.stderr.strip())}")
    listing = proc.stdout
    return [t for t in tables if f" TABLE {t['schema']} {t['name']} " in listing
            or f" TABLE DATA {t['schema']} {t['name']} " in listing]


_TABLE_DONE = re.compile(r"(dumping contents of table|finished item \d+ TABLE DATA)")


@contextlib.contextmanager
def _dump_started(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """pg_dump started; stopped (and its parallel workers with it) if the block ends before it does."""
    try:
        # Its messages quote names in the database's encoding (pg_dump keeps it): LATIN1 is not UTF-8.
        proc = start_tool(args, env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, errors="replace")
    except OSError as e:
        raise ExecutionError(f"pg_dump could not start: {e}") from e
    with stopped_on_exit(proc):
        yield proc


def _dump_followed(proc: subprocess.Popen, table_count: int, progress: Progress | None) -> list[str]:
    """Follow pg_dump's --verbose lines for progress until it ends; warnings are kept for the manifest."""
    done, warnings, errors = 0, [], []
    assert proc.stderr is not None
    for line in proc.stderr:
        line = line.rstrip()
        if _TABLE_DONE.search(line):
            done += 1
            if progress:
                progress(line.rsplit(" ", 1)[-1], min(done, table_count), table_count)
        elif "warning:" in line.lower():
            warnings.append(redact(line))
        elif "error:" in line.lower():
            errors.append(redact(line))
    code = proc.wait()
    if code != 0:
        cause = _cause(errors)
        if "no matching tables were found" in cause:
            raise InputError(f"pg_dump: {cause.split('error:', 1)[-1].strip()}; nothing was kept")
        raise ExecutionError(f"pg_dump failed (exit {code}): {cause}; nothing was kept")
    return warnings


def _cause(errors: list[str]) -> str:
    """The line that says why: out of space first, else the first error (a parallel pg_dump's last
    line is only "a worker process died unexpectedly")."""
    for line in errors:
        if "No space left on device" in line or "Disk quota exceeded" in line:
            return line
    return errors[0] if errors else "see its output"


@contextlib.contextmanager
def _globals_started(major: int, path: Path, env: dict[str, str], superuser: bool) -> Iterator[subprocess.Popen]:
    """pg_dumpall --globals-only (roles, tablespaces) started into `path`; stopped if the block ends early."""
    pg_dumpall = pg_tool("pg_dumpall", major)
    args = [str(pg_dumpall), "--globals-only", "--file", str(path), "--no-password"]
    if not superuser:
        args.append("--no-role-passwords")  # pg_authid is superuser-only
    try:
        proc = start_tool(args, env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise ExecutionError(f"pg_dumpall could not start: {e}") from e
    with stopped_on_exit(proc):
        yield proc


def _globals_finished(proc: subprocess.Popen, last_try: bool = False) -> bool:
    """Whether pg_dumpall succeeded; its error on the last try."""
    _out, err = proc.communicate()
    if proc.returncode != 0 and last_try:
        raise ExecutionError(f"pg_dumpall --globals-only failed: {_cause(err.strip().splitlines())}")
    return proc.returncode == 0
