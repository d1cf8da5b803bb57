"""`civicq-ops backup ...` and `civicq-ops restore`: thin wrappers over civicq_ops.backup."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from civicq_ops.cli.common import emit, exit_with, not_blank, one_of
from civicq_ops.cli.interact import progress
from civicq_ops.cli.session import Session, session_of
from civicq_ops.core.errors import ExitCode

app = typer.Typer(help="Backups: create, list, verify, pin, cleanup.", no_args_is_help=True)


def _s(ctx) -> Session:
    return session_of(ctx)


@app.command()
def create(
    ctx: typer.Context,
    fmt: Annotated[str | None, typer.Option("--format", help="directory (parallel, default) or custom.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Parallel pg_dump jobs (directory format).")] = None,
    compress: Annotated[str | None, typer.Option("--compress", help="gzip[:LEVEL], lz4 or zstd[:LEVEL] when pg_dump has them, none. Default: gzip:1 for directory, gzip:6 (pg_dump's) for custom.")] = None,
    schema_only: Annotated[bool, typer.Option("--schema-only")] = False,
    data_only: Annotated[bool, typer.Option("--data-only")] = False,
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")] = None,
    exclude_table: Annotated[list[str] | None, typer.Option("--exclude-table", help="Leave this table out (repeatable).")] = None,
    lock_wait_timeout: Annotated[str, typer.Option("--lock-wait-timeout", help="Give up when a table lock takes longer.")] = "30s",
    no_globals: Annotated[bool, typer.Option("--no-globals", help="Skip pg_dumpall --globals-only.")] = False,
    physical: Annotated[bool, typer.Option("--physical", help="pg_basebackup of the whole server, verified with pg_verifybackup.")] = False,
    incremental: Annotated[bool, typer.Option("--incremental", help="With --physical: only what changed since the previous physical backup (PostgreSQL 17+, summarize_wal on).")] = False,
    backup_type: Annotated[str | None, typer.Option("--type", help="With --physical: full (default), incr, or diff (pgBackRest only).")] = None,
) -> None:
    """Back up the target's database (pg_dump), or with --physical the whole server (pg_basebackup):
    atomic, checksummed, with a manifest.

    Example: civicq-ops backup create --compress gzip:6   (or: civicq-ops backup create --physical --incremental)
    """
    from civicq_ops.backup.create import BackupOptions, create_backup
    from civicq_ops.core.errors import InputError

    s = _s(ctx)
    if incremental and not physical:
        raise InputError("--incremental needs --physical")
    if backup_type is not None and not physical:
        raise InputError("--type needs --physical")
    if physical and _physical_by_pgbackrest(s, backup_type, incremental):
        return
    if physical:
        from civicq_ops.backup.physical import PhysicalOptions, create_physical_backup
        from civicq_ops.core.units import format_bytes

        m = create_physical_backup(s.project, s.target(), PhysicalOptions(incremental=incremental or backup_type == "incr"))
        on = f" on {m.options['parent']}" if m.options.get("parent") else ""
        emit(f"backup {m.id} ({m.kind}{on}): {format_bytes(m.size_bytes)} in {m.duration_s:.1f}s, "
             f"from WAL {m.options.get('start_lsn')}, verified with pg_verifybackup\n")
        return
    cfg = s.project.backups
    for option, value in (("--format", fmt), ("--compress", compress), ("--lock-wait-timeout", lock_wait_timeout)):
        not_blank(option, value)
    options = BackupOptions(format=fmt if fmt is not None else cfg.format, jobs=jobs if jobs is not None else cfg.jobs,
                            compress=compress if compress is not None else cfg.compress,
                            schema_only=schema_only, data_only=data_only,
                            tables=table or [], exclude_tables=exclude_table or [], lock_wait_timeout=lock_wait_timeout,
                            globals=not no_globals)
    with progress(s.quiet, "tables") as show:
        m = create_backup(s.project, s.target(), options, progress=show)
    from civicq_ops.core.units import format_bytes

    emit(f"backup {m.id} ({m.kind}): {format_bytes(m.size_bytes)} in {m.duration_s:.1f}s, {len(m.tables)} tables, "
         f"{m.format} format, compressed {m.options['compress']}, {len(m.files)} files checksummed\n")


def _physical_by_pgbackrest(s: Session, backup_type: str | None, incremental: bool) -> bool:
    """`backup create --physical` through pgBackRest when the engine says so; False: the native path."""
    from civicq_ops.backup import pgbackrest
    from civicq_ops.core.errors import InputError
    from civicq_ops.core.units import format_bytes

    if backup_type is not None:
        one_of("--type", backup_type, pgbackrest.TYPES)
    if not pgbackrest.delegated(s.project, s.target()):
        if backup_type == "diff":
            raise InputError("--type diff needs pgBackRest (backups.engine: pgbackrest); the native path takes full "
                             "and incremental (--type incr) backups")
        return False
    if incremental and backup_type not in (None, "incr"):
        raise InputError(f"--incremental contradicts --type {backup_type}")
    m = pgbackrest.create_backup(s.project, s.target(), backup_type or ("incr" if incremental else "full"))
    on = f" on {m.options['prior']}" if m.options.get("prior") else ""
    emit(f"backup {m.id} ({m.kind}{on}): {format_bytes(m.size_bytes)} stored "
         f"({format_bytes(m.options['database_size'])} of data) in {m.duration_s:.0f}s, from WAL "
         f"{m.options.get('start_lsn')}, {'verified' if m.verified else 'NOT verified'} with pgbackrest verify\n")
    return True


@app.command("stanza-create")
def stanza_create(ctx: typer.Context) -> None:
    """Create the pgBackRest stanza of backups.pgbackrest for the target's server and check that its WAL
    reaches the repository (the server's archive_command must push to it).

    Example: civicq-ops --target prod15 backup stanza-create
    """
    from civicq_ops.backup import pgbackrest

    s = _s(ctx)
    stanza = pgbackrest.create_stanza(s.project, s.target())
    emit(f"pgBackRest stanza '{stanza}' created and checked: WAL reaches {pgbackrest.settings_of(s.project).repo_path}\n")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    all_: Annotated[bool, typer.Option("--all", help="Also show unfinished and damaged folders.")] = False,
) -> None:
    """List backups: id, time, size, duration, verification.

    Example: civicq-ops backup list --format json
    """
    from tabulate import tabulate

    from civicq_ops.backup import pgbackrest
    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import scan
    from civicq_ops.core.units import format_bytes

    one_of("--format", fmt, ("text", "json"))
    entries = scan(backups_dir(_s(ctx).project))
    delegated, note = pgbackrest.listed(_s(ctx).project)
    if note:
        typer.echo(f"note: no pgBackRest backups listed: {note}", err=True)
    usable = sorted([*(e.manifest for e in entries if e.manifest is not None), *delegated], key=lambda m: m.finished_at)
    if fmt == "json":
        emit(json.dumps([{"id": m.id, "kind": m.kind, "finished_at": m.finished_at,
                          "size_bytes": m.size_bytes, "duration_s": m.duration_s, "format": m.format,
                          "compress": _compression(m),
                          "verification": m.verification, "pinned": m.pinned,
                          "target": m.target, "database": m.database,
                          "system_identifier": m.system_identifier, "tool": m.tool,
                          "details": m.options if m.tool == "pgbackrest" else None,
                          "tables": [f"{t['schema']}.{t['name']}" for t in m.tables]} for m in usable],
                        indent=2) + "\n")
        return
    rows = [[m.id, m.kind, m.database, len(m.tables), m.finished_at[:19],
             format_bytes(m.size_bytes), _compression(m) or "", f"{m.duration_s:.1f}s", _verified(m),
             m.pinned or ""] for m in usable]
    if all_:
        rows += [[e.path.name, "", "", "", "", "", "", "", "in progress" if e.in_progress else f"unusable: {e.problem}",
                  ""] for e in entries if not e.manifest]
    emit(tabulate(rows, headers=["id", "kind", "database", "tables", "finished (UTC)", "size", "compression", "took",
                                 "verified", "pinned"]) + "\n")


def _compression(m) -> str | None:
    """How a logical backup's dump is compressed (`gzip:1`, `none`); for one made before the manifest said
    so, pg_dump's default; None for physical and pgBackRest backups."""
    if m.tool != "civicq-ops" or m.format not in ("custom", "directory"):
        return None
    return m.options.get("compress") or "pg_dump's default"


def _verified(m) -> str:
    v = m.verification
    if not v:
        return "never"
    return f"{'ok' if v['ok'] else 'FAILED'} ({v['level']}, {v['at'][:16]})"


@app.command()
def verify(
    ctx: typer.Context,
    backup_id: Annotated[str | None, typer.Argument(metavar="ID")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="The newest full backup of the target's server and database.")] = False,
    restore: Annotated[bool, typer.Option("--restore", help="Also restore into a scratch database and compare row counts.")] = False,
) -> None:
    """Verify a backup: checksums, a full read of the archive, optionally a test restore. Exit 1 if damaged.

    Example: civicq-ops backup verify --latest --restore
    """
    from civicq_ops.backup import pgbackrest
    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import find, target_identity
    from civicq_ops.backup.restore import verify_backup
    from civicq_ops.core.errors import InputError

    s = _s(ctx)
    if not backup_id and not latest:
        raise InputError("name a backup ID or pass --latest")
    if pgbackrest.names_a_set(s.project, backup_id):
        if restore:
            raise InputError("--restore is for logical backups: test a pgBackRest backup with `restore --physical`")
        _verdict(str(backup_id), pgbackrest.verify_set(s.project, str(backup_id)))
        return
    identity = target_identity(s.project, s.target()) if latest else None
    folder, manifest = find(backups_dir(s.project), backup_id, latest, identity=identity)
    _verdict(manifest.id, verify_backup(s.project, s.target(), folder, manifest, restore=restore))


