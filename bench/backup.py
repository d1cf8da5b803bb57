"""Benchmark `backup create` against a plain `pg_dump -Fc` of the same database, in one run.

Goals: custom format at most 1.15 times plain pg_dump (checksums, manifest and row counts are the
overhead), and directory format with two jobs faster than plain pg_dump.
Usage: .venv/bin/python bench/backup.py [--scale 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._cluster import bench_cluster, create_database  # noqa: E402
from civicq_ops.backup.create import BackupOptions, create_backup  # noqa: E402
from civicq_ops.backup.tools import client_env, pg_tool  # noqa: E402
from civicq_ops.civicq.migrations import migrate  # noqa: E402
from civicq_ops.civicq.seeding import seed  # noqa: E402
from civicq_ops.config import load_project  # noqa: E402


def median_time(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=20)
    args = ap.parse_args()
    with bench_cluster() as cluster, tempfile.TemporaryDirectory() as work:
        url = create_database(cluster, "civicq")
        cfg = Path(work) / "civicq-ops.yaml"
        cfg.write_text(f"version: 1\ntargets:\n  bench: {{url: '{url}'}}\nbackups: {{dir: {work}/backups}}\n")
        project = load_project(cfg, env={})
        target = project.target("bench")
        migrate(project, target)
        seed(project, target, scale=args.scale)
        kw = cluster.conninfo("civicq")
        pg_dump = pg_tool("pg_dump", 18)
        counter = iter(range(1000))

        def plain():
            out = Path(work) / f"plain{next(counter)}.dump"
            subprocess.run([str(pg_dump), "-Fc", "-f", str(out), "--no-password"], env=client_env(kw), check=True)

        def ours_custom():
            create_backup(project, target, BackupOptions(format="custom", globals=False))

        def ours_directory():
            create_backup(project, target, BackupOptions(format="directory", jobs=2, globals=False))

        base = median_time(plain)
        custom = median_time(ours_custom)
        directory = median_time(ours_directory)
        size = sum(f.stat().st_size for f in Path(work).glob("plain*.dump")) / 3
    print(f"database: civicq scale {args.scale}; plain pg_dump -Fc: {base:.2f}s ({size / 1e6:.1f} MB)")
    print(f"backup create --format custom:     {custom:.2f}s  ratio {custom / base:.2f} (goal <= 1.15)")
    print(f"backup create --format directory -j2: {directory:.2f}s  ratio {directory / base:.2f} (goal < 1.00)")


if __name__ == "__main__":
    main()
