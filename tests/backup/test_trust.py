"""Restores you can bet on (issue 13, points 1-11) against real PostgreSQL 15 and 18: checked
before they run, kinds and targets kept apart, safe names and paths, private files, the user's
credentials, no leftovers after a failure or an interrupt."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from civicq_ops.backup.create import BackupOptions, backups_dir, create_backup
from civicq_ops.backup.inventory import backup_facts, complete, find, scan, target_identity
from civicq_ops.backup.manifest import read_manifest, write_manifest
from civicq_ops.backup.restore import RestoreOptions, restore_backup, verify_backup
from civicq_ops.backup.retention import RetentionPolicy, apply_retention
from civicq_ops.core.errors import ExecutionError, InputError, PlanRefused


def databases(cluster) -> set[str]:
    with cluster.admin() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def votes(database) -> int:
    with database.connect() as conn:
        return conn.execute("SELECT count(*) FROM votes").fetchone()[0]


def verified(p, target, m, restore=False):
    folder, manifest = find(backups_dir(p), m.id)
    result = verify_backup(p, target, folder, manifest, restore=restore)
    assert result.ok, result.problems
    return result


# 1. restore checks the manifest's checksums first; failures leave nothing half-done behind.

def test_restore_refuses_a_damaged_backup_naming_the_file(backup_project, civicq_db):
    p = backup_project()
    target = p.target("src")
    m = create_backup(p, target, BackupOptions(format="custom", globals=False))
    folder, manifest = find(backups_dir(p), m.id)
    archive = folder / "dump.custom"
    data = archive.read_bytes()
    archive.write_bytes(data[:200] + bytes([data[200] ^ 0xFF]) + data[201:])
    before = databases(civicq_db.cluster)
    with pytest.raises(PlanRefused, match=r"dump\.custom: checksum mismatch.*--force"):
        restore_backup(p, target, folder, manifest, RestoreOptions())
    with pytest.raises(PlanRefused, match="dump.custom"):
        restore_backup(p, target, folder, manifest, RestoreOptions(target_db=civicq_db.name, clean=True))
    assert databases(civicq_db.cluster) == before
    assert votes(civicq_db) > 0


def test_a_failed_restore_into_a_new_database_drops_it(backup_project, civicq_db):
    p = backup_project()
    target = p.target("src")
    m = create_backup(p, target, BackupOptions(format="custom", data_only=True, globals=False))
    folder, manifest = find(backups_dir(p), m.id)
    before = databases(civicq_db.cluster)
    with pytest.raises(ExecutionError, match="pg_restore failed"):
        restore_backup(p, target, folder, manifest, RestoreOptions())  # data without its tables
    assert databases(civicq_db.cluster) == before


def test_a_failed_clean_restore_says_how_to_restore_the_safety_backup(backup_project, civicq_db):
    p = backup_project()
    target = p.target("src")
    m = create_backup(p, target, BackupOptions(format="custom", globals=False))
    folder, manifest = find(backups_dir(p), m.id)
    with civicq_db.connect() as conn:  # DROP TABLE votes fails: another object depends on it
        conn.execute("CREATE VIEW vote_ids AS SELECT id FROM votes")
    with pytest.raises(ExecutionError) as info:
        restore_backup(p, target, folder, manifest, RestoreOptions(target_db=civicq_db.name, clean=True))
    message = info.value.message
    safety = [x for x in complete(backups_dir(p)) if x.kind == "safety"]
    assert len(safety) == 1
    assert (f"civicq-ops --target src restore {safety[0].id} --clean --target-db {civicq_db.name}"
            in message), message


# 2. Kinds kept apart: only full backups are "the latest", satisfy freshness and compare sizes.

def test_partial_schema_only_and_safety_backups_never_stand_in_for_a_full_one(backup_project, civicq_db):
    p = backup_project()
    target = p.target("src")
    full = create_backup(p, target, BackupOptions(format="custom", globals=False))
    verified(p, target, full)
    partial = create_backup(p, target, BackupOptions(format="custom", tables=["public.votes"], globals=False))
    verified(p, target, partial)
    schema = create_backup(p, target, BackupOptions(format="custom", schema_only=True, globals=False))
    verified(p, target, schema)
    assert (full.kind, partial.kind, schema.kind) == ("full", "partial", "schema-only")
    identity = target_identity(p, target)
    facts = backup_facts(backups_dir(p), identity)
    assert facts["latest_id"] == full.id and facts["previous_size_bytes"] is None
    assert find(backups_dir(p), None, latest=True, identity=identity)[1].id == full.id
    keep = {d.manifest.id for d in apply_retention(backups_dir(p), RetentionPolicy(keep_last=1, keep_daily=0,
                                                                                   keep_weekly=0, keep_monthly=0),
                                                   delete=False).decisions if d.keep}
    assert {full.id, partial.id, schema.id} <= keep  # the newest of each kind


@pytest.fixture
def two_targets(backup_project, db):
    """(project, src, other): `other` is another database on the same server, with one table."""
    p = backup_project(extra_targets=f"  other: {{url: '{db.url}', environment: development}}\n")
    with db.connect() as conn:
        conn.execute("CREATE TABLE t (a int)")
    return p, p.target("src"), p.target("other")


def test_restore_latest_never_picks_a_safety_backup_of_another_database(two_targets, db):
    p, src, other = two_targets
    other_backup = create_backup(p, other, BackupOptions(format="custom", globals=False))
    folder, manifest = find(backups_dir(p), other_backup.id)
    restore_backup(p, other, folder, manifest, RestoreOptions(target_db=db.name, clean=True))  # a safety backup
    assert [m.kind for m in complete(backups_dir(p))] == ["full", "safety"]
    assert find(backups_dir(p), None, latest=True, identity=target_identity(p, other))[1].id == other_backup.id
    with pytest.raises(InputError, match="no complete full backup"):
        find(backups_dir(p), None, latest=True, identity=target_identity(p, src))


# 3. verify --restore says plainly which level each kind gets.

def test_verify_restore_of_partial_and_data_only_backups_says_which_level_they_get(backup_project):
    p = backup_project()
    target = p.target("src")
    for options in (BackupOptions(format="custom", tables=["public.votes"]), BackupOptions(data_only=True)):
        m = create_backup(p, target, options)
        result = verified(p, target, m, restore=True)
        assert result.level == "read"
        assert any("restore verification needs the rest of the database" in n for n in result.notes)


# 4. The manifest lists what is really inside.

def test_a_two_table_backup_lists_two_tables(backup_project, civicq_db):
    p = backup_project()
    m = create_backup(p, p.target("src"), BackupOptions(tables=["public.votes", "public.users"]))
    assert sorted(t["name"] for t in m.tables) == ["users", "votes"]
    assert {t["name"]: t["rows"] for t in m.tables}["votes"] == votes(civicq_db)


# 5. Backups are tied to their target's identity (system identifier and database).

def test_latest_retention_and_freshness_are_per_target_identity(two_targets):
    p, src, other = two_targets
    only = create_backup(p, other, BackupOptions(format="custom", globals=False))
    verified(p, other, only)
    newer = [create_backup(p, src, BackupOptions(format="custom", globals=False)) for _ in range(3)]
    for m in newer:  # another target's newer verified backups never push this one out
        verified(p, src, m)
    assert find(backups_dir(p), None, latest=True, identity=target_identity(p, src))[1].id == newer[-1].id
    assert find(backups_dir(p), None, latest=True, identity=target_identity(p, other))[1].id == only.id
    result = apply_retention(backups_dir(p), RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0),
                             delete=True)
    assert {m.id for m in complete(backups_dir(p))} == {only.id, newer[-1].id}
    assert len(result.deleted) == 2
    assert backup_facts(backups_dir(p), target_identity(p, other))["latest_id"] == only.id


def test_restoring_another_databases_backup_over_a_target_needs_a_confirmation_naming_both(backup_project, civicq_db, db):
    p = backup_project(extra_targets=f"  other: {{url: '{db.url}', environment: development}}\n")
    src, other = p.target("src"), p.target("other")
    m = create_backup(p, src, BackupOptions(format="custom", globals=False))
    folder, manifest = find(backups_dir(p), m.id)
    with pytest.raises(PlanRefused, match=rf"backup {m.id} is of database {civicq_db.name} .* not of {db.name}"):
        restore_backup(p, other, folder, manifest, RestoreOptions(target_db=db.name, clean=True))
    restore_backup(p, other, folder, manifest, RestoreOptions(target_db=db.name, clean=True, confirmed=True))
    assert votes(db) == votes(civicq_db)


def test_restoring_over_a_production_target_needs_a_confirmation(backup_project, civicq_db):
    p = backup_project(src_extra=", environment: production")
    target = p.target("src")
    m = create_backup(p, target, BackupOptions(format="custom", globals=False))
    folder, manifest = find(backups_dir(p), m.id)
    with pytest.raises(PlanRefused, match="production"):
        restore_backup(p, target, folder, manifest, RestoreOptions(target_db=civicq_db.name, clean=True))


# 6. --target-db is a name, never a connection string.

def test_target_db_is_a_database_name_not_a_connection_string(backup_project, civicq_db):
    p = backup_project()
    target = p.target("src")
    m = create_backup(p, target, BackupOptions(format="custom", globals=False))
    folder, manifest = find(backups_dir(p), m.id)
    with civicq_db.connect() as conn:
        conn.execute("DELETE FROM votes WHERE id % 2 = 0")
    left = votes(civicq_db)
    hostile = f"dbname={civicq_db.name} application_name=x"
    result = restore_backup(p, target, folder, manifest, RestoreOptions(target_db=hostile))
    assert result.database == hostile and votes(civicq_db) == left
    with civicq_db.cluster.admin() as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (hostile,)).fetchone()
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(hostile)))


# 7. cleanup deletes only the folder it listed, inside the backups folder.

def test_cleanup_never_follows_a_manifest_id_out_of_its_folder(backup_project, tmp_path):
    p = backup_project()
    target = p.target("src")
    root = backups_dir(p)
    first = create_backup(p, target, BackupOptions(format="custom", globals=False))
    create_backup(p, target, BackupOptions(format="custom", globals=False))
    victim = tmp_path / "victimdir"
    victim.mkdir()
    forged = read_manifest(root / first.id)
    forged.id = "../victimdir"
    evil = root / "evil"
    evil.mkdir()
    write_manifest(evil, forged)
    shutil.copytree(root / first.id, root / "zz-copy")
    problems = {e.path.name: e.problem for e in scan(root) if e.problem}
    assert "differs from its folder" in problems["evil"] and "differs from its folder" in problems["zz-copy"]
    apply_retention(root, RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0), delete=True)
    assert victim.is_dir() and (root / "zz-copy").is_dir() and (root / "evil").is_dir()
    assert not (root / first.id).exists()  # the listed one, deleted by its own folder name


# 8. Backups are private.

def test_backup_files_are_0600_and_folders_0700(backup_project):
    p = backup_project()
    m = create_backup(p, p.target("src"), BackupOptions())
    root = backups_dir(p)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    paths = [root / m.id, *(root / m.id).rglob("*")]
    assert (root / m.id / "globals.sql").exists()
    for path in paths:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path


# 9. Child tools get the user's credentials (PGPASSWORD, PGPASSFILE).

@pytest.mark.parametrize("how", ["PGPASSWORD", "PGPASSFILE"])
def test_backup_create_uses_pgpassword_and_pgpassfile(cli, civicq_db, tmp_path, how):
    kw = civicq_db.conninfo
    url = f"postgresql://{kw['user']}@{kw['host']}:{kw['port']}/{civicq_db.name}"
    (tmp_path / "civicq-ops.yaml").write_text(f"version: 1\ntargets:\n  src: {{url: '{url}'}}\n")
    if how == "PGPASSWORD":
        env = {"PGPASSWORD": kw["password"]}
    else:
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"*:*:*:{kw['user']}:{kw['password']}\n")
        passfile.chmod(0o600)
        env = {"PGPASSFILE": str(passfile)}
    r = cli("backup", "create", "--format", "custom", env=env)
    assert r.exit_code == 0, r.stderr
    assert "backup src-" in r.stdout


# 10. A failed attempt leaves no .partial, names the cause; cleanup removes stale ones.

def test_a_failed_backup_names_the_cause_and_removes_its_partial_folder(backup_project):
    p = backup_project()
    with pytest.raises(InputError, match="no matching tables"):
        create_backup(p, p.target("src"), BackupOptions(tables=["nosuch"]))
    assert list(backups_dir(p).iterdir()) == []


def test_a_full_disk_is_named_and_leaves_nothing_behind(backup_project, tmp_path):
    p = backup_project()
    root = backups_dir(p)
    root.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        with pytest.raises(ExecutionError, match="No space left on device"):
            create_backup(p, p.target("src"), BackupOptions(jobs=2, compress="none"))
        assert list(root.iterdir()) == []
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_cleanup_removes_stale_partial_folders_but_not_running_ones(backup_project):
    p = backup_project()
    root = backups_dir(p)
    m = create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (root / "src-old.partial").mkdir()
    (root / "src-old.partial" / "pid").write_text(str(dead.pid))
    (root / "src-running.partial").mkdir()
    (root / "src-running.partial" / "pid").write_text(str(os.getpid()))
    result = apply_retention(root, RetentionPolicy(), delete=True)
    assert sorted(p.name for p in root.iterdir()) == [m.id, "src-running.partial"]
    assert result.stale == ["src-old.partial"]


# 11. Interrupts stop the children; bad input leaves nothing behind; remediation verifies.

def _pg_dumps_writing_into(root: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"pg_dump") and any(str(root).encode() in a for a in cmd):
                pids.append(int(proc.name))
    return pids


def _until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
    return bool(condition())


@contextmanager
def _backup_held_by_a_lock(civicq_db, config: Path, root: Path, *args: str, stderr=subprocess.DEVNULL):
    """`civicq-ops backup create ARGS` in a process of its own, its pg_dump started and waiting on an
    ACCESS EXCLUSIVE lock on votes (held until the block ends)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    with civicq_db.connect(autocommit=False) as locker:
        locker.execute("LOCK TABLE votes IN ACCESS EXCLUSIVE MODE")  # pg_dump waits for it
        proc = subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(config), "backup", "create", *args],
                                env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr)
        assert _until(lambda: _pg_dumps_writing_into(root), 60), "pg_dump never started"
        yield proc
        locker.rollback()


