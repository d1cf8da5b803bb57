"""Retention: which backups to keep, and why, and the cleanup that acts on it.

`plan_retention` is a pure function, so a property test can hold it to its promises: per server,
database and kind, the newest backup and the last verified one are never deleted. `apply_retention`
deletes only folders it listed itself, by their own name, inside the backups folder.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from civicq_ops.backup.manifest import Manifest
from civicq_ops.core.errors import ExecutionError


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 7
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6

    @classmethod
    def from_config(cls, section: dict) -> RetentionPolicy:
        return cls(**{k: v for k, v in (section or {}).items() if k in cls.__dataclass_fields__})


@dataclass
class Decision:
    manifest: Manifest
    keep: bool
    reasons: list[str] = field(default_factory=list)


def plan_retention(backups: list[Manifest], policy: RetentionPolicy) -> list[Decision]:
    """Decide for each complete backup, newest first. The policy applies to each (server, database,
    kind) on its own: another target's newer backups, or partial ones, never push a full one out."""
    groups: dict[tuple, list[Manifest]] = defaultdict(list)
    for m in backups:  # a physical chain (full and incrementals) is one group: newest N counts both
        groups[(*m.identity, "physical" if m.kind.startswith("physical") else m.kind)].append(m)
    decisions = [d for group in groups.values() for d in _plan_group(group, policy)]
    _keep_chains(decisions)
    return sorted(decisions, key=lambda d: d.manifest.finished_at, reverse=True)


def _keep_chains(decisions: list[Decision]) -> None:
    """A kept incremental backup keeps every backup it is built on (pg_combinebackup needs them all)."""
    by_id = {d.manifest.id: d for d in decisions}
    for d in sorted(decisions, key=lambda d: d.manifest.finished_at, reverse=True):
        if not d.keep:
            continue
        parent = d.manifest.options.get("parent")
        while parent and parent in by_id:
            p = by_id[parent]
            if not p.keep:
                p.keep, p.reasons = True, []
            note = f"needed by the kept incremental {d.manifest.id}"
            if note not in p.reasons:
                p.reasons.append(note)
            parent = p.manifest.options.get("parent")


def _plan_group(backups: list[Manifest], policy: RetentionPolicy) -> list[Decision]:
    ordered = sorted(backups, key=lambda m: m.finished_at, reverse=True)
    decisions = [Decision(m, False) for m in ordered]
    for i, d in enumerate(decisions[: max(policy.keep_last, 1)]):
        d.reasons.append("newest" if i == 0 else f"one of the newest {policy.keep_last}")
    for label, count, key in (("daily", policy.keep_daily, _day), ("weekly", policy.keep_weekly, _week),
                              ("monthly", policy.keep_monthly, _month)):
        seen: list[str] = []
        for d in decisions:  # newest first: the newest backup of each period represents it
            period = key(d.manifest)
            if period in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(period)
            d.reasons.append(f"{label} {period}")
    for d in decisions:
        if d.manifest.pinned:
            d.reasons.append(f"pinned: {d.manifest.pinned}")
    verified = [d for d in decisions if d.manifest.verified]
    if verified:
        verified[0].reasons.append("the last verified backup")
    for d in decisions:
        d.keep = bool(d.reasons)
        if not d.keep:
            d.reasons.append("outside every retention rule")
    return decisions


def _when(m: Manifest) -> datetime:
    return datetime.fromisoformat(m.finished_at)


def _day(m: Manifest) -> str:
    return _when(m).strftime("%Y-%m-%d")


def _week(m: Manifest) -> str:
    year, week, _ = _when(m).isocalendar()
    return f"{year}-W{week:02d}"


def _month(m: Manifest) -> str:
    return _when(m).strftime("%Y-%m")


@dataclass
class Cleanup:
    decisions: list[Decision]
    deleted: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # unfinished attempts whose process is gone
    wal: list[str] = field(default_factory=list)  # archived WAL files no kept physical backup can use


def apply_retention(root: Path, policy: RetentionPolicy, delete: bool, wal_archive: Path | None = None) -> Cleanup:
    """Decide, and with `delete` remove what the policy does not keep plus stale `.partial` folders,
    and (given the WAL archive) the segments older than the oldest kept physical backup of their server.
    Each folder is removed by the name it was listed under, after checking it resolves inside `root`."""
    from civicq_ops.backup.inventory import scan

    entries = scan(root)
    listed = {e.manifest.id: e.path for e in entries if e.manifest is not None}
    result = Cleanup(plan_retention([e.manifest for e in entries if e.manifest is not None], policy))
    result.stale = [e.path.name for e in entries if e.path.name.endswith(".partial") and not e.in_progress]
    if wal_archive is not None:
        result.wal = prune_wal(wal_archive, [d.manifest for d in result.decisions if d.keep], delete)
    if not delete:
        return result
    for d in result.decisions:
        if not d.keep:
            _remove(root, listed[d.manifest.id])
            result.deleted.append(d.manifest.id)
    for name in result.stale:
        _remove(root, root / name)
    return result


_WAL_FILE = re.compile(r"^[0-9A-F]{24}(\..*)?$")


def prune_wal(archive_root: Path, kept: list[Manifest], delete: bool) -> list[str]:
    """Archived WAL (segments, their checksums, .backup and .partial files) older than the start of the
    oldest kept physical backup of the same server: no restore from a kept backup can use it. A
    server with no physical backup keeps all its WAL. History files are always kept."""
    gone: list[str] = []
    folders = sorted(p for p in archive_root.iterdir() if p.is_dir()) if archive_root.is_dir() else []
    for folder in folders:
        starts = [m.options["start_wal"] for m in kept
                  if m.kind.startswith("physical") and m.system_identifier == folder.name and m.options.get("start_wal")]
        if not starts:
            continue
        oldest = min(start[8:] for start in starts)  # log and segment number; timelines only go up
        for path in sorted(folder.iterdir()):
            if _WAL_FILE.match(path.name) and path.name[8:24] < oldest:
                gone.append(f"{folder.name}/{path.name}")
                if delete:
                    path.unlink()
    return gone


def _remove(root: Path, folder: Path) -> None:
    real_root, real = root.resolve(), folder.resolve()
    if real.parent != real_root or folder.is_symlink():
        raise ExecutionError(f"refusing to delete {folder}: it is not a folder directly inside {real_root}")
    shutil.rmtree(real)
