"""`backups.engine: pgbackrest` (issue 13, point 15): physical backups, `backup list`, `backup verify`
and point-in-time restore delegated to pgBackRest, on a real PostgreSQL 15 cluster (crash-safe,
archiving its WAL with `pgbackrest archive-push`); on PostgreSQL 18, which Debian's pgBackRest 2.45
does not support, the explicit engine is a clear error and `auto` takes the native path."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from civicq_ops.backup import pgbackrest
from civicq_ops.backup.physical import PitrOptions
from civicq_ops.config import load_project
from civicq_ops.core.errors import ConfigError, InputError
from civicq_ops.postgres.local_cluster import OS_USER, LocalCluster
from tests.backup.test_physical import archive_everything, insert, t1_then_t2
from tests.fixtures.pg import MAJORS


def project_text(url: str, stanza: str = "civicq", repo: Path | str = "repo", engine: str = "pgbackrest",
                 extra: str = "") -> str:
    return (f"version: 1\ntargets:\n  src: {{url: '{url}', environment: development}}\n"
            f"backups: {{dir: backups, engine: {engine}, pgbackrest: {{stanza: {stanza}, repo_path: '{repo}'{extra}}}}}\n")


@pytest.fixture(scope="module")
def stanza(tmp_path_factory):
    """A crash-safe PostgreSQL 15 cluster archiving through pgBackRest, its stanza created through the
    CLI's library call, and one full backup. Yields (project folder, project, connection kwargs)."""
    bin_dir, reason = MAJORS["15"]
    if bin_dir is None:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="civicq-pgbackrest-"))  # the server's OS user must enter it
    os.chmod(root, 0o755)
    folder = tmp_path_factory.mktemp("pgbackrest-project")
    data = root / "data"
    # The project file names the repository; the archive_command comes from the same settings.
    # A space in the repository's path: restore_command reaches postgresql.auto.conf through pgBackRest
    # unescaped inside single quotes, so its words are double-quoted (a review found shlex's quotes broke it).
    repo = root / "pg repo"
    (folder / "civicq-ops.yaml").write_text(project_text("postgresql://placeholder/pitr", repo=repo))
    settings = load_project(folder / "civicq-ops.yaml", env={}).backups.pgbackrest
    assert settings is not None
    cluster = LocalCluster(data, bin_dir=bin_dir, settings={
        "archive_mode": "on", "archive_command": pgbackrest.archive_command(settings, data)})
    cluster.start()
    try:
        with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
            conn.execute("CREATE DATABASE pitr")
        kw = cluster.conninfo("pitr")
        url = f"postgresql://{kw['user']}:{kw['password']}@{kw['host']}:{kw['port']}/pitr"
        # Uncompressed: the repository is small and the test machine's cores are shared.
        (folder / "civicq-ops.yaml").write_text(project_text(url, repo=repo, extra=", compress_type: none"))
        project = load_project(folder / "civicq-ops.yaml", env={})
        with psycopg.connect(autocommit=True, **kw) as conn:
            conn.execute("CREATE TABLE events (id serial PRIMARY KEY, phase text, payload text)")
        assert pgbackrest.create_stanza(project, project.target("src")) == "civicq"
        insert(kw, "before-full")
        yield folder, project, kw, pgbackrest.create_backup(project, project.target("src"), "full")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def restored():
    data_dirs: list[Path] = []
    yield data_dirs
    for data in data_dirs:
        LocalCluster(data).stop()
        shutil.rmtree(data.parent, ignore_errors=True)


def test_full_then_incremental_backup_are_listed_with_sizes_and_times_from_pgbackrest_info(stanza, cli):
    folder, project, kw, full = stanza
    insert(kw, "before-incr")
    r = cli("backup", "create", "--physical", "--type", "incr", cwd=folder)
    assert r.exit_code == 0, r.stderr
    assert "(pgbackrest-incr on " in r.stdout and "verified with pgbackrest verify" in r.stdout, r.stdout
    info = {b["label"]: b for b in pgbackrest.info(project)["backup"]}
    r = cli("backup", "list", "--format", "json", cwd=folder)
    assert r.exit_code == 0, r.stderr
    listed = {b["id"]: b for b in json.loads(r.stdout) if b["tool"] == "pgbackrest"}
    incr = next(label for label in info if label.endswith("I"))
    assert full.id in listed and incr in listed
    assert listed[full.id]["kind"] == "pgbackrest-full" and listed[incr]["kind"] == "pgbackrest-incr"
    assert listed[incr]["details"]["prior"] == full.id and listed[incr]["database"] == "*"
    for label, b in listed.items():
        assert b["size_bytes"] == info[label]["info"]["repository"]["delta"] > 0
        assert b["details"]["database_size"] == info[label]["info"]["size"]
        assert b["duration_s"] == info[label]["timestamp"]["stop"] - info[label]["timestamp"]["start"]
        assert b["finished_at"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(info[label]["timestamp"]["stop"])))
        assert b["verification"]["ok"] and b["verification"]["level"] == "pgbackrest verify"
    assert listed[incr]["size_bytes"] < listed[full.id]["size_bytes"]
    text = cli("backup", "list", cwd=folder).stdout
    assert f"{incr}  pgbackrest-incr" in text and "ok (pgbackrest verify" in text, text


