"""Benchmark: `db seed --scale N` rows per second against `pgbench -i` on the same server, same run.

Usage: .venv/bin/python bench/seed.py [--scale 20]
pgbench scale S loads 100,000 * S rows; civicq scale N loads about 10,500 * N rows into tables that
carry the full CivicQ index set (the goal: at least half of pgbench's rate).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_cluster, create_database  # noqa: E402
from civicq_ops.civicq.migrations import migrate  # noqa: E402
from civicq_ops.civicq.seeding import seed  # noqa: E402
from civicq_ops.config import load_project  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=20, help="civicq scale units (10,000 votes each)")
    args = ap.parse_args()
    with bench_cluster() as cluster:
        url = create_database(cluster, "civicq")
        project = load_project(REPO / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": url})
        target = project.target()
        migrate(project, target)
        seed(project, target)  # the small dev set first, as a user would have
        t0 = time.perf_counter()
        result = seed(project, target, scale=args.scale)
        ours = time.perf_counter() - t0
        our_rows = result.total

        pg_scale = max(1, round(our_rows / 100_000))
        create_database(cluster, "pgbench")
        kw = cluster.conninfo("pgbench")
        env = dict(os.environ, PGPASSWORD=str(kw["password"]))
        pgbench = cluster.bin_dir / "pgbench"
        cmd = [str(pgbench), "-i", "-q", "-s", str(pg_scale), "-h", "127.0.0.1", "-p", str(kw["port"]),
               "-U", str(kw["user"]), "pgbench"]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        theirs = time.perf_counter() - t0
        their_rows = 100_000 * pg_scale + 10 * pg_scale + pg_scale

    our_rate, their_rate = our_rows / ours, their_rows / theirs
    print(f"civicq-ops db seed --scale {args.scale}: {our_rows:,} rows in {ours:.2f}s = {our_rate:,.0f} rows/s")
    print(f"pgbench -i -s {pg_scale}:              {their_rows:,} rows in {theirs:.2f}s = {their_rate:,.0f} rows/s")
    print(f"ratio (ours / pgbench): {our_rate / their_rate:.2f}  (goal >= 0.50)")


if __name__ == "__main__":
    main()
