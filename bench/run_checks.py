"""Benchmark the check suite (issue 14): every figure is a ratio measured in the same run.

1. `civicq-ops run checks --format json` (start-up included) against the same rendered SQL in one
   psql session, interleaved pair by pair (ours, psql, ours, psql...), on the seeded CivicQ database
   and then with extra tables (each with a serial key and an index, analyzed): the median ratio, the
   server's own execution time of the SQL (pg_stat_statements), and peak RSS of each process.
   check_postgres (its 22 actions) is timed the same way when it is installed.
2. Start-up: `--version` (goal < 0.1 s), `validate` of the shipped catalogue cold (no catalogue
   cache) and with an unchanged cache (goals < 0.5 s and < 0.15 s), `checks list` (< 0.3 s).

Usage: .venv/bin/python bench/run_checks.py [--tables 0,1000] [--pairs 3] [--bin-dir DIR]
       (--tables 0,1000,10000,30000 for the issue's full table; --quick is --tables 0,1000)
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


def run_once(cmd: list[str], env: dict, cwd: Path = REPO) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one process (its own rusage, from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def timed(cmd: list[str], env: dict, runs: int = 3, cwd: Path = REPO) -> float:
    return statistics.median(run_once(cmd, env, cwd)[0] for _ in range(runs))


def interleaved(a: list[str], b: list[str], env_a: dict, env_b: dict, pairs: int, cwd_b: Path = REPO) -> dict:
    """A and B in turn, `pairs` times: medians of each, of the ratios pair by pair, and peak RSS."""
    ta, tb, ra, rb, ratios = [], [], [], [], []
    for _ in range(pairs):
        wa, ma = run_once(a, env_a)
        wb, mb = run_once(b, env_b, cwd_b)
        ta.append(wa)
        tb.append(wb)
        ra.append(ma)
        rb.append(mb)
        ratios.append(wa / wb)
    return {"a": statistics.median(ta), "b": statistics.median(tb), "ratio": statistics.median(ratios),
            "rss_a": max(ra), "rss_b": max(rb)}


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
            stmts = ";".join(f"CREATE TABLE bench_t{j} (id serial PRIMARY KEY, a int, b text); CREATE INDEX ON bench_t{j} (a)"
                             for j in range(i, min(count, i + 500)))
            conn.execute(stmts)
        conn.execute("ANALYZE")


def server_time(url: str, psql: list[str], psql_env: dict, sql_file: Path) -> float:
    """Seconds the server spent executing the suite's statements (pg_stat_statements), one psql run."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    run_once([*psql, "-f", str(sql_file)], psql_env)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT sum(total_exec_time) FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' "
                           "AND query !~* '^\\s*(BEGIN|COMMIT)'").fetchone()
    return float(row[0] or 0) / 1000


def check_postgres_cmd(cluster, kw: dict) -> list[str] | None:
    """check_postgres's 22 actions in one call per action (a shell loop), when it is installed."""
    import shutil

    found = shutil.which("check_postgres.pl") or shutil.which("check_postgres")
    if not found:
        return None
    actions = ["autovac_freeze", "backends", "bloat", "connection", "database_size", "dbstats", "disabled_triggers",
               "hitratio", "last_analyze", "last_vacuum", "listener", "locks", "query_time", "relation_size",
               "sequence", "settings_checksum", "table_size", "index_size", "txn_idle", "txn_time", "txn_wraparound",
               "wal_files"]
    conn = f"-H 127.0.0.1 -p {kw['port']} -u {kw['user']} -db civicq"
    loop = "; ".join(f"{found} {conn} --action={a} >/dev/null 2>&1" for a in actions)
    return ["sh", "-c", loop]


