"""Workers and a scheduler on the procrastinate queue in the shared PostgreSQL state store: every
(target, interval) once, a dead worker's job run again by another within the bound, a target that
is down is a finding while the others stay on time, and `fleet status` shows it all."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from civicq_ops.config import load_project
from civicq_ops.fleet.status import fleet_status, render
from tests.fleet.conftest import dead_url

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT_S, STALLED_AFTER_S = 1, 4
INTERVAL_S = 3
CHECKS = """version: 1
checks:
  - id: db-size
    title: Database size
    category: space
    description: The current database's size.
    query: SELECT current_database() AS datname, pg_database_size(current_database()) AS size_bytes
    subject: [datname]
    value: size_bytes
    unit: bytes
    thresholds: {critical: {gt: 1TB}}
  - id: slow
    title: A slow check
    category: space
    description: Takes two seconds, so that a worker can be killed in the middle of it.
    query: SELECT 1 AS v FROM pg_sleep(2)
    value: v
    thresholds: {critical: {gt: 5}}
"""
_n = itertools.count()


def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s: {what}")


def make_project(tmp: Path, cluster, schedule: str, include: str, extra_groups: str = "") -> Path:
    state_db = f"fleet_state_{os.getpid()}_{next(_n)}"
    with cluster.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(state_db)))
    (tmp / "checks").mkdir(exist_ok=True)
    (tmp / "checks" / "fleet.yaml").write_text(CHECKS)
    path = tmp / "civicq-ops.yaml"
    path.write_text(
        "version: 1\npaths: {checks: [checks], policies: []}\n"
        f'state: {{url: "{cluster.url(state_db)}"}}\n'
        f"fleet:\n  heartbeat: {HEARTBEAT_S}s\n  stalled_after: {STALLED_AFTER_S}s\n  timeout: 10s\n"
        f'  groups:\n    east: {{cluster: "{cluster.url()}", databases: "*", include: ["{include}"]}}\n{extra_groups}'
        f"  schedule:\n{schedule}")
    return path


def start(config: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    return subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(config), "fleet", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def state(config: Path):
    project = load_project(config, env={})
    return psycopg.connect(project.state.url, autocommit=True)


def registered(config: Path, workers: list[subprocess.Popen], timeout: float = 90) -> None:
    """Wait until every worker has registered; a worker that died says why."""
    try:
        wait_for(lambda: registered_workers(config) == len(workers) or any(w.poll() is not None for w in workers),
                 timeout, f"{len(workers)} worker(s) registered")
    finally:
        dead = [w for w in workers if w.poll() is not None]
    assert not dead, dead[0].stderr.read().decode()[-3000:] if dead[0].stderr else "a worker died"


def registered_workers(config: Path) -> int:
    with state(config) as conn:
        if conn.execute("SELECT to_regclass('procrastinate_workers') IS NULL").fetchone()[0]:
            return 0
        return conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0]


def pending(config: Path) -> int:
    with state(config) as conn:
        return conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()[0]


@pytest.fixture(scope="module")
def scheduled_fleet(fleet_cluster, tmp_path_factory):
    """Two workers and a scheduler for 7 s over 20 databases (interval 3 s) plus one target that is down."""
    tmp = tmp_path_factory.mktemp("fleet")
    (tmp / "fleet.d").mkdir()
    (tmp / "fleet.d" / "gone.yaml").write_text(f'targets:\n  gone: {{url: "{dead_url()}"}}\n')
    config = make_project(tmp, fleet_cluster, f"    quick: {{interval: {INTERVAL_S}s, checks: [db-size]}}\n", "city_*",
                          "    west: {directory: fleet.d}\n"
                          f'    lost: {{cluster: "{dead_url()}", databases: "*"}}\n')  # a group nobody can list
    workers = [start(config, "worker", "--concurrency", "2", "--for", "180s") for _ in range(2)]
    try:
        registered(config, workers)
        scheduler = start(config, "schedule", "--for", "7s")
        out, err = scheduler.communicate(timeout=60)
        assert scheduler.returncode == 0, err.decode()
        assert "fleet group or target lost cannot be listed" in err.decode(), err.decode()
        wait_for(lambda: pending(config) == 0, 30, "the queue drained")
        status = fleet_status(load_project(config, env={}))
    finally:
        stop(*workers)
    return config, out.decode(), status


def test_every_target_runs_once_per_interval(scheduled_fleet):
    config, out, _ = scheduled_fleet
    with state(config) as conn:
        rows = conn.execute("SELECT target, slot, attempts, finished_at FROM fleet_runs ORDER BY target, slot").fetchall()
        history = conn.execute("SELECT targets FROM runs").fetchall()
    slots: dict[str, list[int]] = {}
    for target, slot, attempts, finished in rows:
        assert finished is not None and attempts == 1, (target, slot)
        slots.setdefault(target, []).append(slot)
    assert len(slots) == 21
    for target, found in slots.items():
        assert found == list(range(found[0], found[0] + len(found))), f"{target}: an interval was skipped: {found}"
        assert len(found) >= 3
    recorded: dict[str, int] = {}
    for (targets,) in history:
        for name in json.loads(targets):
            recorded[name] = recorded.get(name, 0) + 1
    assert recorded == {t: len(s) for t, s in slots.items()}  # each interval in the history exactly once
    assert "deferred" in out


def test_a_target_that_is_down_is_a_finding_and_the_others_stay_on_time(scheduled_fleet):
    config, _, _ = scheduled_fleet
    with state(config) as conn:
        down = conn.execute("SELECT DISTINCT status, detail FROM fleet_runs WHERE target = 'west/gone'").fetchall()
        lags = conn.execute("SELECT finished_at - due_at FROM fleet_runs WHERE target <> 'west/gone'").fetchall()
    assert [d[0] for d in down] == ["down"] and "cannot connect" in down[0][1]
    assert max(lag for (lag,) in lags) < INTERVAL_S


def test_status_shows_workers_queue_lag_and_failures(scheduled_fleet):
    _, _, status = scheduled_fleet
    assert len(status.workers) == 2
    assert status.queue.get("succeeded", 0) >= 21 * 3 and not status.queue.get("todo")
    assert {t["target"] for t in status.targets} >= {"east/city_00", "west/gone"}
    assert all(t["lag_s"] < INTERVAL_S for t in status.targets)
    assert {f["target"] for f in status.failures} == {"west/gone"}
    assert "workers: 2" in status.text()
    # A group that cannot be listed has no job and no ledger row: status says so (review found silence).
    assert "cannot connect" in status.unlisted["lost"] and "cannot list lost:" in status.text()
    assert 'civicq_fleet_unlisted{group="lost"} 1' in render(status, "prometheus")


def test_status_metrics_carry_each_target_s_labels(scheduled_fleet):
    from prometheus_client.parser import text_string_to_metric_families

    _, _, status = scheduled_fleet
    families = {f.name: f for f in text_string_to_metric_families(render(status, "prometheus"))}
    up = {s.labels["target"]: s for s in families["civicq_fleet_target_up"].samples}
    assert up["east/city_03"].labels["city"] == "city_03" and up["east/city_03"].labels["cluster"] == "east"
    assert up["east/city_03"].value == 1 and up["west/gone"].value == 0


def test_a_job_whose_worker_was_killed_runs_again_on_another_worker_within_the_bound(fleet_cluster, tmp_path):
    config = make_project(tmp_path, fleet_cluster, "    slow: {interval: 1h, checks: [slow]}\n", "city_00")
    workers = {p.pid: p for p in (start(config, "worker", "--concurrency", "1", "--for", "180s") for _ in range(2))}
    scheduler = None
    try:
        registered(config, list(workers.values()))
        scheduler = start(config, "schedule", "--for", "60s")

        def claimed():
            with state(config) as conn:
                if conn.execute("SELECT to_regclass('fleet_runs') IS NULL").fetchone()[0]:
                    return None
                return conn.execute("SELECT worker FROM fleet_runs WHERE finished_at IS NULL").fetchone()

        (worker,) = wait_for(claimed, 30, "a worker took the job")
        victim = int(worker.split(":")[1])
        os.kill(victim, signal.SIGKILL)  # mid-job: the check sleeps for 2 s
        killed_at = time.time()
        workers[victim].wait(timeout=10)
        bound = STALLED_AFTER_S + 2 * HEARTBEAT_S + 1 + 2 + 3  # silence, recovery sweep, fetch poll, the job, slack

        def finished():
            with state(config) as conn:
                return conn.execute("SELECT attempts, finished_at, worker FROM fleet_runs WHERE finished_at IS NOT NULL"
                                    ).fetchone()

        attempts, finished_at, by = wait_for(finished, bound + 10, "the job ran again")
        assert attempts == 2 and int(by.split(":")[1]) != victim
        assert finished_at - killed_at < bound
        with state(config) as conn:
            assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # recorded once
    finally:
        stop(*[p for p in workers.values()], *([scheduler] if scheduler else []))


def test_the_state_store_restarting_under_load_loses_and_duplicates_no_job(fleet_cluster, tmp_path):
    config = make_project(tmp_path, fleet_cluster, "    quick: {interval: 2s, checks: [db-size]}\n", "city_0[0-4]")
    worker = start(config, "worker", "--concurrency", "2", "--for", "180s")
    scheduler = None
    try:
        registered(config, [worker])
        scheduler = start(config, "schedule", "--for", "9s")
        time.sleep(3)
        fleet_cluster.local.stop()  # the state store (and the queue) restart under load
        fleet_cluster.local.start()
        restarted = time.time()
        out, err = scheduler.communicate(timeout=60)
        assert scheduler.returncode == 0 and "lost the state store" in err.decode(), err.decode()[-2000:]
        wait_for(lambda: pending(config) == 0, 30, "the queue drained")
        assert worker.poll() is None, "the worker carried on"
        with state(config) as conn:
            jobs = dict(conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1").fetchall())
            rows = conn.execute("SELECT target, finished_at FROM fleet_runs").fetchall()
            history = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    finally:
        stop(worker, *([scheduler] if scheduler else []))
    assert set(jobs) == {"succeeded"}  # every job deferred ran: none lost, none failed for good
    assert all(finished is not None for _, finished in rows)
    assert history == len(rows)  # recorded once each, retries included
    assert any(finished > restarted for _, finished in rows)  # the fleet went on after the restart


def test_an_interval_delivered_twice_is_run_and_recorded_once(fleet_cluster, tmp_path):
    from civicq_ops.fleet.queue import FleetWorker

    config = make_project(tmp_path, fleet_cluster, "    quick: {interval: 30s, checks: [db-size]}\n", "city_05")
    fleet = FleetWorker(load_project(config, env={}))
    first = fleet.run("east/city_05", "quick", 7, time.time(), "w1")
    again = fleet.run("east/city_05", "quick", 7, time.time(), "w2")  # a second scheduler, or a retry
    other = fleet.run("east/city_05", "quick", 8, time.time(), "w2")
    fleet.close()
    assert first.startswith("ok") and again == "already done" and other.startswith("ok")
    with state(config) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        assert conn.execute("SELECT slot, attempts FROM fleet_runs ORDER BY slot").fetchall() == [(7, 1), (8, 1)]


def test_two_deliveries_of_one_interval_at_the_same_time_record_it_once(fleet_cluster, tmp_path):
    """A job retried after its worker went silent while the first still runs: both run the checks,
    one records; the other rolls back (no second history row, no second alert pass)."""
    import threading

    from civicq_ops.fleet.queue import FleetWorker

    config = make_project(tmp_path, fleet_cluster, "    quick: {interval: 30s, checks: [db-size]}\n", "city_06")
    fleet = FleetWorker(load_project(config, env={}))
    results: list[str] = []
    barrier = threading.Barrier(2)

    def deliver(worker: str) -> None:
        barrier.wait()
        results.append(fleet.run("east/city_06", "quick", 9, time.time(), worker))
        fleet.close()  # this thread's store connection

    threads = [threading.Thread(target=deliver, args=(w,)) for w in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r == "already done" for r in results) == [False, True], results
    with state(config) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM fleet_runs WHERE finished_at IS NOT NULL").fetchone()[0] == 1
