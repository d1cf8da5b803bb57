"""Benchmark: `db seed --scale N` rows per second against `pgbench -i` on the same server, same run.

Usage: .venv/bin/python bench/seed.py [--scale 100] [--bin-dir DIR] [--before CHECKOUT] [--rounds 3]
pgbench scale S loads 100,000 * S rows; civicq scale N loads about 10,500 * N rows into tables that
carry the full CivicQ index set (the goal: at least 0.3x pgbench's rate). `--before` also seeds a
second database with an earlier civicq-ops (e.g. /work/main), in the same run. The runs are
interleaved (ours, before, pgbench, ours, ...), each after a CHECKPOINT so none pays for another's
dirty pages, and the medians are compared. CPU seconds are printed beside the wall times (a
machine shared with other work stretches the wall times, much less the CPU): the client's user
CPU, and the server's user + system CPU (the postmaster's exited children: backends, parallel
workers, autovacuum). The physical difference is printed: the indexes, foreign keys and checks
on the loaded tables against pgbench's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
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


PHASES: list[dict[str, float]] = []  # our runs' phases (SeedResult.phases)
CPU: dict[str, list[tuple[float, float]]] = {"ours": [], "before": [], "pgbench": []}  # (client, server)


def _server_cpu(cluster) -> float:
    """User + system seconds of the postmaster's exited (reaped) children: the server's work."""
    fields = Path(f"/proc/{cluster.status().pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime


def _settled_server_cpu(cluster, name: str) -> float:
    """The server's CPU once the sessions on database `name` have exited (and been counted)."""
    import psycopg

    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        for _ in range(100):
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                                (name,)).fetchone():
                break
            time.sleep(0.02)
    return _server_cpu(cluster)


def _seeded(cluster, name: str, scale: int, checkout: Path | None = None) -> tuple[int, float, str]:
    """(rows, seconds of the scaled seed alone, url) on a new database `name`."""
    url = create_database(cluster, name)
    project = load_project(REPO / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": url})
    target = project.target()
    migrate(project, target)
    seed(project, target)  # the small dev set first, as a user would have
    if checkout is None:
        server0, client0, t0 = _server_cpu(cluster), resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
        result = seed(project, target, scale=scale)
        seconds = time.perf_counter() - t0
        client = resource.getrusage(resource.RUSAGE_SELF).ru_utime - client0
        CPU["ours"].append((client, _settled_server_cpu(cluster, name) - server0))
        PHASES.append(result.phases)
        return result.total, seconds, url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    code = ("import resource, sys, time; from civicq_ops.config import load_project; "
            "from civicq_ops.civicq.seeding import seed; "
            f"p = load_project('civicq-ops.yaml', env={{'CIVICQ_DATABASE_URL': {url!r}}}); "
            "c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime; t0 = time.perf_counter(); "
            f"r = seed(p, p.target(), scale={scale}).total; "
            "print(r, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0)")
    server0 = _server_cpu(cluster)
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=dict(env, PYTHONPATH=str(checkout)),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3600, check=True).stdout
    rows, seconds, client = out.split()
    CPU["before"].append((float(client), _settled_server_cpu(cluster, name) - server0))
    return int(rows), float(seconds), url


def _checkpoint(cluster) -> None:
    import psycopg

    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        conn.execute("CHECKPOINT")