def test_sigint_to_civicq_ops_alone_stops_pg_dump_and_leaves_no_partial(backup_project, civicq_db, tmp_path):
    p = backup_project()
    root = backups_dir(p)
    with _backup_held_by_a_lock(civicq_db, tmp_path / "civicq-ops.yaml", root, "--jobs", "2",
                                stderr=subprocess.PIPE) as proc:
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        # still holding the lock: a pg_dump left behind would wait on it
        assert _until(lambda: _pg_dumps_writing_into(root) == [], 5)
    assert [x.name for x in root.iterdir()] == []


def test_pg_dump_stops_when_civicq_ops_is_killed_outright(backup_project, civicq_db, tmp_path):
    p = backup_project()
    root = backups_dir(p)
    with _backup_held_by_a_lock(civicq_db, tmp_path / "civicq-ops.yaml", root, "--format", "custom") as proc:
        # quiet now: no line to stderr that a SIGPIPE could stop it with
        assert _until(lambda: _waiting_on_a_lock(civicq_db), 60)
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup runs: only the parent-death signal reaches pg_dump
        proc.wait(timeout=30)
        assert _until(lambda: _pg_dumps_writing_into(root) == [], 10)


def _waiting_on_a_lock(database) -> bool:
    with database.connect() as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                 "AND application_name = 'civicq-ops backup'").fetchone()[0])


