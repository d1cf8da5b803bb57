"""The backups folder: what is there, complete or not."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicq_ops.backup.manifest import (
    ALL_DATABASES,
    PHYSICAL_KINDS,
    Manifest,
    ManifestError,
    read_manifest,
    write_manifest,
)
from civicq_ops.core.errors import InputError


@dataclass
class Entry:
    path: Path
    manifest: Manifest | None
    problem: str | None = None  # why it is not a usable backup

    @property
    def in_progress(self) -> bool:
        if not self.path.name.endswith(".partial"):
            return False
        try:
            pid = int((self.path / "pid").read_text())
            os.kill(pid, 0)
            return True
        except (OSError, ValueError):
            return False


def scan(root: Path) -> list[Entry]:
    """Every backup folder, complete ones first by completion time, then the others."""
    entries: list[Entry] = []
    if not root.is_dir():
        return entries
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        if path.name.endswith(".partial"):
            entries.append(Entry(path, None, "unfinished (no manifest yet)"))
            continue
        try:
            entries.append(Entry(path, read_manifest(path)))
        except ManifestError as e:
            entries.append(Entry(path, None, str(e)))
    return entries


Identity = tuple  # (system identifier, database): which server's database a backup is of


def target_identity(project, target) -> Identity:
    """The target's server (system identifier) and database, asked from the server itself: backups are
    matched by these, never by the target's name (two names can reach one database, one name can move)."""
    from civicq_ops.postgres.connect import connect, one_row
    from civicq_ops.postgres.probe import system_identifier

    with connect(project, target, autocommit=True) as conn:
        return (system_identifier(conn), one_row(conn.execute("SELECT current_database()"))[0])


def complete(root: Path, identity: Identity | None = None, kind: str | None = None) -> list[Manifest]:
    """Backups with a valid manifest, oldest first by recorded completion time; optionally only those
    of one (server, database) and one kind."""
    found = [e.manifest for e in scan(root) if e.manifest is not None]
    if identity is not None:
        found = [m for m in found if m.identity == tuple(identity)]
    if kind is not None:
        found = [m for m in found if m.kind == kind]
    return sorted(found, key=lambda m: m.finished_at)


def find(root: Path, backup_id: str | None, latest: bool = False, identity: Identity | None = None,
         kind: str = "full") -> tuple[Path, Manifest]:
    """A backup by id, or with `latest` the newest complete `kind` backup of `identity`."""
    if latest:
        if identity is None:
            raise InputError("--latest needs the target's identity (server and database)")
        backups = complete(root, identity, kind)
        if not backups:
            raise InputError(f"no complete {kind} backup of database {identity[1]} on this server "
                             f"(system identifier {identity[0]}) in {root}")
        m = backups[-1]
        return root / m.id, m
    for m in complete(root):
        if m.id == backup_id:
            return root / m.id, m
    for e in scan(root):
        if e.path.name in (backup_id, f"{backup_id}.partial"):
            raise InputError(f"backup {backup_id} is not usable: {e.problem}")
    raise InputError(f"no backup {backup_id} in {root} (see `civicq-ops backup list`)")


def update(root: Path, manifest: Manifest) -> None:
    write_manifest(root / manifest.id, manifest)


def backup_facts(root: Path, identity: Identity, now=None, expect: str | None = None) -> dict:
    """What the backup checks need: the newest verified full backup of this server's database, its
    age and size, and the size of the verified full backup before it (a sudden drop means tables went
    missing). `judged` is False, with `unjudged_reason`, when civicq-ops cannot tell: the target's
    backups are taken elsewhere (`backups.expect: external`), there are none by design (`none`), or
    nothing says civicq-ops takes them (no declaration and no civicq-ops backup of this database)."""
    from datetime import UTC, datetime

    now = now or datetime.now(UTC)
    full = complete(root, identity, "full")
    verified = [m for m in full if m.verified]
    # A verified physical backup of the server holds this database too: it counts for freshness,
    # never for the size comparison (its size is the whole server's).
    physical = [m for m in complete(root, (identity[0], ALL_DATABASES))
                if m.kind in PHYSICAL_KINDS and m.verified]
    facts: dict[str, Any] = {"verified_count": len(verified), "age_s": None, "size_bytes": None,
                             "previous_size_bytes": None, "latest_id": None, "judged": True, "unjudged_reason": None}
    database = identity[1]
    if expect == "external":
        facts.update(judged=False, unjudged_reason=f"backups of {database} are taken outside civicq-ops "
                     "(backups.expect: external): judge them with the tool that takes them")
    elif expect == "none":
        facts.update(judged=False, unjudged_reason=f"{database} is declared to have no backups (backups.expect: none)")
    elif expect is None and not full and not physical:
        facts.update(judged=False, unjudged_reason=(
            f"no evidence: no civicq-ops backup of {database} on this server in {root}, and the target does not "
            "declare `backups: {expect: civicq-ops}` (or `external` when another tool backs it up)"))
    newest = max([*verified[-1:], *physical[-1:]], key=lambda m: m.finished_at, default=None)
    if newest is not None:
        facts.update(age_s=round((now - datetime.fromisoformat(newest.finished_at)).total_seconds(), 1),
                     latest_id=newest.id, verified_count=len(verified) + len(physical))
    if verified:
        facts["size_bytes"] = verified[-1].size_bytes
        if len(verified) > 1:
            facts["previous_size_bytes"] = verified[-2].size_bytes
    return facts