def test_verify_passes_on_a_pgbackrest_backup(stanza, cli):
    folder, project, kw, full = stanza
    r = cli("backup", "verify", full.id, cwd=folder)
    assert r.exit_code == 0, r.stderr
    assert f"backup {full.id}: verified (pgbackrest verify" in r.stdout, r.stdout


def test_verify_finds_a_damaged_file_in_a_copy_of_the_repository(stanza, cli):
    folder, project, kw, full = stanza
    settings = project.backups.pgbackrest
    copy = Path(tempfile.mkdtemp(prefix="civicq-pgbackrest-damaged-"))
    try:
        os.chmod(copy, 0o755)
        shutil.copytree(settings.repo_path, copy / "repo", symlinks=True,
                        ignore=shutil.ignore_patterns("lock", "spool"))
        owner = pwd.getpwnam(OS_USER)
        for dirpath, dirs, files in os.walk(copy / "repo"):
            for name in [dirpath, *(os.path.join(dirpath, f) for f in dirs + files)]:
                os.chown(name, owner.pw_uid, owner.pw_gid)
        pg_version = next((copy / "repo" / "backup" / "civicq" / full.id / "pg_data").glob("PG_VERSION*"))
        pg_version.write_bytes(b"damaged" + pg_version.read_bytes())
        (folder / "damaged.yaml").write_text(project_text(project.target("src").url or "", repo=copy / "repo"))
        r = cli("--config", "damaged.yaml", "backup", "verify", full.id, cwd=folder)
        assert r.exit_code == 1, (r.stdout, r.stderr)
        assert f"backup {full.id}: DAMAGED" in r.stdout and "checksum invalid 1" in r.stdout, r.stdout
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_point_in_time_restore_into_a_new_data_directory_has_the_rows_before_the_target_and_not_after(
        stanza, restored):
    folder, project, kw, full = stanza
    between = t1_then_t2(kw)
    result = pgbackrest.restore_set(project, project.target("src"), full.id, PitrOptions(to_time=between))
    restored.append(Path(result.data_dir))
    assert result.port != kw["port"] and result.chain == [full.id]
    assert any("recovery stopping" in line for line in result.recovered), result.recovered
    with psycopg.connect(autocommit=True, **{**kw, "port": result.port}) as conn:
        phases = dict(conn.execute("SELECT phase, count(*) FROM events GROUP BY 1").fetchall())
        assert conn.execute("SELECT current_setting('archive_mode')").fetchone()[0] == "off"
    assert phases.get("t1") == 200 and "t2" not in phases, phases
    with psycopg.connect(autocommit=True, **kw) as conn:  # the source is untouched
        assert conn.execute("SELECT count(*) FROM events WHERE phase = 't2'").fetchone()[0] == 200


def test_a_missing_stanza_is_a_one_line_error(stanza, cli):
    folder, project, kw, full = stanza
    (folder / "nostanza.yaml").write_text(project_text(project.target("src").url or "", stanza="nosuch",
                                                      repo=project.backups.pgbackrest.repo_path))
    r = cli("--config", "nostanza.yaml", "backup", "create", "--physical", cwd=folder)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "stanza 'nosuch' does not exist" in r.stderr and "civicq-ops backup stanza-create" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("--config", "nostanza.yaml", "backup", "list", cwd=folder)  # the other backups are still listed
    assert r.exit_code == 0 and "note: no pgBackRest backups listed: pgBackRest stanza 'nosuch'" in r.stderr, r.stderr


def test_pgbackrest_not_installed_is_a_one_line_error(stanza, cli):
    folder, project, kw, full = stanza
    (folder / "nobin.yaml").write_text(project_text(project.target("src").url or "", repo=project.backups.pgbackrest.repo_path,
                                                   extra=", bin: /nonexistent/pgbackrest"))
    r = cli("--config", "nobin.yaml", "backup", "create", "--physical", cwd=folder)
    assert r.exit_code == 2 and "'/nonexistent/pgbackrest' is not installed" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_auto_takes_pgbackrest_where_it_supports_the_major_and_native_never_does(stanza, tmp_path):
    folder, project, kw, full = stanza
    for engine, expected in (("auto", True), ("native", False), ("pgbackrest", True)):
        (tmp_path / f"{engine}.yaml").write_text(project_text(project.target("src").url or "", engine=engine,
                                                              repo=project.backups.pgbackrest.repo_path))
        other = load_project(tmp_path / f"{engine}.yaml", env={})
        assert pgbackrest.delegated(other, other.target("src")) is expected, engine