def test_restore_jobs_0_is_refused_before_anything_is_created(backup_project, civicq_db):
    p = backup_project()
    target = p.target("src")
    m = create_backup(p, target, BackupOptions(format="custom", globals=False))
    folder, manifest = find(backups_dir(p), m.id)
    before = databases(civicq_db.cluster)
    with pytest.raises(InputError, match="--jobs"):
        restore_backup(p, target, folder, manifest, RestoreOptions(jobs=0))
    assert databases(civicq_db.cluster) == before


def test_the_backup_remediation_verifies_what_it_creates(backup_project):
    from civicq_ops.remediation.apply import _execute
    from civicq_ops.remediation.plan import PlannedAction

    p = backup_project()
    action = PlannedAction(step=1, policy="p", action="backup", mode="auto", object={}, object_name="database",
                           sql=[], lock="ACCESS SHARE", in_transaction=False, options={"format": "custom"}, limits={},
                           finding={"check": "backup-freshness"})
    status, detail, _ = _execute(None, action, [], [], p, p.target("src"))
    assert status == "done" and "(verified)" in detail
    (m,) = complete(backups_dir(p))
    assert m.verified and m.verification["level"] == "read"


def test_manifest_json_records_kind_and_identity(backup_project, civicq_db):
    p = backup_project()
    m = create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False))
    data = json.loads((backups_dir(p) / m.id / "manifest.json").read_text())
    with psycopg.connect(**civicq_db.conninfo) as conn:
        sysid = str(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])
    assert (data["kind"], data["database"], data["system_identifier"]) == ("full", civicq_db.name, sysid)


