"""`civicq-ops backup ...` and `civicq-ops restore`: thin wrappers over civicq_ops.backup."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from civicq_ops.cli.common import emit, exit_with
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
    compress: Annotated[str | None, typer.Option("--compress", help="gzip[:LEVEL], lz4 or zstd when pg_dump has them, none.")] = None,
    schema_only: Annotated[bool, typer.Option("--schema-only")] = False,
    data_only: Annotated[bool, typer.Option("--data-only")] = False,
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")] = None,
    exclude_table: Annotated[list[str] | None, typer.Option("--exclude-table", help="Leave this table out (repeatable).")] = None,
    lock_wait_timeout: Annotated[str, typer.Option("--lock-wait-timeout", help="Give up when a table lock takes longer.")] = "30s",
    no_globals: Annotated[bool, typer.Option("--no-globals", help="Skip pg_dumpall --globals-only.")] = False,
) -> None:
    """Back up the target's database: atomic, checksummed, with a manifest.

    Example: civicq-ops backup create --compress gzip:6
    """
    from civicq_ops.backup.create import BackupOptions, create_backup

    s = _s(ctx)
    cfg = s.project.backups
    options = BackupOptions(format=fmt or cfg.format, jobs=jobs or cfg.jobs, compress=compress or cfg.compress,
                            schema_only=schema_only, data_only=data_only,
                            tables=table or [], exclude_tables=exclude_table or [], lock_wait_timeout=lock_wait_timeout,
                            globals=not no_globals)
    with progress(s.quiet, "tables") as show:
        m = create_backup(s.project, s.target(), options, progress=show)
    from civicq_ops.core.units import format_bytes

    emit(f"backup {m.id}: {format_bytes(m.size_bytes)} in {m.duration_s:.1f}s, {len(m.tables)} tables, "
         f"{len(m.files)} files checksummed\n")


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

    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import scan
    from civicq_ops.core.units import format_bytes

    entries = scan(backups_dir(_s(ctx).project))
    usable = sorted((e.manifest for e in entries if e.manifest), key=lambda m: m.finished_at)
    if fmt == "json":
        emit(json.dumps([{"id": m.id, "finished_at": m.finished_at, "size_bytes": m.size_bytes,
                          "duration_s": m.duration_s, "verification": m.verification,
                          "pinned": m.pinned, "target": m.target} for m in usable], indent=2) + "\n")
        return
    rows = [[m.id, m.finished_at[:19], format_bytes(m.size_bytes), f"{m.duration_s:.1f}s",
             _verified(m), m.pinned or ""] for m in usable]
    if all_:
        rows += [[e.path.name, "", "", "", "in progress" if e.in_progress else f"unusable: {e.problem}", ""]
                 for e in entries if not e.manifest]
    emit(tabulate(rows, headers=["id", "finished (UTC)", "size", "took", "verified", "pinned"]) + "\n")


def _verified(m) -> str:
    v = m.verification
    if not v:
        return "never"
    return f"{'ok' if v['ok'] else 'FAILED'} ({v['level']}, {v['at'][:16]})"


@app.command()
def verify(
    ctx: typer.Context,
    backup_id: Annotated[str | None, typer.Argument(metavar="ID")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="The newest complete backup.")] = False,
    restore: Annotated[bool, typer.Option("--restore", help="Also restore into a scratch database and compare row counts.")] = False,
) -> None:
    """Verify a backup: checksums, a full read of the archive, optionally a test restore. Exit 1 if damaged.

    Example: civicq-ops backup verify --latest --restore
    """
    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import find
    from civicq_ops.backup.restore import verify_backup
    from civicq_ops.core.errors import InputError

    s = _s(ctx)
    if not backup_id and not latest:
        raise InputError("name a backup ID or pass --latest")
    folder, manifest = find(backups_dir(s.project), backup_id, latest)
    result = verify_backup(s.project, s.target(), folder, manifest, restore=restore)
    for p in result.problems:
        emit(f"problem: {p}\n")
    emit(f"backup {manifest.id}: {'verified' if result.ok else 'DAMAGED'} ({result.level}, {result.seconds:.1f}s)\n")
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
    """Apply the retention policy of civicq-ops.yaml; a dry run that explains itself unless --yes.

    Example: civicq-ops backup cleanup --yes
    """
    import shutil

    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import complete
    from civicq_ops.backup.retention import RetentionPolicy, plan_retention

    s = _s(ctx)
    root = backups_dir(s.project)
    policy = RetentionPolicy.from_config(s.project.backups.retention)
    decisions = plan_retention(complete(root), policy)
    for d in decisions:
        verb = "keep  " if d.keep else ("delete" if yes else "would delete")
        emit(f"{verb} {d.manifest.id}: {'; '.join(d.reasons)}\n")
        if yes and not d.keep:
            shutil.rmtree(root / d.manifest.id)
    gone = sum(1 for d in decisions if not d.keep)
    emit(f"{gone} backup(s) {'deleted' if yes else 'to delete (dry run: pass --yes)'}, "
         f"{len(decisions) - gone} kept\n")


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
) -> None:
    """Restore a backup into a new database (default) or over one with --clean --target-db.

    Example: civicq-ops restore --latest   (or: civicq-ops restore ID --clean --target-db civicq)
    """
    from civicq_ops.backup.create import backups_dir
    from civicq_ops.backup.inventory import find
    from civicq_ops.backup.restore import RestoreOptions, list_contents, restore_backup
    from civicq_ops.core.errors import InputError

    s = _s(ctx)
    if not backup_id and not latest:
        raise InputError("name a backup ID or pass --latest")
    if clean and not target_db:
        raise InputError("--clean needs --target-db NAME: name the database to overwrite")
    folder, manifest = find(backups_dir(s.project), backup_id, latest)
    if list_only:
        emit(list_contents(folder, manifest))
        return
    with progress(s.quiet, "tables") as show:
        result = restore_backup(s.project, s.target(), folder, manifest,
                                RestoreOptions(target_db=target_db, clean=clean, tables=table or [], schemas=schema or [],
                                               jobs=jobs or s.project.backups.jobs, exit_on_error=exit_on_error), progress=show)
    if result.safety_backup:
        emit(f"safety backup of {result.database}: {result.safety_backup}\n")
    emit(f"restored {manifest.id} into database {result.database} in {result.seconds:.1f}s (analyzed)\n")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backup")
    root.command("restore")(restore_cmd)
