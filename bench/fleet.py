"""Benchmark fleets: targets checked per minute per worker, 1 against 2 and 3 workers, 50 against
200 targets, and where the time goes (the servers' CPU, the workers' CPU, the rest: waits and
round trips).

Two throwaway clusters with 100 small databases each (a table, an index, a few rows: cloned from a
template). For each scenario: a fresh state store database (the queue and the ledger), W worker
processes (`civicq-ops fleet worker --concurrency C`), then one job per target (the `quick` checks,
one interval) deferred at once; the time is from deferring to the last ledger row finished.

`--soak SECONDS` instead runs the real thing: a scheduler and 3 workers over the 200 targets with
`--interval`, kills one worker with SIGKILL half-way, then checks from the state store that every
(target, interval) ran exactly once and prints the lag.

Usage: .venv/bin/python bench/fleet.py [--concurrency 2] [--soak 300 --interval 30]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from bench._cluster import bench_cluster  # noqa: E402
from civicq_ops.config import load_project  # noqa: E402
from civicq_ops.fleet.queue import QUEUE, TASK, ensure_schema, make_app  # noqa: E402

PER_CLUSTER = 100
CLK = os.sysconf("SC_CLK_TCK")


def url_of(cluster, db: str) -> str:
    kw = cluster.conninfo(db)
    return f"postgresql://{kw['user']}:{kw['password']}@{kw['host']}:{kw['port']}/{db}"


def populate(cluster) -> list[str]:
    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        conn.execute("CREATE DATABASE city_template")
    with psycopg.connect(autocommit=True, **cluster.conninfo("city_template")) as conn:
        conn.execute("CREATE TABLE questions (id bigserial PRIMARY KEY, title text NOT NULL, votes int DEFAULT 0)")
        conn.execute("CREATE INDEX ON questions (votes)")
        conn.execute("INSERT INTO questions (title) SELECT 'q' || g FROM generate_series(1, 500) g")
    names = [f"city_{i:03d}" for i in range(PER_CLUSTER)]
    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE city_template").format(sql.Identifier(name)))
    return names


def cpu_of(pid: int, children: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / CLK


def server_cpu(cluster) -> float:
    """The postmaster, its children alive now, and (cutime) those it reaped."""
    pid = int((Path(cluster.data_dir) / "postmaster.pid").read_text().split()[0])
    total = cpu_of(pid, children=True)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    total += (int(fields[11]) + int(fields[12])) / CLK
            except (OSError, IndexError):
                pass
    return total


def project_file(folder: Path, clusters, per_cluster: int, state_url: str, interval: int = 30) -> Path:
    groups = "".join(f'    c{i}: {{cluster: "{url_of(c, "postgres")}", databases: {json.dumps(names[:per_cluster])}}}\n'
                     for i, (c, names) in enumerate(clusters))
    path = folder / "civicq-ops.yaml"
    path.write_text(f"version: 1\npaths: {{checks: ['{REPO / 'checks'}'], policies: []}}\n"
                    f'state: {{url: "{state_url}"}}\n'
                    f"fleet:\n  heartbeat: 2s\n  stalled_after: 10s\n  timeout: 30s\n  groups:\n{groups}"
                    f"  schedule:\n    quick: {{interval: {interval}s, tags: [quick]}}\n")
    return path


def new_state(cluster, name: str) -> str:
    with psycopg.connect(autocommit=True, **cluster.conninfo()) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_of(cluster, name)


def start_worker(config: Path, concurrency: int, seconds: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    return subprocess.Popen([sys.executable, "-m", "civicq_ops", "--quiet", "--config", str(config), "fleet", "worker",
                             "--concurrency", str(concurrency), "--for", f"{seconds}s"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def wait_for(predicate, timeout: float, step: float = 0.2):
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if predicate():
            return
        time.sleep(step)
    raise SystemExit("bench: timed out")


def scenario(clusters, per_cluster: int, workers: int, concurrency: int, n: int) -> dict:
    state_url = new_state(clusters[0][0], f"fleet_state_{n}")
    folder = Path(tempfile.mkdtemp(prefix="civicq-bench-fleet-"))
    config = project_file(folder, clusters, per_cluster, state_url)
    project = load_project(config, env={})
    ensure_schema(state_url)
    procs = [start_worker(config, concurrency, 600) for _ in range(workers)]
    state = psycopg.connect(state_url, autocommit=True)
    try:
        wait_for(lambda: state.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0] == workers, 60)
        targets = [f"c{i}/{name}" for i, (_, names) in enumerate(clusters) for name in names[:per_cluster]]
        app = make_app(state_url)
        app.open()
        cpu0 = sum(cpu_of(p.pid) for p in procs), sum(server_cpu(c) for c, _ in clusters)
        t0 = time.monotonic()
        for name in targets:
            app.configure_task(TASK, lock=f"target:{name}", queue=QUEUE).defer(target=name, check_group="quick", slot=0,
                                                                              due_at=time.time())
        app.close()
        wait_for(lambda: state.execute("SELECT to_regclass('fleet_runs') IS NOT NULL AND "
                                       "(SELECT count(*) FROM fleet_runs WHERE finished_at IS NOT NULL) = %s",
                                       (len(targets),)).fetchone()[0], 900, 0.05)
        wall = time.monotonic() - t0
        cpu1 = sum(cpu_of(p.pid) for p in procs), sum(server_cpu(c) for c, _ in clusters)
        bad = state.execute("SELECT count(*) FROM fleet_runs WHERE status = 'down'").fetchone()[0]
        job_s = state.execute("SELECT avg(finished_at - claimed_at) FROM fleet_runs").fetchone()[0]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        state.close()
    del project
    return {"targets": len(targets), "workers": workers, "wall_s": wall, "per_min": len(targets) / wall * 60,
            "per_min_per_worker": len(targets) / wall * 60 / workers, "worker_cpu_s": cpu1[0] - cpu0[0],
            "server_cpu_s": cpu1[1] - cpu0[1], "down": bad, "job_s": job_s, "load": os.getloadavg()[0]}


def soak(clusters, seconds: int, interval: int, concurrency: int) -> None:
    state_url = new_state(clusters[0][0], "fleet_soak")
    folder = Path(tempfile.mkdtemp(prefix="civicq-bench-fleet-"))
    config = project_file(folder, clusters, PER_CLUSTER, state_url, interval)
    ensure_schema(state_url)
    procs = [start_worker(config, concurrency, seconds + 120) for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    scheduler = subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(config), "fleet", "schedule",
                                  "--for", f"{seconds}s"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
    time.sleep(seconds / 2)
    procs[0].send_signal(signal.SIGKILL)
    killed = time.time()
    out, _ = scheduler.communicate(timeout=seconds + 60)
    with psycopg.connect(state_url, autocommit=True) as state:
        wait_for(lambda: state.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
                 .fetchone()[0] == 0, 120)
        rows = state.execute("SELECT target, slot, attempts, finished_at - due_at, claimed_at FROM fleet_runs").fetchall()
        history = state.execute("SELECT targets FROM runs").fetchall()
        retried = state.execute("SELECT max(finished_at) - %s FROM fleet_runs WHERE attempts > 1", (killed,)).fetchone()[0]
    for p in procs[1:]:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=60)
    slots: dict[str, list[int]] = {}
    for target, slot, *_ in rows:
        slots.setdefault(target, []).append(slot)
    gaps = sum(1 for s in slots.values() if sorted(s) != list(range(min(s), max(s) + 1)))
    recorded: dict[str, int] = {}
    for (targets,) in history:
        for name in json.loads(targets):
            recorded[name] = recorded.get(name, 0) + 1
    lags = sorted(r[3] for r in rows)
    print(f"soak: {len(slots)} targets, {len(rows)} (target, interval) rows, {sum(1 for r in rows if r[2] > 1)} retried "
          f"after the SIGKILL (last one {retried or 0:.1f}s after it), targets with a skipped interval: {gaps}, "
          f"history rows == ledger rows: {recorded == {t: len(s) for t, s in slots.items()}}")
    print(f"soak: lag p50 {lags[len(lags) // 2]:.2f}s p95 {lags[int(len(lags) * 0.95)]:.2f}s max {lags[-1]:.2f}s; "
          f"{out.decode().strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=2, help="jobs at once per worker")
    parser.add_argument("--soak", type=int, default=0, help="seconds of a scheduler + 3 workers run instead")
    parser.add_argument("--interval", type=int, default=30)
    args = parser.parse_args()
    with bench_cluster() as a, bench_cluster() as b:
        t0 = time.monotonic()
        clusters = [(a, populate(a)), (b, populate(b))]
        print(f"2 clusters x {PER_CLUSTER} databases created in {time.monotonic() - t0:.1f}s; {os.cpu_count()} cores")
        if args.soak:
            soak(clusters, args.soak, args.interval, args.concurrency)
            return
        results = []
        for n, (per_cluster, workers) in enumerate([(25, 1), (100, 1), (100, 2), (100, 3)]):
            r = scenario(clusters, per_cluster, workers, args.concurrency, n)
            results.append(r)
            print(f"{r['targets']:4d} targets, {r['workers']} worker(s) x {args.concurrency}: {r['wall_s']:6.1f}s, "
                  f"{r['per_min']:6.0f} targets/min ({r['per_min_per_worker']:.0f} per worker); CPU: workers "
                  f"{r['worker_cpu_s']:.1f}s, servers {r['server_cpu_s']:.1f}s; one job {r['job_s'] * 1000:.0f} ms "
                  f"(claim to finish); down {r['down']}; load average {r['load']:.1f}")
        one50, one200, two, three = results
        print(f"ratios: 200 vs 50 targets (1 worker): time x{one200['wall_s'] / one50['wall_s']:.2f} for x4 targets; "
              f"2 workers vs 1: throughput x{two['per_min'] / one200['per_min']:.2f}; "
              f"3 workers vs 1: x{three['per_min'] / one200['per_min']:.2f}")
        for r in results:
            busy = r["wall_s"] * (os.cpu_count() or 1)
            cpu_per_target = (r["worker_cpu_s"] + r["server_cpu_s"]) / r["targets"]
            print(f"where the time goes ({r['targets']} targets, {r['workers']} worker(s)): workers' Python "
                  f"{r['worker_cpu_s'] / r['targets'] * 1000:.0f} ms CPU per target, servers "
                  f"{r['server_cpu_s'] / r['targets'] * 1000:.0f} ms CPU per target; the machine's cores "
                  f"{(r['worker_cpu_s'] + r['server_cpu_s']) / busy:.0%} busy with both; one job waits "
                  f"{max(0.0, r['job_s'] - cpu_per_target) * 1000:.0f} ms (round trips, the state store's commits, "
                  f"other processes on the cores); {60 / cpu_per_target:.0f} targets per CPU-minute")


if __name__ == "__main__":
    main()
