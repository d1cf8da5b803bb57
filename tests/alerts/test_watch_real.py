"""`watch` against real PostgreSQL: an idle transaction goes pending, firing, resolved; a killed
server fires CivicqTargetDown and the same watcher recovers; two watchers on one store send once;
the process serves promtool-clean /metrics and stops on SIGTERM within seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from civicq_ops.catalog.load import project_catalog
from civicq_ops.config import load_project
from civicq_ops.watch.watcher import Watcher
from tests.alerts.conftest import free_port
from tests.fixtures.pg import MAJORS, start_cluster, stop_cluster

IDLE_RULE = """\
  - name: TestIdleInTransaction
    when: {check: idle-in-transaction, value: {gte: 0s}}
    for: 2s
    annotations: {summary: "pid {{ subject.pid }} idle"}
"""
ALWAYS_RULE = "  - {name: AlwaysOn, when: {check: connection-saturation, value: {gte: 0}}}\n"


def _watcher(config, checks, **kw) -> Watcher:
    project = load_project(config, env={})
    catalog = project_catalog(project).catalog
    return Watcher(project, [project.target()], catalog, checks=checks, **kw)


def _states(w: Watcher, rule: str) -> list[str]:
    return [a.state for a in w.current_alerts() if a.rule == rule]


def test_idle_transaction_goes_pending_firing_resolved_under_watch(db, alertmanager, alert_project):
    config = alert_project(db.url, f"  am: {{type: alertmanager, url: \"{alertmanager.url}\"}}\n", IDLE_RULE,
                           extra="watch: {intervals: {connections: 1s}}\n")
    w = _watcher(config, ["idle-in-transaction"], params={"idle-in-transaction": {"min_idle": "0s"}})
    with db.connect(autocommit=False) as idle:
        idle.execute("SELECT 1")
        pid = idle.info.backend_pid
        w.step()
        assert _states(w, "TestIdleInTransaction") == ["pending"]
        assert alertmanager.alerts() == []
        time.sleep(1.1)
        w.step()
        assert _states(w, "TestIdleInTransaction") == ["pending"]
        time.sleep(1.1)
        w.step()
        assert _states(w, "TestIdleInTransaction") == ["firing"]
        sent = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "TestIdleInTransaction"]
        assert [a["labels"]["pid"] for a in sent] == [str(pid)]
        idle.rollback()
    time.sleep(1.1)
    w.step()
    assert _states(w, "TestIdleInTransaction") == []  # resolved, delivered, forgotten
    assert [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "TestIdleInTransaction"] == []
    metrics = w.metrics.registry.get_sample_value("civicq_check_runs_total",
                                                  {"target": "db", "check": "idle-in-transaction"})
    assert metrics == 4
    w.stop()


@pytest.mark.parametrize("major", sorted(m for m, (b, _) in MAJORS.items() if b))
def test_a_killed_server_fires_target_down_and_the_watcher_recovers(tmp_path, alert_project, receiver, major):
    cluster = start_cluster(major, MAJORS[major][0])
    try:
        config = alert_project(cluster.url(), f"  hook: {{type: webhook, url: \"{receiver.url}\"}}\n",
                               extra="watch: {intervals: {connections: 1s}}\n")
        w = _watcher(config, ["connection-saturation"])
        t = time.time()
        w.step(t)
        assert w.metrics.registry.get_sample_value("civicq_target_up", {"target": "db"}) == 1
        cluster.local.stop()
        w.step(t + 2)
        assert _states(w, "CivicqTargetDown") == ["firing"]
        assert w.metrics.registry.get_sample_value("civicq_target_up", {"target": "db"}) == 0
        fired = receiver.bodies()[-1]["alerts"][0]
        assert fired["rule"] == "CivicqTargetDown" and fired["status"] == "firing"
        w.step(t + 2.5)  # inside the backoff: no new attempt
        assert w.state["db"].backoff_s == 1.0
        cluster.local.start()
        w.step(t + 5)
        assert _states(w, "CivicqTargetDown") == []
        assert receiver.bodies()[-1]["alerts"][0]["status"] == "resolved"
        assert w.metrics.registry.get_sample_value("civicq_target_up", {"target": "db"}) == 1
        assert [f.status for f in w.latest_findings()] == ["ok"]
        w.stop()
    finally:
        stop_cluster(cluster)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_watchers_on_one_store_send_each_alert_once(db, receiver, alert_project, store):
    config = alert_project(db.url, f"  hook: {{type: webhook, url: \"{receiver.url}\"}}\n", ALWAYS_RULE,
                           state_url=db.url if store == "postgresql" else None)
    first = _watcher(config, ["connection-saturation"])
    second = _watcher(config, ["connection-saturation"])
    now = time.time()
    first.step(now)
    second.step(now)
    assert first.leader and not second.leader
    assert second.ready() == (True, "standby")
    assert len(receiver.requests) == 1
    first.step(now + 31)  # the rule's resend interval (1m) has not passed: nothing more
    second.step(now + 31)
    assert len(receiver.requests) == 1
    first.stop()  # hands the lease back; the standby takes over and keeps the alert's history
    second.step(now + 40)
    assert second.leader
    assert len(receiver.requests) == 1
    second.step(now + 71)  # its next evaluation (quick checks: every 30 s) is past the resend interval
    assert len(receiver.requests) == 2  # re-sent by the new leader after the resend interval, not twice
    second.stop()


def test_watch_process_serves_clean_metrics_and_stops_on_sigterm(db, alert_project, tmp_path):
    config = alert_project(db.url, alerts=ALWAYS_RULE)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    proc = subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(config), "watch", "--json-logs",
                             "--listen", f"127.0.0.1:{port}", "--check", "connection-saturation,idle-in-transaction"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:  # noqa: S310
                    assert r.read() == b"active\n"
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "watch never became ready"
                time.sleep(0.2)
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:  # noqa: S310
            assert r.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:  # noqa: S310
            text = r.read().decode()
        assert 'civicq_target_up{target="db"} 1.0' in text
        assert 'civicq_alerts{alertname="AlwaysOn",state="firing"} 1.0' in text
        assert 'civicq_check_status{check="idle-in-transaction",target="db"} 0.0' in text
        promtool = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert promtool.returncode == 0 and promtool.stdout.strip() == "", promtool.stdout + promtool.stderr
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
        assert time.monotonic() - started < 5
        assert proc.returncode == 0
        logs = [json.loads(line) for line in proc.stderr.read().decode().splitlines()]
        assert {"watching", "lease-acquired", "alert", "stopped"} <= {line["event"] for line in logs}
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_watch_for_a_duration_evaluates_then_exits_zero_on_its_own(db, alert_project, tmp_path):
    """`watch --for 3s`: a bounded smoke run for CI; the checks ran (an alert fired) and it ended by itself."""
    config = alert_project(db.url, alerts=ALWAYS_RULE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "civicq_ops", "--config", str(config), "watch", "--json-logs",
                           "--for", "3s", "--listen", "127.0.0.1:0", "--check", "connection-saturation"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert 3 <= took < 20
    events = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert "alert" in events and events[-1] == "stopped"


@pytest.mark.parametrize("value", ["0s", "-5s", "10GB", "soon"])
def test_watch_for_needs_a_positive_duration(alert_project, tmp_path, value):
    config = alert_project("postgresql://nobody@127.0.0.1:1/x", alerts=ALWAYS_RULE)
    done = subprocess.run([sys.executable, "-m", "civicq_ops", "--config", str(config), "watch", "--for", value],
                          capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: --for"), done.stderr
