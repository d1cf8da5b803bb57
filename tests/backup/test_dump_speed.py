"""What makes `backup create` fast (issue 14) without losing what makes it safe: the compression each
format gets by default, recorded and restorable; the snapshot exported and the rows counted by psql, so
that a backup never imports psycopg; plain URLs read as libpq reads them (real PostgreSQL 15 and 18)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from civicq_ops.backup.create import BackupOptions, backups_dir, create_backup
from civicq_ops.backup.inventory import find
from civicq_ops.backup.restore import verify_backup
from civicq_ops.backup.snapshot import SnapshotHolder
from civicq_ops.backup.tools import client_env, compress_spec
from civicq_ops.core.conninfo import plain_url, split_url
from civicq_ops.core.errors import TargetUnreachable
from civicq_ops.postgres.binaries import first_client
from tests.fixtures.pg import REPO


def _gzip_levels(folder) -> set[int]:
    """The XFL byte of each gzip member's header: 4 = fastest (level 1), 0 = levels 2-8, 2 = level 9."""
    return {p.read_bytes()[8] for p in folder.glob("*.dat.gz")}


def test_a_directory_dump_defaults_to_gzip_1_and_restores(backup_project, civicq_db):
    p = backup_project()
    m = create_backup(p, p.target("src"), BackupOptions(format="directory", jobs=2))
    assert m.options["compress"] == "gzip:1"
    assert _gzip_levels(backups_dir(p) / m.id / "dump") == {4}
    folder, manifest = find(backups_dir(p), m.id)
    result = verify_backup(p, p.target("src"), folder, manifest, restore=True)
    assert result.ok and result.level == "restore", result.problems


def test_a_custom_archive_keeps_pg_dumps_default_and_compress_still_chooses(backup_project):
    p = backup_project()
    custom = create_backup(p, p.target("src"), BackupOptions(format="custom", globals=False))
    chosen = create_backup(p, p.target("src"), BackupOptions(format="directory", compress="gzip:6", globals=False))
    assert custom.options["compress"] == "gzip:6"
    assert chosen.options["compress"] == "gzip:6"
    assert _gzip_levels(backups_dir(p) / chosen.id / "dump") == {0}


@pytest.mark.parametrize("given, fmt, spec", [
    (None, "custom", "gzip:6"), (None, "directory", "gzip:1"), ("5", "custom", "gzip:5"), ("0", "directory", "none"),
    ("gzip:0", "custom", "none"), ("NONE", "custom", "none"), ("zstd:3", "directory", "zstd:3"), ("lz4", "custom", "lz4"),
])
def test_compress_spec_names_what_a_backup_uses(given, fmt, spec):
    assert compress_spec(given, fmt) == spec


def test_backup_list_shows_the_compression(cli, backup_project):
    p = backup_project()
    create_backup(p, p.target("src"), BackupOptions(format="directory", globals=False))
    listed = cli("backup", "list", "--format", "json", cwd=p.root)
    assert listed.exit_code == 0, listed.stderr
    assert [(b["format"], b["compress"]) for b in json.loads(listed.stdout)] == [("directory", "gzip:1")]
    text = cli("backup", "list", cwd=p.root).stdout
    assert "compression" in text.splitlines()[0] and "gzip:1" in text


