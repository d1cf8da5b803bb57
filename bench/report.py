"""Benchmark: `civicq-ops report` on 90 days of hourly history for the seeded database.

Usage: .venv/bin/python bench/report.py [--days 90] [--scale 0]
Starts a throwaway cluster, migrates and seeds CivicQ, runs the checks once, writes 90 days of
hourly runs (the real findings, their values moved along plausible trends) into a fresh SQLite
state store, then runs `civicq-ops report --format html` as a process and prints its wall time,
peak RSS and the file's size against the goals (< 3 s, < 200 MB, < 2 MB).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
GROWING = {"database-size", "largest-tables", "largest-indexes", "database-xid-age", "table-xid-age",
           "database-multixact-age", "table-multixact-age", "sequence-exhaustion", "integer-key-capacity"}


def synthesize_history(store, result, days: int = 90, every: timedelta = timedelta(hours=1), seed: int = 7) -> int:
    """Write `days` of runs every `every`, ending now, from one real run: growing values grow
    (with a weekly vacuum sawtooth for ages), the others wander. Returns the number of runs."""
    from civicq_ops.report.history import TRENDED

    rng = random.Random(seed)
    end = datetime.now(UTC) - every
    count = int(timedelta(days=days) / every)
    store.execute("BEGIN")
    try:
        for i in range(count):
            at = end - every * (count - 1 - i)
            share = (i + 1) / count
            findings = []
            for f in result.findings:
                value = f.value
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    if f.check in GROWING:
                        week = (i % (24 * 7)) / (24 * 7) if "xid" in f.check or "multixact" in f.check else 1
                        value = value * (0.4 + 0.6 * share) * (0.5 + 0.5 * week)
                    else:
                        value = value * (1 + rng.uniform(-0.2, 0.2))
                findings.append(dataclasses.replace(f, value=value))
            store.record_run(dataclasses.replace(result, id=f"synth{i:05d}", started_at=at, findings=findings),
                             keep_ok=TRENDED)
        store.execute("COMMIT")
    except BaseException:
        store.execute("ROLLBACK")
        raise
    return count


def main() -> None:
    from bench._cluster import bench_cluster, create_database
    from civicq_ops.civicq.migrations import migrate
    from civicq_ops.civicq.seeding import seed
    from civicq_ops.config import load_project
    from civicq_ops.state.store import StateStore
    from tests.fixtures.pg import shipped_catalog

    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--scale", type=int, default=0, help="extra `db seed --scale` units")
    args = ap.parse_args()
    with bench_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        url = create_database(cluster, "civicq")
        project = load_project(REPO / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": url})
        target = project.target()
        migrate(project, target)
        seed(project, target)
        if args.scale:
            seed(project, target, scale=args.scale)
        from civicq_ops.engine.run import RunOptions, Selection, run_checks

        result = run_checks(project, [target], shipped_catalog(), Selection(), RunOptions())
        state = Path(tmp) / "state.db"
        store = StateStore(f"sqlite:///{state}")
        t0 = time.perf_counter()
        runs = synthesize_history(store, result, days=args.days)
        rows = store.execute("SELECT count(*) FROM findings")[0][0]
        store.close()
        print(f"history: {runs} runs, {rows:,} finding rows written in {time.perf_counter() - t0:.1f}s "
              f"({state.stat().st_size / 1e6:.0f} MB)")
        config = Path(tmp) / "civicq-ops.yaml"
        config.write_text(f"version: 1\npaths: {{checks: [{REPO / 'checks'}]}}\nstate: {{url: 'sqlite:///{state}'}}\n")
        env = dict(os.environ, CIVICQ_DATABASE_URL=url)
        out = Path(tmp) / "report.html"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "civicq_ops", "--config", str(config), "report", "--format", "html",
                               "--no-record"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        out.write_text(proc.stdout)
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size_mb = out.stat().st_size / 1e6
        if proc.returncode not in (0, 1):
            print(proc.stderr)
            raise SystemExit(proc.returncode)
        print(f"report --format html on {args.days} days of hourly history: {wall:.2f}s (goal < 3 s), "
              f"peak RSS {rss_mb:.0f} MB (goal < 200 MB), file {size_mb:.2f} MB (goal < 2 MB)")


if __name__ == "__main__":
    main()