def test_diff_backups_need_pgbackrest_on_the_native_engine(stanza, cli):
    folder, project, kw, full = stanza
    (folder / "native.yaml").write_text(project_text(project.target("src").url or "", engine="native",
                                                    repo=project.backups.pgbackrest.repo_path))
    r = cli("--config", "native.yaml", "backup", "create", "--physical", "--type", "diff", cwd=folder)
    assert r.exit_code == 2 and "--type diff needs pgBackRest" in r.stderr, r.stderr


@pytest.mark.parametrize("pg_cluster", ["18"], indirect=True)
def test_on_postgresql_18_the_explicit_engine_is_a_clear_error_and_auto_is_native(db, cli, tmp_path):
    repo = tmp_path / "repo"
    (tmp_path / "civicq-ops.yaml").write_text(project_text(db.url, repo=repo))
    r = cli("backup", "create", "--physical")
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "pgBackRest 2.45 supports PostgreSQL up to 15 and the server is 18" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "backups").exists()
    (tmp_path / "auto.yaml").write_text(project_text(db.url, repo=repo, engine="auto"))
    project = load_project(tmp_path / "auto.yaml", env={})
    assert pgbackrest.delegated(project, project.target("src")) is False


def test_the_engine_is_validated_with_the_project_file(tmp_path):
    path = tmp_path / "civicq-ops.yaml"
    path.write_text("version: 1\ntargets:\n  src: {url: 'postgresql://x/y'}\nbackups: {engine: pgbackrest}\n")
    with pytest.raises(ConfigError, match=r"civicq-ops.yaml:4:\d+: backups.engine is pgbackrest, but backups.pgbackrest"):
        load_project(path, env={})
    path.write_text("version: 1\ntargets:\n  src: {url: 'postgresql://x/y'}\n"
                    "backups: {engine: pgbackrest, pgbackrest: {stanza: main}}\n")
    with pytest.raises(ConfigError, match="repo_path"):
        load_project(path, env={})
    path.write_text("version: 1\ntargets:\n  src: {url: 'postgresql://x/y'}\nbackups: {engine: barman}\n")
    with pytest.raises(ConfigError, match=":4:"):
        load_project(path, env={})
    path.write_text(project_text("postgresql://x/y", repo="pgbr/repo", extra=", retention_full: 2"))
    settings = load_project(path, env={}).backups.pgbackrest
    assert settings is not None and settings.repo_path == str((tmp_path / "pgbr" / "repo").resolve())
    assert settings.lock_path == f"{settings.repo_path}/lock" and settings.retention_full == 2
    assert "--repo1-retention-full=2" in pgbackrest.options(settings, "backup")
    assert "--repo1-retention-full=2" not in pgbackrest.options(settings, "verify")
    with pytest.raises(InputError, match="backups.pgbackrest"):
        pgbackrest.settings_of(load_project(_without_pgbackrest(tmp_path), env={}))


def _without_pgbackrest(tmp_path: Path) -> Path:
    path = tmp_path / "native.yaml"
    path.write_text("version: 1\ntargets:\n  src: {url: 'postgresql://x/y'}\n")
    return path


def test_restore_of_the_latest_backup_to_the_latest_wal_through_the_cli(stanza, cli, restored):
    folder, project, kw, full = stanza
    insert(kw, "latest")
    archive_everything(kw)
    r = cli("restore", "--latest", "--physical", "--to-latest", cwd=folder)
    if "into a new cluster: " in r.stdout:
        restored.append(Path(r.stdout.split("into a new cluster: ", 1)[1].split(",", 1)[0]))
    assert r.exit_code == 0, r.stderr
    newest = pgbackrest.find_set(project, None)
    assert r.stdout.startswith(f"restored {' + '.join([*(newest.options['reference'] or []), newest.id])} into")
    port = int(r.stdout.split(", port ", 1)[1].split(" ", 1)[0])
    with psycopg.connect(autocommit=True, **{**kw, "port": port}) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE phase = 'latest'").fetchone()[0] == 200
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False


@pytest.mark.parametrize("repo", ["/srv/it's", '/srv/"x"', "/srv/$HOME", "/srv/a%f", "/srv/back\\slash"])
def test_a_repository_path_no_server_command_can_carry_is_refused_at_its_line(tmp_path, repo):
    (tmp_path / "civicq-ops.yaml").write_text(
        "version: 1\ntargets: {src: {url: 'postgresql://x@h/db'}}\nbackups:\n  engine: pgbackrest\n"
        f"  pgbackrest: {{stanza: civicq, repo_path: {json.dumps(repo)}}}\n")
    with pytest.raises(ConfigError, match=r"civicq-ops.yaml:5:\d+: backups.pgbackrest.repo_path"):
        load_project(tmp_path / "civicq-ops.yaml", env={})
