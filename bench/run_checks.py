"""Benchmark the check suite (issue 14): every figure is a ratio measured in the same run.

1. `civicq-ops run checks --format json` (start-up included) against the same rendered SQL in one
   psql session, interleaved pair by pair (ours, psql, ours, psql...), on the seeded CivicQ database
   and then with extra tables (each with a serial key and an index, analyzed): the median ratio, the
   server's own time for the SQL (planning and execution, from pg_stat_statements with
   track_planning on), and peak RSS of each process. The database is CivicQ seeded at --scale 20.
   check_postgres (its 22 actions) is timed the same way when it is installed.
2. Start-up: `--version` (goal < 0.1 s), `validate` of the shipped catalogue cold (no catalogue
   cache) and with an unchanged cache (goals < 0.5 s and < 0.15 s), `checks list` (< 0.3 s).

Every size is measured on each PostgreSQL major of --versions (default 15 and 18: 15 from
/usr/lib/postgresql/15/bin, 18 the embedded wheel), one cluster per major reused across the sizes
(the extra tables are added on top of the previous size's). Peak RSS is measured through a small
launcher (bench/_peak_rss.py): wait4 straight from this process reports this process's own peak for
every child, because exec seeds a program's maxrss from the memory it was vforked from. For
check_postgres's `sh -c` loop the figure is its largest perl call. --breakdown prints the server time
of each check's query (pg_stat_statements total_exec_time), the top 10, at every size.

Usage: .venv/bin/python bench/run_checks.py [--tables 0,1000] [--versions 15,18] [--pairs 3] [--breakdown]
       [--bin-dir DIR] (--tables 0,1000,10000,30000 for the issue's full table; --quick is --tables 0,1000)
"""

from __future__ import annotations

import argparse
import os
import signal
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
LAUNCHER = [sys.executable, "-S", str(REPO / "bench" / "_peak_rss.py")]
# The PostgreSQL majors --versions knows: Debian's install, or None for the embedded wheel's server.
BIN_DIRS = {"15": "/usr/lib/postgresql/15/bin", "16": "/usr/lib/postgresql/16/bin",
            "17": "/usr/lib/postgresql/17/bin", "18": None}


