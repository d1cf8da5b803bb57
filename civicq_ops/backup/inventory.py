"""The backups folder: what is there, complete or not."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicq_ops.backup.manifest import Manifest, ManifestError, read_manifest, write_manifest
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


def complete(root: Path, target: str | None = None) -> list[Manifest]:
    """Backups with a valid manifest, oldest first by recorded completion time."""
    found = [e.manifest for e in scan(root) if e.manifest is not None]
    if target:
        found = [m for m in found if m.target == target]
    return sorted(found, key=lambda m: m.finished_at)


def find(root: Path, backup_id: str | None, latest: bool = False, target: str | None = None) -> tuple[Path, Manifest]:
    backups = complete(root, target)
    if latest:
        if not backups:
            raise InputError(f"no complete backup in {root}")
        m = backups[-1]
        return root / m.id, m
    for m in backups:
        if m.id == backup_id:
            return root / m.id, m
    for e in scan(root):
        if e.path.name in (backup_id, f"{backup_id}.partial"):
            raise InputError(f"backup {backup_id} is not usable: {e.problem}")
    raise InputError(f"no backup {backup_id} in {root} (see `civicq-ops backup list`)")


def update(root: Path, manifest: Manifest) -> None:
    write_manifest(root / manifest.id, manifest)


def backup_facts(root: Path, target: str, now=None) -> dict:
    """What the backup-freshness check needs: the newest verified backup's age and size, and the
    size of the verified backup before it (a sudden drop means tables went missing)."""
    from datetime import UTC, datetime

    now = now or datetime.now(UTC)
    verified = [m for m in complete(root, target) if m.verified]
    facts: dict[str, Any] = {"verified_count": len(verified), "age_s": None, "size_bytes": None, "previous_size_bytes": None,
             "latest_id": None}
    if verified:
        latest = verified[-1]
        facts.update(age_s=round((now - datetime.fromisoformat(latest.finished_at)).total_seconds(), 1),
                     size_bytes=latest.size_bytes, latest_id=latest.id)
        if len(verified) > 1:
            facts["previous_size_bytes"] = verified[-2].size_bytes
    return facts