def test_psql_exports_a_snapshot_that_sessions_import_until_it_is_released(db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    env = client_env(conninfo_to_dict(db.url))
    with SnapshotHolder(first_client("psql"), env) as held:
        assert held.exported is not None and held.exported.major == int(db.cluster.major)
        assert held.exported.superuser and held.exported.tables == 1
        with db.connect() as conn:
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            conn.execute(f"SET TRANSACTION SNAPSHOT '{held.exported.snapshot}'")
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # the snapshot's, not now's
            conn.execute("ROLLBACK")
        held.release()
        with db.connect() as conn, pytest.raises((psycopg.errors.UndefinedObject,  # 18: does not exist
                                                       psycopg.errors.InvalidParameterValue)):  # 15: invalid:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            conn.execute(f"SET TRANSACTION SNAPSHOT '{held.exported.snapshot}'")


def test_an_unreachable_target_gives_the_usual_error_and_keeps_nothing(tmp_path, civicq_db):
    from civicq_ops.config import load_project

    kw = civicq_db.conninfo
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\ntargets:\n  src: {{url: 'postgresql://{kw['user']}:wrong@{kw['host']}:{kw['port']}/{civicq_db.name}'}}\n")
    p = load_project(tmp_path / "civicq-ops.yaml", env={})
    with pytest.raises(TargetUnreachable, match="cannot connect to target 'src' at .*password authentication failed"):
        create_backup(p, p.target("src"), BackupOptions(format="custom"))
    assert list(backups_dir(p).iterdir()) == []


def test_a_backup_never_imports_psycopg(backup_project):
    """The point of exporting the snapshot and counting rows with psql: ~85 ms of CPU for psycopg's import
    alone, most of it before pg_dump could start."""
    p = backup_project()
    script = textwrap.dedent(f"""
        import sys
        from civicq_ops.backup import create
        from civicq_ops.config import load_project
        seen = []
        started = create._dump_started
        def spy(*a, **k):
            seen.append("psycopg" in sys.modules)
            return started(*a, **k)
        create._dump_started = spy
        p = load_project({str(p.root / "civicq-ops.yaml")!r}, env={{}})
        m = create.create_backup(p, p.target("src"), create.BackupOptions(format="custom"))
        print(seen, "psycopg" in sys.modules, len(m.tables) > 0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[False]", "False", "True"]


@pytest.mark.parametrize("url", [
    "postgresql://civicq:p%40ss@127.0.0.1:5432/civicq", "postgres://u@h/db?sslmode=require&connect_timeout=5",
    "postgresql://[::1]:5433/d", "postgresql://h", "postgresql://u:@h:1/d", "postgresql://u:a+b@h/d%20x?application_name=a+b",
    "postgresql://u:p:q@h/d", "postgresql://%2Ftmp/d", "postgresql://u:p%2F%3A@h:5432",
])
def test_a_plain_url_is_read_as_libpq_reads_it(url):
    assert plain_url(url) == {k: str(v) for k, v in conninfo_to_dict(url).items()}


@pytest.mark.parametrize("url", [
    "postgresql:///db?host=/tmp", "postgresql://h1:1,h2:2/d", "host=x dbname=y", "postgresql://h/d?ssl=true",
    "postgresql://h:/d", "postgresql://u:p%zz@h/d", "postgresql://h/d?options=-c%20a%3Db",
])
def test_anything_else_is_left_to_libpq(url):
    assert plain_url(url) is None
    try:
        expected = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except psycopg.ProgrammingError:
        with pytest.raises(psycopg.ProgrammingError):
            split_url(url)
    else:
        assert split_url(url) == expected


def test_a_method_this_pg_dump_lacks_is_refused_before_anything_is_written(backup_project, civicq_db):
    from civicq_ops.backup.tools import compression_methods, pg_tool
    from civicq_ops.core.errors import InputError

    p = backup_project()
    if "lz4" in compression_methods(pg_tool("pg_dump", int(civicq_db.cluster.major))):
        pytest.skip("this pg_dump was built with lz4 (neither Debian's 15 nor the embedded 18 is)")
    with pytest.raises(InputError, match=r"cannot compress with lz4 \(it supports gzip, none\)"):
        create_backup(p, p.target("src"), BackupOptions(compress="lz4"))
    assert list(backups_dir(p).iterdir()) == []


def test_a_snapshot_psql_cannot_export_is_one_line_naming_why(db):
    from civicq_ops.backup.snapshot import SnapshotError

    env = client_env({**conninfo_to_dict(db.url), "password": "wrong"})
    with pytest.raises(SnapshotError) as failed:
        SnapshotHolder(first_client("psql"), env).__enter__()
    message = str(failed.value)
    assert message.startswith("psql could not export the backup's snapshot: ")
    assert "password authentication failed for user" in message
    assert "\n" not in message and "FATAL" not in message and "  " not in message  # the server's words, one line
