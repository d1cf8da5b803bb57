"""DatabaseMonitor (the seed's monitoring module) and pool statistics, against real PostgreSQL."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from civicq_ops import api

RULE = "  - {name: AlwaysOn, when: {check: connection-saturation, value: {gte: 0}}}\n"


def test_monitor_runs_checks_in_the_background_and_exports_metrics_with_pool_stats(db, alert_project, monkeypatch):
    config = alert_project(db.url, alerts=RULE)
    monkeypatch.delenv("CIVICQ_DATABASE_URL", raising=False)
    try:
        with api.pooled_session(config=str(config)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with api.DatabaseMonitor(config=str(config), checks=["connection-saturation"]) as monitor:
            deadline = time.monotonic() + 20
            while monitor.cycles == 0:
                assert time.monotonic() < deadline, "the monitor never ran a cycle"
                time.sleep(0.1)
            findings = monitor.latest_findings()
            assert [f["check"] for f in findings] == ["connection-saturation"]
            assert [(a["labels"]["alertname"], a["state"]) for a in monitor.alerts()] == [("AlwaysOn", "firing")]
            text = monitor.export_metrics_prometheus()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["civicq_target_up"].samples[0].value == 1
        pool = {s.name: s.value for s in families["civicq_pool_requests_num"].samples}
        assert pool == {"civicq_pool_requests_num_total": 1.0}
        assert {s.labels["pool"] for s in families["civicq_pool_pool_size"].samples} == {"db"}
        assert api.pool_stats()["db"]["pool_max"] == 10
    finally:
        api.pool.close_pools()