# Issue 12 point 12: backup-freshness judges only what civicq-ops can see, matched by server and database.

def _backup_findings(p, name):
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.engine.run import RunOptions, Selection, run_checks
    from civicq_ops.facts import default_providers

    result = run_checks(p, [p.target(name)], project_catalog(p).catalog, Selection(categories=["backup"]),
                        RunOptions(facts=default_providers(p)))
    return {f.check: f for f in result.findings}


@pytest.mark.parametrize("expect, reason", [
    ("external", "taken outside civicq-ops (backups.expect: external)"),
    ("none", "declared to have no backups (backups.expect: none)"),
    (None, "no evidence: no civicq-ops backup of"),
])
def test_backup_checks_are_skipped_with_the_reason_without_evidence(backup_project, expect, reason):
    extra = f", environment: development, backups: {{expect: {expect}}}" if expect else ", environment: development"
    p = backup_project(src_extra=extra)
    for check in ("backup-freshness", "backup-size-drop"):
        finding = _backup_findings(p, "src")[check]
        assert finding.status == "skipped" and reason in finding.reason, (finding.status, finding.reason)


def test_a_backup_civicq_ops_took_is_evidence_even_without_a_declaration(backup_project):
    p = backup_project()
    create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False))  # not verified
    finding = _backup_findings(p, "src")["backup-freshness"]
    assert finding.status == "critical" and finding.message.endswith("has no verified backup")