def _verdict(backup_id: str, result) -> None:
    """A verification's notes, problems and one-line verdict; exit 1 when the backup is damaged."""
    for note in result.notes:
        emit(f"note: {note}\n")
    for problem in result.problems:
        emit(f"problem: {problem}\n")
    emit(f"backup {backup_id}: {'verified' if result.ok else 'DAMAGED'} ({result.level}, {result.seconds:.1f}s)\n")
    exit_with(ExitCode.OK if result.ok else ExitCode.GATE_FAILED)


@app.command()
def pin(
    ctx: typer.Context,
    backup_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason", help="Why it must be kept.")],
) -> None:
    """Keep a backup whatever the retention policy says (`--reason ''` unpins).

    Example: civicq-ops backup pin civicq-20261125T020000000Z --reason "before the 2.0 migration"
    """
    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import find, update

    root = backups_dir(_s(ctx).project)
    _, manifest = find(root, backup_id)
    manifest.pinned = reason or None
    update(root, manifest)
    emit(f"backup {backup_id}: {'pinned (' + reason + ')' if reason else 'unpinned'}\n")


@app.command()
def cleanup(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Delete; without it this is a dry run.")] = False,
) -> None:
    """Apply the retention policy of civicq-ops.yaml to each server, database and kind of backup; a dry
    run that explains itself unless --yes. Also removes unfinished attempts whose process is gone.

    Example: civicq-ops backup cleanup --yes
    """
    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.retention import RetentionPolicy, apply_retention

    s = _s(ctx)
    policy = RetentionPolicy.from_config(s.project.backups.retention)
    result = apply_retention(backups_dir(s.project), policy, delete=yes, wal_archive=_wal_archive(s))
    for d in result.decisions:
        verb = "keep  " if d.keep else ("delete" if yes else "would delete")
        emit(f"{verb} {d.manifest.id} ({d.manifest.kind}, {d.manifest.database}): {'; '.join(d.reasons)}\n")
    for name in result.stale:
        emit(f"{'delete' if yes else 'would delete'} {name}: unfinished, its process is gone\n")
    if result.wal:
        emit(f"{'deleted' if yes else 'would delete'} {len(result.wal)} archived WAL file(s) older than the oldest "
             "kept physical backup\n")
    gone = sum(1 for d in result.decisions if not d.keep)
    emit(f"{gone} backup(s) {'deleted' if yes else 'to delete (dry run: pass --yes)'}, "
         f"{len(result.decisions) - gone} kept\n")


