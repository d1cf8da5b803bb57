"""The manifest: what a backup holds, how it was made, and the checksums that prove it intact.

A backup directory is real only when its manifest is in place: the manifest is written last and
renamed into place, and it carries a checksum of itself, so a half-written or edited manifest is
detected like a damaged dump.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from civicq_ops.core.fileio import write_atomic

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: `kind`
ALL_DATABASES = "*"  # the database of a physical backup: the whole server
PHYSICAL_KINDS = ("physical", "physical-incremental")
KINDS = ("full", "partial", "schema-only", "data-only", "safety")


@dataclass
class FileEntry:
    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    id: str
    target: str
    database: str
    format: str  # directory | custom
    started_at: str
    finished_at: str
    duration_s: float
    server_version: str
    pg_dump_version: str
    system_identifier: str | None
    options: dict = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)  # schema, name, rows (exact at the dump's snapshot)
    globals_file: str | None = None
    size_bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    exit_status: int = 0
    pinned: str | None = None  # reason
    verification: dict | None = None  # {at, ok, level: checksums|read|restore, detail}
    tool: str = "civicq-ops"
    format_version: int = FORMAT_VERSION
    # full | partial (--table/--exclude-table) | schema-only | data-only | safety (taken by restore
    # before an overwrite). Only full backups are "the latest", satisfy freshness and compare sizes.
    kind: str = "full"

    @property
    def identity(self) -> tuple[str | None, str]:
        """The server (system identifier) and database it came from: what backups are matched by."""
        return (self.system_identifier, self.database)

    @property
    def dump_path(self) -> str:
        return "dump" if self.format == "directory" else "dump.custom"

    @property
    def verified(self) -> bool:
        return bool(self.verification and self.verification.get("ok"))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        data = dict(data)
        data.setdefault("kind", kind_of(data.get("options") or {}))  # format 1 had no kind
        data["files"] = [FileEntry(**f) for f in data.get("files", [])]
        return cls(**data)


def kind_of(options: dict) -> str:
    """The kind a backup made with these pg_dump options is."""
    if options.get("schema_only"):
        return "schema-only"
    if options.get("data_only"):
        return "data-only"
    if options.get("tables") or options.get("exclude_tables"):
        return "partial"
    return "full"


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


def write_manifest(folder: Path, manifest: Manifest) -> None:
    data = manifest.to_dict()
    data["manifest_sha256"] = hashlib.sha256(_canonical(data)).hexdigest()
    write_atomic(folder / MANIFEST, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class ManifestError(ValueError):
    """The manifest is missing, unreadable or does not match its own checksum."""


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{folder.name}: no manifest (an unfinished or foreign backup)") from None
    except (OSError, ValueError) as e:
        raise ManifestError(f"{folder.name}: unreadable manifest ({e})") from e
    claimed = data.pop("manifest_sha256", None)
    if claimed != hashlib.sha256(_canonical(data)).hexdigest():
        raise ManifestError(f"{folder.name}: the manifest does not match its own checksum (edited or damaged)")
    try:
        manifest = Manifest.from_dict(data)
    except TypeError as e:
        raise ManifestError(f"{folder.name}: the manifest has unexpected fields ({e})") from e
    if manifest.id != folder.name:  # a renamed copy, or an id forged to point elsewhere
        raise ManifestError(f"{folder.name}: the manifest's id '{manifest.id}' differs from its folder "
                            f"(a renamed copy or an edited manifest): treated as damaged")
    return manifest


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder below `folder`, then `folder` itself."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checksum_files(folder: Path, names: list[str]) -> list[FileEntry]:
    entries = []
    for name in names:
        base = folder / name
        paths = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for p in paths:
            entries.append(FileEntry(str(p.relative_to(folder)), p.stat().st_size, sha256_file(p)))
    return entries
