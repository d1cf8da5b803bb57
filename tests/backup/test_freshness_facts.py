"""Which backups answer "is there a recent verified backup of this database?" (backup-freshness): a
verified logical full backup of it, or a verified physical backup of its server; the size comparison
(backup-size-drop) only between logical full backups of the database. Manifests written as the
backup commands write them, no server needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from civicq_ops.backup.inventory import backup_facts
from civicq_ops.backup.manifest import ALL_DATABASES, Manifest, write_manifest

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SERVER = "7300000000000000001"


def backup(root: Path, name: str, *, hours_ago: float, kind: str = "full", database: str = "civicq",
           verified: bool = True, size: int = 1000, server: str = SERVER) -> Manifest:
    finished = NOW - timedelta(hours=hours_ago)
    m = Manifest(id=name, target="prod", database=database, format="plain" if kind.startswith("physical") else "custom",
                 started_at=(finished - timedelta(minutes=5)).isoformat(), finished_at=finished.isoformat(),
                 duration_s=300, server_version="18.1", pg_dump_version="18.1", system_identifier=server,
                 size_bytes=size, kind=kind,
                 verification={"at": finished.isoformat(), "ok": True, "level": "checksums", "problems": []}
                 if verified else None)
    (root / name).mkdir(parents=True)
    write_manifest(root / name, m)
    return m


def test_a_verified_physical_backup_of_the_server_counts_for_freshness(tmp_path):
    backup(tmp_path, "logical-old", hours_ago=60, size=5000)
    backup(tmp_path, "base-last-night", hours_ago=3, kind="physical", database=ALL_DATABASES, size=90_000)
    facts = backup_facts(tmp_path, (SERVER, "civicq"), now=NOW)
    assert facts["latest_id"] == "base-last-night" and facts["age_s"] == 3 * 3600
    assert facts["verified_count"] == 2
    assert facts["size_bytes"] == 5000 and facts["previous_size_bytes"] is None  # sizes: logical fulls only


def test_physical_backups_alone_judge_freshness_without_a_size(tmp_path):
    backup(tmp_path, "base", hours_ago=1, kind="physical", database=ALL_DATABASES)
    facts = backup_facts(tmp_path, (SERVER, "civicq"), now=NOW)
    assert facts["judged"] and facts["latest_id"] == "base" and facts["size_bytes"] is None


def test_unverified_or_foreign_physical_backups_do_not_count(tmp_path):
    backup(tmp_path, "logical", hours_ago=30)
    backup(tmp_path, "unverified-base", hours_ago=1, kind="physical", database=ALL_DATABASES, verified=False)
    backup(tmp_path, "other-server-base", hours_ago=1, kind="physical", database=ALL_DATABASES, server="1")
    facts = backup_facts(tmp_path, (SERVER, "civicq"), now=NOW)
    assert facts["latest_id"] == "logical" and facts["age_s"] == 30 * 3600 and facts["verified_count"] == 1


def test_a_newer_logical_backup_is_the_latest_over_an_older_physical_one(tmp_path):
    backup(tmp_path, "base", hours_ago=20, kind="physical", database=ALL_DATABASES)
    backup(tmp_path, "logical", hours_ago=2)
    assert backup_facts(tmp_path, (SERVER, "civicq"), now=NOW)["latest_id"] == "logical"
