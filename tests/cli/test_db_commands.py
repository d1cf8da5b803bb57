"""`civicq-ops db up | status | psql | down` end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def local_project(tmp_path):
    data_root = Path(tempfile.mkdtemp(prefix="civicq-test-cli-"))
    os.chmod(data_root, 0o755)
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\ntargets:\n  local: {{embedded: true, data_dir: '{data_root}/pgdata'}}\n"
    )
    yield tmp_path
    from civicq_ops.postgres.local_cluster import LocalCluster

    LocalCluster(data_root / "pgdata").stop()
    shutil.rmtree(data_root, ignore_errors=True)


def test_up_psql_status_down(cli, local_project):
    up = cli("db", "up")
    assert up.exit_code == 0, up.output
    assert "running" in up.stdout and "created database civicq" in up.stdout

    again = cli("db", "up")
    assert again.exit_code == 0 and "already running" in again.stdout

    psql = cli("db", "psql", "-At", "-c", "select current_database(), version()")
    assert psql.exit_code == 0, psql.output
    assert psql.stdout.startswith("civicq|PostgreSQL 18")

    status = json.loads(cli("db", "status", "--format", "json").stdout)
    assert status["running"] and status["version"].startswith("18") and status["port"]

    down = cli("db", "down")
    assert down.exit_code == 0 and "stopped" in down.stdout
    stopped = cli("db", "status")
    assert stopped.exit_code == 3 and "stopped" in stopped.stdout


def test_psql_on_a_stopped_cluster_says_to_run_db_up(cli, local_project):
    result = cli("db", "psql", "-c", "select 1")
    assert result.exit_code == 3
    assert "civicq-ops db up" in result.stderr and "Traceback" not in result.output
