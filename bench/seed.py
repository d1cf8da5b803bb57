"""Benchmark: `db seed --scale N` rows per second against `pgbench -i` on the same server, same run.

Usage: .venv/bin/python bench/seed.py [--scale 100] [--bin-dir DIR] [--before CHECKOUT]
pgbench scale S loads 100,000 * S rows; civicq scale N loads about 10,500 * N rows into tables that
carry the full CivicQ index set (the goal: at least 0.3x pgbench's rate). `--before` also seeds a
second database with an earlier civicq-ops (e.g. /work/main), in the same run. The physical
difference is printed: the indexes, foreign keys and checks on the loaded tables against pgbench's.
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
from civicq_ops.civicq.seeding import load_seed_module, seed  # noqa: E402
from civicq_ops.config import load_project  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHYSICAL = """
SELECT (SELECT count(*) FROM pg_index i WHERE i.indrelid = ANY(%(t)s::regclass[])),
       (SELECT count(*) FROM pg_constraint c WHERE c.conrelid = ANY(%(t)s::regclass[]) AND c.contype = 'f'),
       (SELECT count(*) FROM pg_constraint c WHERE c.conrelid = ANY(%(t)s::regclass[]) AND c.contype = 'c'),
       (SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = ANY(%(t)s::regclass[]) AND NOT g.tgisinternal),
       pg_size_pretty(sum(pg_total_relation_size(r))) FROM unnest(%(t)s::regclass[]) r
"""


def _seeded(cluster, name: str, scale: int, checkout: Path | None = None) -> tuple[int, float, str]:
    """(rows, seconds of the scaled seed alone, url) on a new database `name`."""
    url = create_database(cluster, name)
    project = load_project(REPO / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": url})
    target = project.target()
    migrate(project, target)
    seed(project, target)  # the small dev set first, as a user would have
    if checkout is None:
        t0 = time.perf_counter()
        rows = seed(project, target, scale=scale).total
        return rows, time.perf_counter() - t0, url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    code = ("import sys, time; from civicq_ops.config import load_project; from civicq_ops.civicq.seeding import seed; "
            f"p = load_project('civicq-ops.yaml', env={{'CIVICQ_DATABASE_URL': {url!r}}}); t0 = time.perf_counter(); "
            f"r = seed(p, p.target(), scale={scale}).total; print(r, time.perf_counter() - t0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=dict(env, PYTHONPATH=str(checkout)),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3600, check=True).stdout
    rows, seconds = out.split()
    return int(rows), float(seconds), url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=100, help="civicq scale units (10,000 votes each)")
    ap.add_argument("--bin-dir", help="PostgreSQL binaries (default: the embedded PostgreSQL 18)")
    ap.add_argument("--before", help="a checkout of an earlier civicq-ops: also seed with it, same server")
    args = ap.parse_args()
    import psycopg

    with bench_cluster(args.bin_dir) as cluster:
        our_rows, ours, url = _seeded(cluster, "civicq", args.scale)
        tables = list(load_seed_module(load_project(REPO / "civicq-ops.yaml", env={}), "scale").TABLES)
        with psycopg.connect(url) as conn:
            ours_physical = conn.execute(PHYSICAL, {"t": tables}).fetchone()
        before = _seeded(cluster, "civicq_before", args.scale, Path(args.before).resolve()) if args.before else None

        pg_scale = max(1, round(our_rows / 100_000))
        create_database(cluster, "pgbench")
        kw = cluster.conninfo("pgbench")
        env = dict(os.environ, PGPASSWORD=str(kw["password"]))
        pgbench = cluster.bin_dir / "pgbench"
        cmd = [str(pgbench), "-i", "-q", "-s", str(pg_scale), "-h", "127.0.0.1", "-p", str(kw["port"]),
               "-U", str(kw["user"]), "pgbench"]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=3600)
        theirs = time.perf_counter() - t0
        their_rows = 100_000 * pg_scale + 10 * pg_scale + pg_scale
        bench_tables = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"]
        with psycopg.connect(**kw) as conn:
            their_physical = conn.execute(PHYSICAL, {"t": bench_tables}).fetchone()

    our_rate, their_rate = our_rows / ours, their_rows / theirs
    print(f"civicq-ops db seed --scale {args.scale}: {our_rows:,} rows in {ours:.2f}s = {our_rate:,.0f} rows/s")
    if before:
        print(f"  the earlier civicq-ops ({args.before}): {before[0]:,} rows in {before[1]:.2f}s = "
              f"{before[0] / before[1]:,.0f} rows/s; now {ours / before[1]:.2f} of its time")
    print(f"pgbench -i -s {pg_scale}:              {their_rows:,} rows in {theirs:.2f}s = {their_rate:,.0f} rows/s")
    print(f"ratio (ours / pgbench): {our_rate / their_rate:.2f}  (goal >= 0.30)")
    for label, (idx, fks, checks, triggers, size) in (("civicq-ops loaded tables", ours_physical),
                                                      ("pgbench tables", their_physical)):
        print(f"  {label}: {idx} indexes, {fks} foreign keys, {checks} CHECK constraints, {triggers} triggers, {size}")


if __name__ == "__main__":
    main()
