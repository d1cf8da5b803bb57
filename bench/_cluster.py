"""A throwaway local cluster for benchmarks (same provider as the tests)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from civicq_ops.postgres.local_cluster import LocalCluster


@contextlib.contextmanager
def bench_cluster(bin_dir: str | None = None):
    root = Path(tempfile.mkdtemp(prefix="civicq-bench-"))
    os.chmod(root, 0o755)
    cluster = LocalCluster(root / "data", bin_dir=bin_dir, fast=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def create_database(cluster: LocalCluster, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    kw = cluster.conninfo(name)
    return f"postgresql://{kw['user']}:{kw['password']}@{kw['host']}:{kw['port']}/{name}"


def civicq_project(cluster: LocalCluster, work: str | Path, scale: int, extra: str = ""):
    """A migrated and seeded CivicQ database on `cluster`, and a project file in `work` whose one
    target `bench` is it (plus `extra` YAML): (project file, project, target)."""
    from civicq_ops.civicq.migrations import migrate
    from civicq_ops.civicq.seeding import seed
    from civicq_ops.config import load_project

    url = create_database(cluster, "civicq")
    cfg = Path(work) / "civicq-ops.yaml"
    cfg.write_text(f"version: 1\ntargets:\n  bench: {{url: '{url}'}}\n{extra}")
    project = load_project(cfg, env={})
    target = project.target("bench")
    migrate(project, target)
    seed(project, target, scale=scale)
    return cfg, project, target
