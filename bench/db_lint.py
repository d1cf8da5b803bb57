"""Benchmark `civicq-ops db lint` on the shipped migrations against its own parts, in one run.

Prints, as medians of interleaved runs on a migrated and seeded database: the whole command
(`db lint base:head`, a new process each time), squawk alone on the same rendered SQL (what a
static linter costs), and the in-process phases (alembic offline render, squawk, live context).
Goal (issue 16): the whole command under 2 s with a live target.
Usage: .venv/bin/python bench/db_lint.py [--runs 5] [--bin-dir /usr/lib/postgresql/15/bin]
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

from bench._cluster import bench_cluster, civicq_project  # noqa: E402
from civicq_ops.civicq.migration_lint import lint  # noqa: E402

SQUAWK = str(Path(sys.executable).with_name("squawk"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bin-dir", default=None)
    args = ap.parse_args()
    with bench_cluster(args.bin_dir) as cluster, tempfile.TemporaryDirectory() as work:
        cfg, project, target = civicq_project(cluster, work, scale=1)
        sql = Path(work) / "all.sql"
        rendered = subprocess.run([sys.executable, "-m", "civicq_ops", "--config", str(cfg), "db", "migrate", "--sql",
                                   "--from", "base"], capture_output=True, text=True, cwd=work,
                                  stdin=subprocess.DEVNULL, timeout=120, check=True).stdout
        sql.write_text(rendered)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
        whole, alone, phases = [], [], []
        for _ in range(args.runs):  # interleaved: the command, then squawk alone, then the phases
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "civicq_ops", "--config", str(cfg), "db", "lint", "base:head",
                            "--format", "json"], capture_output=True, cwd=work, env=env, stdin=subprocess.DEVNULL,
                           timeout=120)
            whole.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([SQUAWK, str(sql)], capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
            alone.append(time.perf_counter() - t0)
            phases.append(lint(project, target, "base:head").timings)
        med = statistics.median
        total = med(whole)
        print(f"db lint base:head (whole command, live target): {total:.3f} s  (goal < 2 s: "
              f"{'met' if total < 2 else 'missed'})")
        print(f"squawk alone on the same SQL:                  {med(alone):.3f} s  "
              f"(db lint / squawk alone = {total / med(alone):.1f}x)")
        for phase in ("render", "squawk", "live", "total"):
            values = [p[phase] for p in phases if phase in p]
            if values:
                print(f"  in-process {phase:<7} {med(values):.3f} s  ({med(values) / total:.0%} of the command)")


if __name__ == "__main__":
    main()