def before_copy(src: Path) -> Path:
    """A folder with `src`'s project file, checks and policies, whose own .civicq-ops/ the earlier
    civicq-ops uses (its state store may be of an older schema)."""
    import shutil

    folder = Path(tempfile.mkdtemp(prefix="civicq-before-"))
    shutil.copy(src / "civicq-ops.yaml", folder / "civicq-ops.yaml")
    for name in ("checks", "policies"):
        if (src / name).is_dir():
            shutil.copytree(src / name, folder / name)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the same as --tables 0,1000")
    ap.add_argument("--tables", default="0,1000", help="extra table counts, e.g. 0,1000,10000,30000")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved runs of each command per size")
    ap.add_argument("--bin-dir", help="PostgreSQL binaries (default: the embedded PostgreSQL 18)")
    ap.add_argument("--before", help="a checkout of an earlier civicq-ops (e.g. /work/main): also time it, interleaved")
    args = ap.parse_args()
    before = Path(args.before).resolve() if args.before else None
    before_dir = before_copy(before) if before else None
    sizes = [0, 1000] if args.quick else sorted(int(n) for n in args.tables.split(","))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    rows = []
    with bench_cluster(args.bin_dir) as cluster:
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
        peer = check_postgres_cmd(cluster, kw)
        ours = [*OPS, "run", "checks", "--format", "json"]
        subprocess.run(ours, env=run_env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, timeout=600)  # warms the catalogue cache and the state store
        for n in sizes:
            if n:
                add_tables(url, n)
            sql_file = Path(tempfile.mkstemp(suffix=".sql")[1])
            sql_file.write_text(rendered_suite(project, target))
            pair = interleaved(ours, [*psql, "-f", str(sql_file)], run_env, psql_env, args.pairs)
            server = server_time(url, psql, psql_env, sql_file)
            sql_file.unlink()
            row = {"tables": n, **pair, "server": server}
            if peer:
                row["peer"] = interleaved(ours, peer, run_env, psql_env, max(1, args.pairs // 2))
            if before_dir:
                old_env = dict(run_env, PYTHONPATH=str(before))
                subprocess.run(ours, env=old_env, cwd=before_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, timeout=600)
                row["before"] = interleaved(ours, ours, run_env, old_env, args.pairs, cwd_b=before_dir)
            rows.append(row)
            goal = 1.3 * server + 0.3
            print(f"+{n:,} tables: run checks {pair['a']:.2f}s ({pair['rss_a']:.0f} MiB), same SQL in psql "
                  f"{pair['b']:.2f}s: ratio {pair['ratio']:.2f} (interleaved, median of {args.pairs}); server "
                  f"execution {server:.2f}s, goal run checks <= {goal:.2f}s: {'met' if pair['a'] <= goal else 'MISSED'}")
            if before_dir:
                b = row["before"]
                print(f"  the earlier civicq-ops ({before}): {b['b']:.2f}s ({b['rss_b']:.0f} MiB); now "
                      f"{b['ratio']:.2f} of its time (interleaved)")
            if peer:
                p = row["peer"]
                print(f"  check_postgres 22 actions {p['b']:.2f}s ({p['rss_b']:.0f} MiB): civicq-ops is "
                      f"{1 / p['ratio']:.2f}x faster (goal >= 2x)")
        if not peer:
            print("  check_postgres is not installed: no peer comparison (Debian package check-postgres)")
    version = timed([*OPS, "--version"], env, runs=7)
    cold = timed([*OPS, "validate"], dict(env, CIVICQ_NO_CATALOG_CACHE="1"), runs=5)
    subprocess.run([*OPS, "validate"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                   timeout=120)  # records the cache entry
    warm = timed([*OPS, "validate"], env, runs=5)
    listing = timed([*OPS, "checks", "list"], env, runs=5)
    if before_dir:
        old_env = dict(env, PYTHONPATH=str(before))
        for label, cmd in (("--version", [*OPS, "--version"]), ("validate", [*OPS, "validate"])):
            b = interleaved(cmd, cmd, env, old_env, 5, cwd_b=before_dir)
            print(f"  {label}: {b['a']:.3f}s now, {b['b']:.3f}s before: {b['ratio']:.2f} of its time (interleaved)")
    print(f"civicq-ops --version {version:.3f}s (goal < 0.1 s); validate cold {cold:.3f}s (goal < 0.5 s), "
          f"with an unchanged cache {warm:.3f}s (goal < 0.15 s): {cold / warm:.1f}x; checks list {listing:.3f}s "
          "(goal < 0.3 s)")


if __name__ == "__main__":
    main()