def run_once(cmd: list[str], env: dict, cwd: Path = REPO) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one process and its descendants, both measured by the launcher
    (from its fork to its wait4: the launcher's own start-up is not counted)."""
    fd, out = tempfile.mkstemp(prefix="civicq-rss-")
    os.close(fd)
    try:
        subprocess.run([*LAUNCHER, out, *cmd], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=1800)
        kib, wall = Path(out).read_text().split()
        return float(wall), int(kib) / 1024
    finally:
        os.unlink(out)


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
    # As `run checks` sends each check: a read-only transaction with JIT off (engine/run.py _execute).
    return "\n".join(f"BEGIN READ ONLY;\nSET LOCAL jit = off;\n{sql};\nCOMMIT;"
                     for _, sql in suite_parts(project, target)) + "\n"


def suite_parts(project, target) -> list[tuple[str, str]]:
    """(check id, SQL with literals) of every check `run checks` would run on the target."""
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
        parts.append((check.id, render_check(check, resolve_params(check, {}), caps, facts).literal()))
    return parts


def add_tables(url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        # Tables only: their indexes and sequences are named bench_t... too.
        start = conn.execute("SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname ~ '^bench_t[0-9]+$'").fetchone()[0]
        for i in range(start, count, 500):
            stmts = ";".join(f"CREATE TABLE bench_t{j} (id serial PRIMARY KEY, a int, b text); CREATE INDEX ON bench_t{j} (a)"
                             for j in range(i, min(count, i + 500)))
            conn.execute(stmts)
        conn.execute("ANALYZE")


def server_time(url: str, psql: list[str], psql_env: dict, sql_file: Path) -> tuple[float, float]:
    """(execution, planning) seconds the server spent on the suite's statements, one psql run, read
    from pg_stat_statements with track_planning on for that session: planning a query over the
    catalog views costs the server as much as executing it on a small database."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    planned = sql_file.with_suffix(".planned.sql")
    planned.write_text("SET pg_stat_statements.track_planning = on;\n" + sql_file.read_text())
    try:
        run_once([*psql, "-f", str(planned)], psql_env)
    finally:
        planned.unlink()
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT sum(total_exec_time), sum(total_plan_time) FROM pg_stat_statements "
                           "WHERE query NOT LIKE '%pg_stat_statements%' "
                           "AND query !~* '^\\s*(BEGIN|COMMIT|SET)'").fetchone()
    return float(row[0] or 0) / 1000, float(row[1] or 0) / 1000


def check_breakdown(url: str, project, target, top: int = 10) -> tuple[list[tuple[str, float]], dict[str, str]]:
    """(check id, server milliseconds) of the `top` checks by pg_stat_statements total_exec_time, each
    check's rendered SQL run once in a READ ONLY transaction, with the statistics reset before each
    (a marking comment would not do: PostgreSQL 18 keeps no leading comment in the query text); and
    the checks whose SQL failed, with the server's message."""
    import psycopg

    failed, times = {}, []
    server_ms = ("SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
                 "WHERE query !~* '^\\s*(BEGIN|COMMIT|SET|SELECT pg_stat_statements_reset)'")
    with psycopg.connect(url, autocommit=True) as conn:
        for check_id, sql in suite_parts(project, target):
            conn.execute("SELECT pg_stat_statements_reset()")
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")
                    conn.execute(sql.encode()).fetchall()  # type: ignore[call-overload]
            except psycopg.Error as e:
                failed[check_id] = str(e).splitlines()[0]
            times.append((check_id, float(conn.execute(server_ms).fetchone()[0])))  # type: ignore[index]
    return sorted(times, key=lambda t: -t[1])[:top], failed


def errored_checks(cmd: list[str], env: dict) -> dict[str, str]:
    """The checks one `run checks --format json` reported as errors (a check that fails is not timed)."""
    import json

    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, stdin=subprocess.DEVNULL, timeout=1800).stdout
    try:
        doc = json.loads(out)
    except ValueError:
        return {"(run)": "no JSON on stdout"}
    return {f["check"]: (f.get("reason") or f.get("message") or "")[:120] for f in doc.get("findings", [])
            if f.get("status") == "error"}


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


def measure_version(major: str, bin_dir: str | None, sizes: list[int], args, env: dict, before: Path | None,
                    before_dir: Path | None) -> list[dict]:
    """Every size on one cluster of PostgreSQL `major` (the extra tables grow from size to size)."""
    rows = []
    with bench_cluster(bin_dir) as cluster:
        server_major = cluster.server_version().major
        if major and str(server_major) != major:
            raise SystemExit(f"--versions {major}: {cluster.bin_dir} is PostgreSQL {server_major}")
        url = create_database(cluster, "civicq")
        with __import__("psycopg").connect(url, autocommit=True) as c:
            c.execute("CREATE EXTENSION pg_stat_statements")
            c.execute("CREATE EXTENSION pgstattuple")
        project = load_project(REPO / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": url})
        target = project.target()
        migrate(project, target)
        seed(project, target, scale=args.seed_scale)  # the set-up: CivicQ at --scale 20
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
                t0 = time.perf_counter()
                add_tables(url, n)
                print(f"PostgreSQL {server_major}: {n:,} extra tables in place ({time.perf_counter() - t0:.0f}s)",
                      flush=True)
            sql_file = Path(tempfile.mkstemp(suffix=".sql")[1])
            sql_file.write_text(rendered_suite(project, target))
            pair = interleaved(ours, [*psql, "-f", str(sql_file)], run_env, psql_env, args.pairs)
            executing, planning = server_time(url, psql, psql_env, sql_file)
            server = executing + planning
            sql_file.unlink()
            row = {"version": server_major, "tables": n, **pair, "server": server, "planning": planning}
            if peer:
                row["peer"] = interleaved(ours, peer, run_env, psql_env, args.pairs)
            if before_dir:
                old_env = dict(run_env, PYTHONPATH=str(before))
                subprocess.run(ours, env=old_env, cwd=before_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, timeout=600)
                row["before"] = interleaved(ours, ours, run_env, old_env, args.pairs, cwd_b=before_dir)
            rows.append(row)
            goal = 1.3 * server + 0.3
            row["goal_met"] = pair["a"] <= goal
            print(f"PG{server_major} +{n:,} tables: run checks {pair['a']:.2f}s ({pair['rss_a']:.0f} MiB), same SQL in "
                  f"psql {pair['b']:.2f}s: ratio {pair['ratio']:.2f} (interleaved, median of {args.pairs}); server "
                  f"time {server:.2f}s (planning {planning:.2f}s of it), goal run checks <= {goal:.2f}s: "
                  f"{'met' if row['goal_met'] else 'MISSED'}",
                  flush=True)
            if before_dir:
                b = row["before"]
                print(f"  the earlier civicq-ops ({before}): {b['b']:.2f}s ({b['rss_b']:.0f} MiB); now "
                      f"{b['ratio']:.2f} of its time (interleaved)")
            if peer:
                p = row["peer"]
                print(f"  check_postgres 22 actions {p['b']:.2f}s ({p['rss_b']:.0f} MiB, its largest perl call): "
                      f"civicq-ops is {1 / p['ratio']:.2f}x faster (goal >= 2x)", flush=True)
            errors = errored_checks(ours, run_env)
            row["errors"] = sorted(errors)
            for check_id, reason in sorted(errors.items()):
                print(f"  run checks: {check_id} errored ({reason}): its time is not in the figures", flush=True)
            if args.breakdown:
                top, failed = check_breakdown(url, project, target)
                print("  server time per check (pg_stat_statements total_exec_time, top 10):")
                for check_id, ms in top:
                    print(f"    {ms:9.1f} ms  {check_id}")
                for check_id, reason in sorted(failed.items()):
                    print(f"    failed: {check_id}: {reason}")
        if not peer:
            print("  check_postgres is not installed: no peer comparison (Debian package check-postgres; "
                  "scripts/ensure-bench-deps.sh installs it)")
    return rows


def summary(rows: list[dict]) -> str:
    """The rows as the README's Markdown table."""
    lines = ["| PG | extra tables | run checks | psql, same SQL | server time (planning + execution) "
             "| goal <= 1.3 x server + 0.3 s "
             "| check_postgres, 22 actions | ratio (goal >= 2x) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r.get("peer")
        peer = f"{p['b']:.2f} s, {p['rss_b']:.0f} MiB | {1 / p['ratio']:.2f}x" if p else "n/a | n/a"
        errs = f" ({len(r['errors'])} checks errored)" if r["errors"] else ""
        lines.append(f"| {r['version']} | {r['tables']:,}{errs} | {r['a']:.2f} s, {r['rss_a']:.0f} MiB | {r['b']:.2f} s "
                     f"| {r['server']:.2f} s | {'met' if r['goal_met'] else 'missed'} "
                     f"({1.3 * r['server'] + 0.3:.2f} s) | {peer} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the same as --tables 0,1000")
    ap.add_argument("--tables", default="0,1000", help="extra table counts, e.g. 0,1000,10000,30000")
    ap.add_argument("--versions", default="15,18",
                    help=f"PostgreSQL majors, each on its own cluster (known: {', '.join(BIN_DIRS)}; 18 is the embedded one)")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved runs of each command per size")
    ap.add_argument("--seed-scale", type=int, default=20, help="db seed --scale of the measured database (default 20)")
    ap.add_argument("--breakdown", action="store_true", help="the top 10 checks by server time at every size")
    ap.add_argument("--bin-dir", help="one PostgreSQL install to measure instead of --versions")
    ap.add_argument("--before", help="a checkout of an earlier civicq-ops (e.g. /work/main): also time it, interleaved")
    args = ap.parse_args()
    # A TERM (or an INT where the shell started this in the background, ignoring INT) still stops the
    # clusters: SystemExit runs the `finally` of bench_cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    before = Path(args.before).resolve() if args.before else None
    before_dir = before_copy(before) if before else None
    sizes = [0, 1000] if args.quick else sorted(int(n) for n in args.tables.split(","))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    if args.bin_dir:
        clusters = [("", args.bin_dir)]
    else:
        clusters = []
        for major in (v.strip() for v in args.versions.split(",") if v.strip()):
            if major not in BIN_DIRS:
                raise SystemExit(f"--versions: unknown PostgreSQL {major} (known: {', '.join(BIN_DIRS)})")
            bin_dir = BIN_DIRS[major]
            if bin_dir and not Path(bin_dir, "postgres").exists():
                print(f"PostgreSQL {major}: {bin_dir} is not installed (scripts/ensure-deps.sh): skipped")
                continue
            clusters.append((major, bin_dir))
    floor = run_once(["true"], env)[1]
    print(f"peak RSS figures include the launcher's floor of {floor:.1f} MiB (`true` through it)", flush=True)
    rows = []
    for major, bin_dir in clusters:
        rows += measure_version(major, bin_dir, sizes, args, env, before, before_dir)
    print(summary(rows))
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
