"""Benchmark the check suite.

1. `civicq-ops run checks` (start-up included) against the same rendered SQL run in one psql
   session, on the seeded CivicQ database. Goal: at most 1.3 times.
2. The suite on catalogs of 1,000 and 10,000 extra tables (each with a primary key and an index):
   goal under 10 s at 10,000, and cost growing no faster than the catalog.
3. `civicq-ops --version` (goal < 0.25 s) and `civicq-ops validate` of the shipped YAML (< 0.5 s).

Usage: .venv/bin/python bench/run_checks.py [--quick]   (--quick skips the 10,000-table catalog)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._cluster import bench_cluster, create_database  # noqa: E402
from civicq_ops.catalog.load import project_catalog  # noqa: E402
from civicq_ops.civicq.migrations import migrate  # noqa: E402
from civicq_ops.civicq.seeding import seed  # noqa: E402
from civicq_ops.config import load_project  # noqa: E402
from civicq_ops.core.capabilities import unmet_requirement  # noqa: E402
from civicq_ops.engine.run import render_check, resolve_params  # noqa: E402
from civicq_ops.postgres.connect import connect  # noqa: E402
from civicq_ops.postgres.probe import probe  # noqa: E402
from civicq_ops.templating.render import NullFact  # noqa: E402

OPS = [sys.executable, "-m", "civicq_ops"]


def timed(cmd: list[str], env: dict, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rendered_suite(project, target) -> str:
    """Every check's SQL as `run checks` would send it, with literals, for psql."""
    catalog = project_catalog(project).catalog
    with connect(project, target) as conn:
        relations = sorted({r for c in catalog.checks.values() for r in c.requires.get("relations", [])})
        caps = probe(conn, name=target.name, environment=target.environment, local=False, relations=relations)
    # Runner facts are measured by the runner, not by psql: fixed stand-ins for the comparison.
    facts = {"connection": {"connect_ms": 1.0, "clock_skew_s": 0.0}, "disk": NullFact(), "backups": NullFact()}
    parts = []
    for check in catalog.checks.values():
        if unmet_requirement(check.requires, caps):
            continue
        parts.append("BEGIN READ ONLY;\n" + render_check(check, resolve_params(check, {}), caps, facts).literal() + ";\nCOMMIT;")
    return "\n".join(parts) + "\n"


def add_tables(url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        start = conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'bench_t%'").fetchone()[0]
        for i in range(start, count, 500):
            stmts = ";".join(f"CREATE TABLE bench_t{j} (id int PRIMARY KEY, a int, b text); CREATE INDEX ON bench_t{j} (a)"
                             for j in range(i, min(count, i + 500)))
            conn.execute(stmts)
        conn.execute("ANALYZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    with bench_cluster() as cluster:
        url = create_database(cluster, "civicq")
        with __import__("psycopg").connect(url, autocommit=True) as c:
            c.execute("CREATE EXTENSION pg_stat_statements")
            c.execute("CREATE EXTENSION pgstattuple")
        project = load_project(REPO / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": url})
        target = project.target()
        migrate(project, target)
        seed(project, target)
        run_env = dict(env, CIVICQ_DATABASE_URL=url)
        kw = cluster.conninfo("civicq")
        psql_env = dict(env, PGPASSWORD=str(kw["password"]))
        psql = [str(cluster.bin_dir / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(kw["port"]), "-U", str(kw["user"]),
                "-d", "civicq", "-o", "/dev/null"]

        def compare(label: str) -> float:
            sql_file = Path(tempfile.mkstemp(suffix=".sql")[1])
            sql_file.write_text(rendered_suite(project, target))
            ours = timed([*OPS, "run", "checks", "--format", "json"], run_env)
            base = timed([*psql, "-f", str(sql_file)], psql_env)
            sql_file.unlink()
            print(f"{label}: run checks {ours:.2f}s, same SQL in one psql session {base:.2f}s, "
                  f"ratio {ours / base:.2f}")
            return ours

        seeded = compare("seeded CivicQ database")
        print("  (goal: ratio <= 1.3)")
        sizes = [1000] if args.quick else [1000, 10000]
        results = {0: seeded}
        for n in sizes:
            add_tables(url, n)
            results[n] = compare(f"catalog + {n:,} tables")
        if 10000 in results:
            growth = (results[10000] - results[0]) / (results[1000] - results[0] + 1e-9)
            print(f"  10,000 tables: {results[10000]:.2f}s (goal < 10 s); cost growth 1k->10k: {growth:.1f}x "
                  f"for 10x the catalog (goal <= 10x)")
    version = timed([*OPS, "--version"], env, runs=5)
    validate = timed([*OPS, "validate"], env, runs=5)
    print(f"civicq-ops --version: {version:.3f}s (goal < 0.25 s); validate: {validate:.3f}s (goal < 0.5 s)")


if __name__ == "__main__":
    main()
