"""Physical backups, incremental chains, the WAL archive and point-in-time recovery (issue 13,
points 12-14) on real PostgreSQL 18 (wheel) and 15 (/usr/lib/postgresql/15/bin): each test cluster
archives its WAL with `civicq-ops wal archive`, as the local cluster does."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from civicq_ops.backup.create import backups_dir
from civicq_ops.backup.inventory import complete, find
from civicq_ops.backup.physical import PhysicalOptions, PitrOptions, create_physical_backup, restore_physical
from civicq_ops.backup.restore import verify_backup
from civicq_ops.backup.retention import RetentionPolicy, plan_retention
from civicq_ops.config import load_project
from civicq_ops.core.errors import ExecutionError, InputError
from civicq_ops.postgres import wal_archive
from civicq_ops.postgres.local_cluster import LocalCluster
from tests.fixtures.pg import MAJORS


@pytest.fixture(scope="module", params=list(MAJORS), ids=[f"pg{m}" for m in MAJORS])
def archived(request):
    """A cluster archiving its WAL into `<root>/wal-archive`, with a database `pitr`."""
    bin_dir, reason = MAJORS[request.param]
    if bin_dir is None:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix=f"civicq-pitr-pg{request.param}-"))
    os.chmod(root, 0o755)
    cluster = LocalCluster(root / "data", bin_dir=bin_dir, fast=True, wal_archive=root / "wal-archive",
                           settings={"full_page_writes": "on"})  # a base backup needs full page writes
    cluster.start()
    request.addfinalizer(lambda: (cluster.stop(), shutil.rmtree(root, ignore_errors=True)))
    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        conn.execute("CREATE DATABASE pitr")
    return int(request.param), cluster, root


@pytest.fixture
def pitr(archived, tmp_path):
    major, cluster, root = archived
    kw = cluster.conninfo("pitr")
    url = f"postgresql://{kw['user']}:{kw['password']}@{kw['host']}:{kw['port']}/pitr"
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\ntargets:\n  src: {{url: '{url}', environment: development}}\n"
        f"backups: {{dir: backups, wal_archive: '{root / 'wal-archive'}'}}\n")
    project = load_project(tmp_path / "civicq-ops.yaml", env={})
    with psycopg.connect(autocommit=True, **kw) as conn:
        conn.execute("DROP TABLE IF EXISTS events")
        conn.execute("CREATE TABLE events (id serial PRIMARY KEY, phase text, payload text)")
    restored: list[Path] = []
    yield major, cluster, project, project.target("src"), kw, restored
    for data in restored:
        LocalCluster(data).stop()
        shutil.rmtree(data.parent, ignore_errors=True)


def insert(kw, phase: str, n: int = 200) -> None:
    with psycopg.connect(autocommit=True, **kw) as conn:
        conn.execute("INSERT INTO events (phase, payload) SELECT %s, md5(g::text) FROM generate_series(1, %s) g",
                     (phase, n))


def t1_then_t2(kw) -> str:
    """Rows of phase t1, then (a second apart each side) the server's time, then rows of phase t2,
    all archived: a recovery to the returned time has t1's rows and not t2's."""
    insert(kw, "t1")
    time.sleep(1.1)
    with psycopg.connect(autocommit=True, **kw) as conn:
        between = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
    time.sleep(1.1)
    insert(kw, "t2")
    archive_everything(kw)
    return between


def archive_everything(kw) -> None:
    """Switch to a new segment and wait until the archiver has taken the old one."""
    with psycopg.connect(autocommit=True, **kw) as conn:
        conn.execute("SELECT pg_logical_emit_message(false, 'civicq-test', 'x')")  # never an empty segment
        done = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        conn.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            last, failed = conn.execute("SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver").fetchone()
            if last and last[:24] >= done:
                return
            time.sleep(0.1)
    raise AssertionError(f"the archiver did not archive {done} (last failed: {failed})")


def table_state(kw) -> dict:
    """Row count and a checksum of every row of every user table."""
    with psycopg.connect(autocommit=True, **kw) as conn:
        tables = conn.execute("SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY 1, 2").fetchall()
        state = {}
        for schema, name in tables:
            q = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {}.{} t")
            state[f"{schema}.{name}"] = conn.execute(q.format(sql.Identifier(schema), sql.Identifier(name))).fetchone()
        return state


def restored_kw(result, kw) -> dict:
    return {**kw, "port": result.port}


def test_point_in_time_restore_finds_t1_rows_and_not_t2_rows(pitr):
    major, cluster, project, target, kw, restored = pitr
    insert(kw, "before-backup")
    m = create_physical_backup(project, target, PhysicalOptions())
    assert m.kind == "physical" and m.database == "*" and m.options["start_wal"]
    assert m.verified and m.verification["level"] == "pg_verifybackup"
    between = t1_then_t2(kw)
    result = restore_physical(project, target, backups_dir(project) / m.id, m, PitrOptions(to_time=between))
    restored.append(Path(result.data_dir))
    assert result.port != kw["port"] and any("recovery stopping" in x for x in result.recovered), result.recovered
    with psycopg.connect(autocommit=True, **restored_kw(result, kw)) as conn:
        phases = dict(conn.execute("SELECT phase, count(*) FROM events GROUP BY 1").fetchall())
    assert phases == {"before-backup": 200, "t1": 200}


def test_restore_to_latest_matches_the_source_table_by_table(pitr):
    major, cluster, project, target, kw, restored = pitr
    insert(kw, "a", 5000)
    full = create_physical_backup(project, target, PhysicalOptions())
    newest = full
    if major >= 17:
        with psycopg.connect(autocommit=True, **kw) as conn:
            conn.execute("UPDATE events SET payload = 'changed' WHERE id % 100 = 0")  # 1% of rows
        newest = create_physical_backup(project, target, PhysicalOptions(incremental=True))
        assert newest.kind == "physical-incremental" and newest.options["parent"] == full.id
        assert newest.size_bytes < full.size_bytes
    insert(kw, "after-the-last-backup")
    expected = table_state(kw)
    archive_everything(kw)
    result = restore_physical(project, target, backups_dir(project) / newest.id, newest, PitrOptions(to_latest=True))
    restored.append(Path(result.data_dir))
    assert result.chain == ([full.id, newest.id] if major >= 17 else [full.id])
    assert table_state(restored_kw(result, kw)) == expected
    assert verify_backup(project, target, backups_dir(project) / newest.id, newest).ok


def test_a_missing_wal_segment_is_named_and_nothing_is_restored(pitr):
    major, cluster, project, target, kw, restored = pitr
    m = create_physical_backup(project, target, PhysicalOptions())
    for _ in range(3):
        insert(kw, "x")
        archive_everything(kw)
    folder = Path(project.section("backups")["wal_archive"]) / m.system_identifier
    segments = sorted(p.name for p in folder.iterdir()
                      if wal_archive.SEGMENT.match(p.name) and p.name > m.options["start_wal"])
    victim = segments[len(segments) // 2]
    os.rename(folder / victim, folder.parent / f"moved-{victim}")
    try:
        data = project.root / "restored" / "data"
        with pytest.raises(ExecutionError, match=f"WAL segment {victim} is missing"):
            restore_physical(project, target, backups_dir(project) / m.id, m,
                             PitrOptions(to_latest=True, data_dir=data))
        assert not data.exists()
    finally:
        os.rename(folder.parent / f"moved-{victim}", folder / victim)


def test_a_chain_with_a_missing_incremental_is_refused_naming_it(pitr):
    major, cluster, project, target, kw, restored = pitr
    if major < 17:
        with pytest.raises(InputError, match="PostgreSQL 17 or newer"):
            create_physical_backup(project, target, PhysicalOptions(incremental=True))
        return
    full = create_physical_backup(project, target, PhysicalOptions())
    insert(kw, "i1")
    first = create_physical_backup(project, target, PhysicalOptions(incremental=True))
    insert(kw, "i2")
    second = create_physical_backup(project, target, PhysicalOptions(incremental=True))
    assert second.options["parent"] == first.id
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    kept = {d.manifest.id: d for d in plan_retention(complete(backups_dir(project)), policy)}
    assert kept[full.id].keep and kept[first.id].keep  # the kept incremental needs them
    assert "needed by the kept incremental" in kept[full.id].reasons[-1]
    shutil.rmtree(backups_dir(project) / first.id)
    with pytest.raises(InputError, match=f"incremental on {first.id}, which is missing"):
        restore_physical(project, target, backups_dir(project) / second.id, second, PitrOptions(to_latest=True))


def test_a_killed_pg_basebackup_leaves_nothing_listed(pitr):
    major, cluster, project, target, kw, restored = pitr
    errors: list[BaseException] = []

    def run():
        try:
            create_physical_backup(project, target, PhysicalOptions(checkpoint="spread"))  # waits minutes
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    started = datetime.now(UTC).isoformat()
    worker = threading.Thread(target=run)
    worker.start()
    root = backups_dir(project)
    deadline = time.monotonic() + 30
    pid = None
    while time.monotonic() < deadline and pid is None:
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmd = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.startswith(b"/") and b"pg_basebackup\0" in cmd and str(root).encode() in cmd:
                    pid = int(proc.name)
        time.sleep(0.05)
    assert pid, "pg_basebackup never started"
    os.kill(pid, 9)
    worker.join(60)
    assert errors and isinstance(errors[0], ExecutionError) and "pg_basebackup failed" in errors[0].message
    assert [m for m in complete(root) if m.kind.startswith("physical") and m.finished_at > started] == []
    assert list(root.glob("*.partial")) == []


def test_a_logical_restore_refuses_a_physical_backup(pitr):
    from civicq_ops.backup.restore import RestoreOptions, restore_backup

    major, cluster, project, target, kw, restored = pitr
    m = create_physical_backup(project, target, PhysicalOptions())
    folder, manifest = find(backups_dir(project), m.id)
    with pytest.raises(InputError, match="restore it with --physical"):
        restore_backup(project, target, folder, manifest, RestoreOptions())


# The archive command itself: atomic, checksummed, idempotent for the same content.

def _fake_data_dir(tmp_path: Path, sysid: int = 7312345678901234567) -> Path:
    data = tmp_path / "data"
    (data / "global").mkdir(parents=True)
    (data / "global" / "pg_control").write_bytes(sysid.to_bytes(8, "little") + b"\0" * 100)
    (data / "pg_wal").mkdir()
    return data


def test_wal_archive_is_idempotent_for_the_same_content_and_refuses_different_content(tmp_path):
    data = _fake_data_dir(tmp_path)
    name = "000000010000000000000003"
    (data / "pg_wal" / name).write_bytes(b"a" * 1000)
    archive = tmp_path / "archive"
    assert "archived" in wal_archive.archive(archive, f"pg_wal/{name}", name, data_dir=data)
    assert "already archived" in wal_archive.archive(archive, f"pg_wal/{name}", name, data_dir=data)
    folder = archive / "7312345678901234567"
    assert sorted(p.name for p in folder.iterdir()) == [name, f"{name}.sha256"]  # no temporary file left
    (data / "pg_wal" / name).write_bytes(b"b" * 1000)
    with pytest.raises(wal_archive.ArchiveError, match="different content"):
        wal_archive.archive(archive, f"pg_wal/{name}", name, data_dir=data)
    assert (folder / name).read_bytes() == b"a" * 1000
    (folder / name).write_bytes(b"c" * 1000)  # damaged in the archive
    with pytest.raises(wal_archive.ArchiveError, match="checksum mismatch"):
        wal_archive.restore(folder, name, str(tmp_path / "out"))
    with pytest.raises(wal_archive.ArchiveError, match="not a WAL file name"):
        wal_archive.archive(archive, "pg_wal/x", "../../etc/passwd", data_dir=data)


def test_wal_archive_cli_exit_codes(cli, tmp_path):
    data = _fake_data_dir(tmp_path)
    name = "000000010000000000000004"
    (data / "pg_wal" / name).write_bytes(b"a" * 100)
    archive = tmp_path / "archive"
    r = cli("wal", "archive", "--dir", str(archive), f"pg_wal/{name}", name, cwd=data)
    assert r.exit_code == 0, r.stderr
    assert cli("wal", "archive", "--dir", str(archive), f"pg_wal/{name}", name, cwd=data).exit_code == 0
    (data / "pg_wal" / name).write_bytes(b"b" * 100)
    r = cli("wal", "archive", "--dir", str(archive), f"pg_wal/{name}", name, cwd=data)
    assert r.exit_code == 3 and "different content" in r.stderr
    r = cli("wal", "restore", "--dir", str(archive / "7312345678901234567"), "000000010000000000000009",
            str(tmp_path / "x"))
    assert r.exit_code == 1


def test_physical_backup_and_restore_through_the_cli(pitr, cli):
    major, cluster, project, target, kw, restored = pitr
    insert(kw, "cli")
    r = cli("backup", "create", "--physical")
    assert r.exit_code == 0 and "(physical)" in r.stdout and "pg_verifybackup" in r.stdout, r.stderr
    assert cli("backup", "create", "--incremental").exit_code == 2
    r = cli("restore", "--latest", "--physical")
    assert r.exit_code == 2 and "exactly one of --to-time, --to-lsn, --to-latest" in r.stderr, r.stderr
    archive_everything(kw)
    r = cli("restore", "--latest", "--physical", "--to-latest")
    data = r.stdout.split("into a new cluster: ", 1)[-1].split(",", 1)[0] if "into a new cluster" in r.stdout else None
    if data:
        restored.append(Path(data))
    assert r.exit_code == 0, r.stderr
    port = int(r.stdout.split(", port ", 1)[1].split(" ", 1)[0])
    assert port != kw["port"]
    with psycopg.connect(autocommit=True, **{**kw, "port": port}) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE phase = 'cli'").fetchone()[0] == 200


def test_the_local_cluster_archives_its_wal_beside_its_data_dir(tmp_path):
    from civicq_ops.postgres.connect import local_cluster, wal_archive_dir

    (tmp_path / "civicq-ops.yaml").write_text(
        "version: 1\ntargets:\n  local: {embedded: true, data_dir: pg/data}\n")
    project = load_project(tmp_path / "civicq-ops.yaml", env={})
    cluster = local_cluster(project, project.target("local"))
    assert cluster.wal_archive == (tmp_path / "pg" / "wal-archive").resolve()
    assert wal_archive_dir(project, project.target("local")) == cluster.wal_archive


def test_a_target_recovery_cannot_reach_fails_clearly_and_leaves_no_cluster(pitr):
    major, cluster, project, target, kw, restored = pitr
    m = create_physical_backup(project, target, PhysicalOptions())
    archive_everything(kw)
    time.sleep(1.1)
    with psycopg.connect(autocommit=True, **kw) as conn:  # after every archived commit: never reached
        unreachable = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
    parent = Path(tempfile.mkdtemp(prefix="civicq-pitr-fail-"))  # a folder the server's OS user can enter
    os.chmod(parent, 0o755)
    data = parent / "data"
    try:
        with pytest.raises(ExecutionError, match="recovery ended before configured recovery target was reached"):
            restore_physical(project, target, backups_dir(project) / m.id, m,
                             PitrOptions(to_time=unreachable, data_dir=data))
        assert not data.exists()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_cleanup_prunes_wal_older_than_the_oldest_kept_physical_backup(pitr):
    from civicq_ops.backup.retention import apply_retention

    major, cluster, project, target, kw, restored = pitr
    first = create_physical_backup(project, target, PhysicalOptions())
    insert(kw, "between")
    archive_everything(kw)
    second = create_physical_backup(project, target, PhysicalOptions())
    insert(kw, "after")
    archive_everything(kw)
    archive = Path(project.section("backups")["wal_archive"])
    folder = archive / second.system_identifier
    older = sorted(p.name for p in folder.iterdir() if wal_archive.SEGMENT.match(p.name) and p.name < second.options["start_wal"])
    assert older, "no segment before the second backup"
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    result = apply_retention(backups_dir(project), policy, delete=True, wal_archive=archive)
    assert first.id in result.deleted and second.id not in result.deleted
    left = {p.name for p in folder.iterdir()}
    assert not (set(older) & left) and f"{older[-1]}.sha256" not in left
    assert second.options["start_wal"] in left
    result = restore_physical(project, target, backups_dir(project) / second.id, second, PitrOptions(to_latest=True))
    restored.append(Path(result.data_dir))
    with psycopg.connect(autocommit=True, **restored_kw(result, kw)) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE phase = 'after'").fetchone()[0] == 200