def _drop_database(cluster, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=100, help="civicq scale units (10,000 votes each)")
    ap.add_argument("--bin-dir", help="PostgreSQL binaries (default: the embedded PostgreSQL 18)")
    ap.add_argument("--before", help="a checkout of an earlier civicq-ops: also seed with it, same server")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are compared")
    args = ap.parse_args()
    import psycopg

    load_before = os.getloadavg()[0]
    ours_t: list[float] = []
    before_t: list[float] = []
    theirs_t: list[float] = []
    with bench_cluster(args.bin_dir) as cluster:
        pg_scale = 0
        create_database(cluster, "pgbench")
        kw = cluster.conninfo("pgbench")
        env = dict(os.environ, PGPASSWORD=str(kw["password"]))
        for r in range(args.rounds):
            _checkpoint(cluster)
            our_rows, seconds, url = _seeded(cluster, f"civicq_{r}", args.scale)
            ours_t.append(seconds)
            if r == 0:
                tables = list(load_seed_module(load_project(REPO / "civicq-ops.yaml", env={}), "scale").TABLES)
                with psycopg.connect(url) as conn:
                    ours_physical = conn.execute(PHYSICAL, {"t": tables}).fetchone()
            _drop_database(cluster, f"civicq_{r}")
            if args.before:
                _checkpoint(cluster)
                before_rows, seconds, _ = _seeded(cluster, f"civicq_before_{r}", args.scale, Path(args.before).resolve())
                before_t.append(seconds)
                _drop_database(cluster, f"civicq_before_{r}")

            pg_scale = max(1, round(our_rows / 100_000))
            cmd = [str(cluster.bin_dir / "pgbench"), "-i", "-q", "-s", str(pg_scale), "-h", "127.0.0.1",
                   "-p", str(kw["port"]), "-U", str(kw["user"]), "pgbench"]
            _checkpoint(cluster)
            server0, client0 = _server_cpu(cluster), resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=3600)
            theirs_t.append(time.perf_counter() - t0)
            CPU["pgbench"].append((resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - client0,
                                   _settled_server_cpu(cluster, "pgbench") - server0))
        their_rows = 100_000 * pg_scale + 10 * pg_scale + pg_scale
        bench_tables = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"]
        with psycopg.connect(**kw) as conn:
            their_physical = conn.execute(PHYSICAL, {"t": bench_tables}).fetchone()

    ours, theirs = statistics.median(ours_t), statistics.median(theirs_t)
    our_rate, their_rate = our_rows / ours, their_rows / theirs
    spread = lambda ts: " ".join(f"{t:.2f}" for t in ts)  # noqa: E731

    def cpu(who: str) -> str:
        client, server = (statistics.median(c[i] for c in CPU[who]) for i in (0, 1))
        return f"; CPU: client {client:.2f}s user, server {server:.2f}s user+sys"
    print(f"{args.rounds} interleaved rounds, medians; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (2 cores here: a busy machine stretches both sides)")
    print(f"civicq-ops db seed --scale {args.scale}: {our_rows:,} rows in {ours:.2f}s = {our_rate:,.0f} rows/s"
          f"  [{spread(ours_t)}]{cpu('ours')}")
    print("  of which (medians): " + ", ".join(f"{name} {statistics.median(p.get(name, 0.0) for p in PHASES):.2f}s"
                                             for name in PHASES[0]))
    if before_t:
        b = statistics.median(before_t)
        print(f"  the earlier civicq-ops ({args.before}): {before_rows:,} rows in {b:.2f}s = "
              f"{before_rows / b:,.0f} rows/s; now {ours / b:.2f} of its time  [{spread(before_t)}]{cpu('before')}")
    print(f"pgbench -i -s {pg_scale}:              {their_rows:,} rows in {theirs:.2f}s = {their_rate:,.0f} rows/s"
          f"  [{spread(theirs_t)}]{cpu('pgbench')}")
    print(f"ratio (ours / pgbench): {our_rate / their_rate:.2f}  (goal >= 0.30)")
    per_cpu = {who: statistics.median(sum(c) for c in CPU[who]) for who in ("ours", "pgbench")}
    cpu_ratio = (our_rows / per_cpu["ours"]) / (their_rows / per_cpu["pgbench"])
    print(f"  by CPU (rows per CPU second, client + server): {cpu_ratio:.2f}")
    for label, (idx, fks, checks, triggers, size) in (("civicq-ops loaded tables", ours_physical),
                                                      ("pgbench tables", their_physical)):
        print(f"  {label}: {idx} indexes, {fks} foreign keys, {checks} CHECK constraints, {triggers} triggers, {size}")
    print("  what civicq-ops does that pgbench -i does not: 7 index builds over the million votes (pgbench: one"
          " primary key per table), 10 tables, 4 materialized views refreshed, statistics gathered before the"
          " refresh; pgbench's dataset is one table of fixed-width rows with a filler column.")


if __name__ == "__main__":
    main()
