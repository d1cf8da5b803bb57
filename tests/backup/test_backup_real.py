"""Backups against real PostgreSQL 15 and 18: round trips, interrupted dumps, damaged files,
refusals, and the safety backup before an overwrite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from civicq_ops.backup.create import BackupOptions, backups_dir, create_backup
from civicq_ops.backup.inventory import complete, find, scan
from civicq_ops.backup.restore import RestoreOptions, restore_backup, verify_backup
from civicq_ops.civicq.schema_doc import render_schema_reference
from civicq_ops.config import load_project
from civicq_ops.core.errors import MissingBinary, PlanRefused
from tests.fixtures.pg import REPO


@pytest.fixture
def project(tmp_path, civicq_db):
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\npaths: {{checks: ['{REPO / 'checks'}']}}\ntargets:\n"
        f"  src: {{url: '{civicq_db.url}', environment: development, backups: {{expect: civicq-ops}}}}\n"
        "backups: {dir: backups, jobs: 2, retention: {keep_last: 1, keep_daily: 0, keep_weekly: 0, keep_monthly: 0}}\n")
    p = load_project(tmp_path / "civicq-ops.yaml", env={})
    return p, p.target("src")


def counts(database) -> dict:
    with database.connect() as conn:
        tables = conn.execute("SELECT relname FROM pg_stat_user_tables ORDER BY 1").fetchall()
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for (t,) in tables}


@pytest.mark.parametrize("fmt, compress", [("directory", None), ("custom", "gzip:6"), ("directory", "none")])
def test_round_trip_restores_identical_rows_and_schema(project, civicq_db, fmt, compress):
    p, target = project
    m = create_backup(p, target, BackupOptions(format=fmt, compress=compress))
    assert [e.manifest.id for e in scan(backups_dir(p))] == [m.id]
    assert {t["name"]: t["rows"] for t in m.tables}["votes"] == counts(civicq_db)["votes"]
    folder, manifest = find(backups_dir(p), m.id)
    result = restore_backup(p, target, folder, manifest, RestoreOptions())
    restored = type(civicq_db)(civicq_db.cluster, result.database)
    assert counts(restored) == counts(civicq_db)
    with civicq_db.connect() as a, restored.connect() as b:
        assert render_schema_reference(a) == render_schema_reference(b)


def test_verify_with_restore_compares_row_counts_and_records_it(project):
    p, target = project
    m = create_backup(p, target, BackupOptions())
    folder, manifest = find(backups_dir(p), m.id)
    result = verify_backup(p, target, folder, manifest, restore=True)
    assert result.ok and result.level == "restore"
    assert find(backups_dir(p), m.id)[1].verification["ok"] is True


@pytest.mark.parametrize("fmt, compress", [("directory", None), ("directory", "none"), ("custom", None)])
def test_truncated_or_corrupted_file_fails_verify(project, fmt, compress):
    p, target = project
    m = create_backup(p, target, BackupOptions(format=fmt, compress=compress))
    folder, manifest = find(backups_dir(p), m.id)
    victim = max((folder / f.path for f in manifest.files if "globals" not in f.path), key=lambda x: x.stat().st_size)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    result = verify_backup(p, target, folder, manifest)
    assert not result.ok and any("bytes" in x or "checksum" in x for x in result.problems)
    victim.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])  # same size, one byte flipped
    result = verify_backup(p, target, folder, find(backups_dir(p), m.id)[1])
    assert not result.ok and any("checksum" in x for x in result.problems)


def test_a_damaged_archive_with_matching_checksums_fails_the_full_read(project):
    """The read step catches what a checksum cannot: an archive that was bad when written."""
    p, target = project
    m = create_backup(p, target, BackupOptions(format="custom"))
    folder, manifest = find(backups_dir(p), m.id)
    archive = folder / "dump.custom"
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    from civicq_ops.backup.manifest import sha256_file

    for f in manifest.files:  # forge the checksums, as if the dump itself had been cut short
        if f.path == "dump.custom":
            f.size, f.sha256 = archive.stat().st_size, sha256_file(archive)
    result = verify_backup(p, target, folder, manifest)
    assert not result.ok and "pg_restore cannot read the archive" in result.problems[0]


def test_killed_backup_leaves_nothing_listed(project, civicq_db, tmp_path):
    p, target = project
    from civicq_ops.civicq.seeding import seed

    seed(*civicq_db.project(), scale=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    proc = subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(tmp_path / "civicq-ops.yaml"),
                             "--target", "src", "backup", "create", "--format", "custom"], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = backups_dir(p)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(root.glob("*.partial")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert complete(root) == []
    assert [e.problem for e in scan(root)] == ["unfinished (no manifest yet)"]


def test_restore_over_an_existing_database_needs_the_flags_and_takes_a_safety_backup_first(project, civicq_db):
    p, target = project
    m = create_backup(p, target, BackupOptions(format="custom"))
    folder, manifest = find(backups_dir(p), m.id)
    with pytest.raises(PlanRefused, match="needs --clean and --target-db"):
        restore_backup(p, target, folder, manifest, RestoreOptions(target_db=civicq_db.name))
    with civicq_db.connect() as conn:
        conn.execute("DELETE FROM votes WHERE id % 2 = 0")
    before = len(complete(backups_dir(p)))
    result = restore_backup(p, target, folder, manifest, RestoreOptions(target_db=civicq_db.name, clean=True))
    safety = find(backups_dir(p), result.safety_backup)[1]
    assert len(complete(backups_dir(p))) == before + 1
    assert safety.finished_at < datetime_now_iso()
    assert counts(civicq_db)["votes"] == {t["name"]: t["rows"] for t in m.tables}["votes"]


def test_restore_refuses_while_other_sessions_are_connected(project, civicq_db):
    p, target = project
    m = create_backup(p, target, BackupOptions(format="custom"))
    folder, manifest = find(backups_dir(p), m.id)
    with civicq_db.connect():
        with pytest.raises(PlanRefused, match="other session"):
            restore_backup(p, target, folder, manifest, RestoreOptions(target_db=civicq_db.name, clean=True))


def test_pg_dump_older_than_the_server_is_refused_naming_both_versions(monkeypatch, pg_cluster):
    pg15 = Path("/usr/lib/postgresql/15/bin")
    if not (pg15 / "pg_dump").exists():
        pytest.skip("PostgreSQL 15 client is not installed")
    from civicq_ops.postgres import binaries

    monkeypatch.setattr(binaries, "candidate_client_dirs", lambda extra=None: [pg15])
    with pytest.raises(MissingBinary, match=r"pg_dump 15\.\d+ at .* is older than the server \(PostgreSQL 18\)"):
        binaries.find_client("pg_dump", min_major=18)


def datetime_now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def _backup_checks(p, target):
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.engine.run import RunOptions, Selection, run_checks
    from civicq_ops.facts import default_providers

    catalog = project_catalog(p).catalog
    result = run_checks(p, [target], catalog, Selection(categories=["backup"]),
                        RunOptions(facts=default_providers(p)))
    return {f.check: f for f in result.findings}


def test_backup_freshness_is_critical_without_a_verified_backup_and_clears_after_one(project):
    p, target = project
    assert _backup_checks(p, target)["backup-freshness"].status == "critical"
    m = create_backup(p, target, BackupOptions(format="custom"))
    assert _backup_checks(p, target)["backup-freshness"].status == "critical"  # not verified yet
    folder, manifest = find(backups_dir(p), m.id)
    assert verify_backup(p, target, folder, manifest).ok
    finding = _backup_checks(p, target)["backup-freshness"]
    assert finding.status == "ok" and finding.evidence["backup_id"] == m.id


def test_backup_size_drop_fires_when_a_backup_shrinks(project, civicq_db):
    p, target = project
    from civicq_ops.civicq.seeding import seed

    seed(*civicq_db.project(), scale=2)
    for _ in range(2):
        m = create_backup(p, target, BackupOptions(format="custom", compress="none", globals=False))
        folder, manifest = find(backups_dir(p), m.id)
        assert verify_backup(p, target, folder, manifest).ok
        with civicq_db.connect() as conn:  # the second backup sees most votes gone
            conn.execute("DELETE FROM votes WHERE id > 200")
    finding = _backup_checks(p, target)["backup-size-drop"]
    assert finding.status in ("warning", "critical") and finding.value > 0.2