def test_backups_are_matched_by_server_and_database_not_by_target_name(backup_project, civicq_db, db):
    p = backup_project(src_extra=", environment: development, backups: {expect: civicq-ops}",
                       extra_targets=(f"  alias: {{url: '{civicq_db.url}', backups: {{expect: civicq-ops}}}}\n"
                                      f"  other: {{url: '{db.url}', backups: {{expect: civicq-ops}}}}\n"))
    assert _backup_findings(p, "src")["backup-freshness"].status == "critical"
    m = create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False))
    verified(p, p.target("src"), m)
    alias = _backup_findings(p, "alias")["backup-freshness"]
    assert alias.status == "ok" and alias.evidence["backup_id"] == m.id
    assert _backup_findings(p, "other")["backup-freshness"].status == "critical"  # same server, other database


def test_target_backups_expect_is_validated(project_file):
    from civicq_ops.config import load_project
    from civicq_ops.core.errors import ConfigError

    path = project_file("version: 1\ntargets:\n  a: {url: 'postgresql://x/y', backups: {expect: sometimes}}\n")
    with pytest.raises(ConfigError, match="civicq-ops.yaml:3"):
        load_project(path, env={})


# Issue 10 point 3: cleanup and pin through the CLI (the deleting is library code, one call).

def test_cli_backup_cleanup_yes_deletes_what_retention_does_not_keep(cli, backup_project, tmp_path):
    p = backup_project()
    ids = [create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False)).id for _ in range(3)]
    dry = cli("backup", "cleanup")
    assert dry.exit_code == 0, dry.stderr
    assert f"would delete {ids[0]}" in dry.stdout and "dry run" in dry.stdout
    assert sorted(x.name for x in backups_dir(p).iterdir()) == sorted(ids)
    r = cli("backup", "cleanup", "--yes")
    assert r.exit_code == 0, r.stderr
    assert f"delete {ids[0]}" in r.stdout and "2 backup(s) deleted, 1 kept" in r.stdout
    assert [x.name for x in backups_dir(p).iterdir()] == [ids[2]]


def test_cli_backup_pin_keeps_a_backup_through_cleanup_and_unpins(cli, backup_project):
    p = backup_project()
    ids = [create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False)).id for _ in range(2)]
    r = cli("backup", "pin", ids[0], "--reason", "before the 2.0 migration")
    assert r.exit_code == 0 and "pinned (before the 2.0 migration)" in r.stdout, r.stderr
    assert find(backups_dir(p), ids[0])[1].pinned == "before the 2.0 migration"
    r = cli("backup", "cleanup", "--yes")
    assert r.exit_code == 0 and "pinned: before the 2.0 migration" in r.stdout, r.stderr
    assert sorted(x.name for x in backups_dir(p).iterdir()) == sorted(ids)
    assert cli("backup", "pin", ids[0], "--reason", "").exit_code == 0
    assert cli("backup", "cleanup", "--yes").exit_code == 0
    assert [x.name for x in backups_dir(p).iterdir()] == [ids[1]]
    missing = cli("backup", "pin", "nosuch", "--reason", "x")
    assert missing.exit_code == 2 and "no backup nosuch" in missing.stderr


def test_cli_restore_of_a_damaged_backup_exits_5_naming_the_file(cli, backup_project):
    p = backup_project()
    m = create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False))
    archive = backups_dir(p) / m.id / "dump.custom"
    archive.write_bytes(archive.read_bytes()[:-10])
    r = cli("restore", m.id)
    assert r.exit_code == 5 and "dump.custom" in r.stderr, r.stderr
    r = cli("restore", "--latest", "--jobs", "0")
    assert r.exit_code == 2 and "--jobs" in r.stderr, r.stderr