def _wal_archive(s: Session):
    """The target's WAL archive, or None when it has none configured (nothing to prune)."""
    from civicq_ops.core.errors import InputError
    from civicq_ops.postgres.connect import wal_archive_dir

    try:
        return wal_archive_dir(s.project, s.target())
    except InputError:
        return None


def restore_cmd(
    ctx: typer.Context,
    backup_id: Annotated[str | None, typer.Argument(metavar="ID")] = None,
    latest: Annotated[bool, typer.Option("--latest")] = False,
    target_db: Annotated[str | None, typer.Option("--target-db", help="Restore into this database.")] = None,
    clean: Annotated[bool, typer.Option("--clean", help="Drop and recreate objects (needs --target-db; takes a safety backup).")] = False,
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")] = None,
    schema: Annotated[list[str] | None, typer.Option("--schema", help="Only this schema (repeatable).")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Parallel pg_restore jobs (default: backups.jobs, else 2).")] = None,
    list_only: Annotated[bool, typer.Option("--list", help="Show the archive's contents; restore nothing.")] = False,
    exit_on_error: Annotated[bool, typer.Option("--exit-on-error/--keep-going")] = True,
    force: Annotated[bool, typer.Option("--force", help="Restore even though the checksums do not match.")] = False,
    physical: Annotated[bool, typer.Option("--physical", help="A physical backup, into a NEW local cluster on a free port.")] = False,
    to_time: Annotated[str | None, typer.Option("--to-time", help="With --physical: recover up to this time (e.g. '2026-12-01 22:00:00+00').")] = None,
    to_lsn: Annotated[str | None, typer.Option("--to-lsn", help="With --physical: recover up to this WAL location.")] = None,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="With --physical: replay every archived WAL segment.")] = False,
    port: Annotated[int | None, typer.Option("--port", help="With --physical: the new cluster's port (default: a free one).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm restoring another server's or database's backup, or over a production target.")] = False,
) -> None:
    """Restore a backup into a new database (default) or over one with --clean --target-db.

    Example: civicq-ops restore --latest   (or: civicq-ops restore ID --clean --target-db civicq)
    """
    from dataclasses import replace

    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import find, target_identity
    from civicq_ops.backup.restore import NeedsConfirmation, RestoreOptions, list_contents, restore_backup
    from civicq_ops.cli.interact import confirm_or_refuse
    from civicq_ops.core.errors import InputError

    s = _s(ctx)
    if not backup_id and not latest:
        raise InputError("name a backup ID or pass --latest")
    if clean and not target_db:
        raise InputError("--clean needs --target-db NAME: name the database to overwrite")
    jobs = jobs if jobs is not None else s.project.backups.jobs
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1 (got {jobs})")
    if physical:
        _restore_physical(s, backup_id, latest, to_time, to_lsn, to_latest, port)
        return
    identity = target_identity(s.project, s.target()) if latest else None
    folder, manifest = find(backups_dir(s.project), backup_id, latest, identity=identity)
    if list_only:
        emit(list_contents(folder, manifest))
        return
    options = RestoreOptions(target_db=target_db, clean=clean, tables=table or [], schemas=schema or [], jobs=jobs,
                             exit_on_error=exit_on_error, force=force, confirmed=yes)
    with progress(s.quiet, "tables") as show:
        try:
            result = restore_backup(s.project, s.target(), folder, manifest, options, progress=show)
        except NeedsConfirmation as e:
            confirm_or_refuse(e.question, yes=yes)
            result = restore_backup(s.project, s.target(), folder, manifest, replace(options, confirmed=True),
                                    progress=show)
    if result.safety_backup:
        emit(f"safety backup of {result.database}: {result.safety_backup}\n")
    emit(f"restored {manifest.id} into database {result.database} in {result.seconds:.1f}s (analyzed)\n")


