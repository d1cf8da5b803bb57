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
