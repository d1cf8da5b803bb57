"""The default gate passes on a healthy database (issue 12, "done when"): the seeded CivicQ database
plus a pgbench load and a normal pgbench workload, on a cluster of its own with crash-safe settings
(the shared test clusters run without fsync for speed, and their checkpoints are forced by the
CREATE DATABASE of every test), checked as a user would: `run checks`, no options, twice (the
second run judges the cache ratios over the activity between the runs). A false alarm here is a
gate nobody can keep on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from civicq_ops.postgres.local_cluster import LocalCluster
from tests.fixtures.pg import MAJORS, REPO, Cluster, project_for


@pytest.fixture(scope="module", params=[m for m, (b, _) in MAJORS.items() if b], ids=lambda m: f"pg{m}")
def healthy(request) -> Iterator[tuple[Cluster, str]]:
    """A crash-safe cluster (no fast settings) with a migrated, seeded CivicQ database."""
    from civicq_ops.civicq.migrations import migrate
    from civicq_ops.civicq.seeding import seed

    root = Path(tempfile.mkdtemp(prefix=f"civicq-test-healthy-pg{request.param}-"))
    os.chmod(root, 0o755)
    local = LocalCluster(root / "data", bin_dir=MAJORS[request.param][0], fast=False)
    local.start()
    cluster = Cluster(major=request.param, local=local, root=root)
    try:
        with cluster.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("civicq")))
        with cluster.admin("civicq") as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE EXTENSION pgstattuple")
        project, target = project_for(cluster.url("civicq"))
        migrate(project, target)
        seed(project, target)
        yield cluster, "civicq"
    finally:
        local.stop()
        shutil.rmtree(root, ignore_errors=True)


def _pgbench(cluster: Cluster, dbname: str, *args: str) -> None:
    kw = cluster.conninfo(dbname)
    env = dict(os.environ, PGPASSWORD=str(kw["password"]))
    cmd = [str(cluster.local.bin_dir / "pgbench"), "-h", str(kw["host"]), "-p", str(kw["port"]),
           "-U", str(kw["user"]), *args, dbname]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)


def test_the_default_gate_passes_on_a_healthy_exercised_database(healthy, cli, tmp_path):
    cluster, dbname = healthy
    _pgbench(cluster, dbname, "-i", "-q", "-s", "2")
    _pgbench(cluster, dbname, "-c", "2", "-j", "2", "-T", "4", "-n")
    config = tmp_path / "civicq-ops.yaml"
    config.write_text(
        "version: 1\n"
        f"paths: {{checks: ['{REPO / 'checks'}'], policies: ['{REPO / 'policies'}']}}\n"
        "targets: {db: {url: '${DB_URL}', environment: staging}}\ndefault_target: db\n")
    env = {"DB_URL": cluster.url(dbname)}
    for attempt in ("first", "second"):
        result = cli("--config", str(config), "run", "checks", "--format", "json", env=env)
        report = json.loads(result.stdout)
        failing = [f"{f['check']} {f.get('subject')}: {f.get('message') or f.get('reason')}"
                   for f in report["findings"] if f["status"] in ("critical", "error") and not f.get("waived")]
        assert result.exit_code == 0 and not failing, f"{attempt} run: exit {result.exit_code}\n" + "\n".join(failing)
        _pgbench(cluster, dbname, "-c", "2", "-j", "2", "-T", "2", "-n", "-S")  # reads between the runs