def _restore_physical(s: Session, backup_id, latest, to_time, to_lsn, to_latest, port) -> None:
    from civicq_ops.backup import pgbackrest
    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import find
    from civicq_ops.backup.physical import PitrOptions, latest_physical, restore_physical

    root = backups_dir(s.project)
    options = PitrOptions(to_time=to_time, to_lsn=to_lsn, to_latest=to_latest, port=port)
    if pgbackrest.names_a_set(s.project, backup_id) or (latest and pgbackrest.delegated(s.project, s.target())):
        r = pgbackrest.restore_set(s.project, s.target(), None if latest else backup_id, options)
    else:
        if latest:
            manifest = latest_physical(s.project, s.target())
            folder = root / manifest.id
        else:
            folder, manifest = find(root, backup_id)
        r = restore_physical(s.project, s.target(), folder, manifest, options)
    emit(f"restored {' + '.join(r.chain)} into a new cluster: {r.data_dir}, port {r.port} "
         f"(timeline {r.timeline}, WAL {r.lsn}) in {r.seconds:.1f}s\n")
    for line in r.recovered:
        emit(f"  {line}\n")
    emit(f"connect: psql -h 127.0.0.1 -p {r.port} -U {r.conninfo['user']}; stop: pg_ctl -D {r.data_dir} stop\n")


wal_app = typer.Typer(help="The WAL archive for point-in-time recovery (archive_command, restore_command).",
                      no_args_is_help=True)


@wal_app.command("archive")
def wal_archive_cmd(
    path: Annotated[str, typer.Argument(metavar="%p")],
    name: Annotated[str, typer.Argument(metavar="%f")],
    archive_dir: Annotated[str, typer.Option("--dir", help="The archive folder (one sub-folder per server).")],
) -> None:
    """Archive one WAL file: atomic, fsynced, checksummed; the same content again is fine, different
    content is an error (exit 3). Run by the server from its data directory.

    Example: archive_command = 'civicq-ops wal archive --dir /srv/wal %p %f'
    """
    _wal("archive", archive_dir, path, name)


@wal_app.command("restore")
def wal_restore_cmd(
    name: Annotated[str, typer.Argument(metavar="%f")],
    path: Annotated[str, typer.Argument(metavar="%p")],
    archive_dir: Annotated[str, typer.Option("--dir", help="One server's folder in the archive.")],
) -> None:
    """Copy one archived WAL file back, checksum checked (exit 1 when it is not in the archive).

    Example: restore_command = 'civicq-ops wal restore --dir /srv/wal/7312... %f %p'
    """
    _wal("restore", archive_dir, name, path)


def _wal(op: str, archive_dir: str, first: str, second: str) -> None:
    """One call into postgres.wal_archive (the same code the server runs as a plain script)."""
    from civicq_ops.postgres.wal_archive import main

    exit_with(ExitCode(main([op, archive_dir, first, second])))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backup")
    root.add_typer(wal_app, name="wal")
    root.command("restore")(restore_cmd)
