"""Benchmark `civicq-ops watch`.

1. /metrics scrape against postgres_exporter's default scrape on the same database (the seeded
   CivicQ database, then with 10,000 extra tables): median scrape time and series count of each.
   postgres_exporter queries the server at scrape time, while `watch` serves what its last batch
   found, so the cost of that batch (the quick checks) is reported beside the scrape. Goal: our
   scrape <= 2x the exporter's, series bounded (independent of the number of tables).
2. Soak: N quick-check cycles (default 1,000) of the watch loop against the local database, with
   the clock moved 30 s per cycle so every quick check runs each time; RSS growth after warm-up
   (goal < 10 MB) and CPU per cycle. Stops early at --max-seconds and says so.

Usage: .venv/bin/python bench/watch.py [--cycles 1000] [--max-seconds 900] [--skip-scrape] [--skip-soak]
Needs prometheus-postgres-exporter for part 1 (scripts/ensure-deps.sh installs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._cluster import bench_cluster, create_database  # noqa: E402
from bench.run_checks import add_tables  # noqa: E402
from civicq_ops.civicq.migrations import migrate  # noqa: E402
from civicq_ops.civicq.seeding import seed  # noqa: E402
from civicq_ops.config import load_project  # noqa: E402

EXPORTER = shutil.which("prometheus-postgres-exporter") or shutil.which("postgres_exporter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - 127.0.0.1 only
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.2)


def scrape(url: str, runs: int = 10) -> tuple[float, int]:
    times, series = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - 127.0.0.1 only
            text = r.read().decode()
        times.append(time.perf_counter() - t0)
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return statistics.median(times), series


def stop(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def project_file(folder: Path, url: str) -> Path:
    path = folder / "civicq-ops.yaml"
    path.write_text(f"version: 1\npaths: {{checks: [{REPO / 'checks'}], policies: [{REPO / 'policies'}]}}\n"
                    f"targets:\n  db: {{url: \"{url}\", environment: test}}\ndefault_target: db\n"
                    f"state: {{url: \"sqlite:///{folder / 'state.db'}\"}}\n")
    return path


def compare_scrapes(label: str, url: str, folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    port = free_port()
    watch = subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(project_file(folder, url)), "--quiet",
                              "watch", "--listen", f"127.0.0.1:{port}", "--check", ",".join(quick_checks())],
                             env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 300)
        ours, our_series = scrape(f"http://127.0.0.1:{port}/metrics")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:  # noqa: S310
            text = r.read().decode()
        count = max(1.0, _sample(text, "civicq_watch_batch_duration_seconds_count"))
        batch = _sample(text, "civicq_watch_batch_duration_seconds_sum") / count
    finally:
        stop(watch)
    if EXPORTER is None:
        print(f"{label}: watch /metrics {ours * 1000:.1f} ms ({our_series} series), quick-check batch {batch:.2f}s; "
              "postgres_exporter not installed (scripts/ensure-deps.sh), no comparison")
        return
    eport = free_port()
    # lib/pq (the exporter's driver) defaults to sslmode=require; the local cluster has no TLS.
    exporter = subprocess.Popen([EXPORTER, f"--web.listen-address=127.0.0.1:{eport}"],
                                env=dict(env, DATA_SOURCE_NAME=url + "?sslmode=disable"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{eport}/metrics")
        theirs, their_series = scrape(f"http://127.0.0.1:{eport}/metrics")
        with urllib.request.urlopen(f"http://127.0.0.1:{eport}/metrics", timeout=60) as r:  # noqa: S310
            if _sample(r.read().decode(), "pg_up") != 1.0:
                raise SystemExit("postgres_exporter could not reach the database (pg_up != 1)")
    finally:
        stop(exporter)
    print(f"{label}: watch /metrics {ours * 1000:.1f} ms ({our_series} series) vs postgres_exporter "
          f"{theirs * 1000:.1f} ms ({their_series} series): ratio {ours / theirs:.2f} (goal <= 2); "
          f"watch's quick-check batch behind it {batch * 1000:.0f} ms ({batch / theirs:.1f}x one exporter scrape)")


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def quick_checks() -> list[str]:
    from civicq_ops.catalog.load import load_catalog

    catalog = load_catalog([REPO / "checks"], semantic=False, include_tests=False).catalog
    return sorted(c.id for c in catalog.checks.values() if "quick" in c.tags)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(url: str, folder: Path, cycles: int, max_seconds: float) -> None:
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.watch.watcher import Watcher

    project = load_project(project_file(folder, url), env={})
    watcher = Watcher(project, [project.target()], project_catalog(project).catalog, checks=quick_checks())
    now = time.time()
    warmup = min(50, cycles // 10)
    started, cpu0, rss0 = time.monotonic(), 0.0, 0.0
    done = 0
    for i in range(cycles + warmup):
        if i == warmup:
            rss0, cpu0, started = rss_mb(), time.process_time(), time.monotonic()
        watcher.step(now)
        now += 30.0
        if i >= warmup:
            done += 1
            if time.monotonic() - started > max_seconds:
                break
    wall, cpu, rss1 = time.monotonic() - started, time.process_time() - cpu0, rss_mb()
    watcher.stop()
    note = "" if done == cycles else f" (stopped at the {max_seconds:.0f}s budget)"
    print(f"soak: {done} cycles of {len(quick_checks())} quick checks{note} in {wall:.0f}s: "
          f"{wall / done * 1000:.0f} ms and {cpu / done * 1000:.1f} ms CPU per cycle; RSS {rss0:.1f} -> {rss1:.1f} MB "
          f"(growth {rss1 - rss0:+.1f} MB, goal < 10 MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--skip-scrape", action="store_true")
    ap.add_argument("--skip-soak", action="store_true")
    args = ap.parse_args()
    with bench_cluster() as cluster, tempfile.TemporaryDirectory(prefix="civicq-bench-watch-") as tmp:
        folder = Path(tmp)
        url = create_database(cluster, "civicq")
        project = load_project(REPO / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": url})
        migrate(project, project.target())
        seed(project, project.target())
        if not args.skip_soak:
            soak(url, folder, args.cycles, args.max_seconds)
        if not args.skip_scrape:
            compare_scrapes("seeded CivicQ database", url, folder)
            add_tables(url, 10000)
            compare_scrapes("with 10,000 extra tables", url, folder)


if __name__ == "__main__":
    main()
