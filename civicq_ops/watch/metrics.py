"""The metrics `watch` serves on /metrics (prometheus_client).

Label cardinality is bounded by the catalogue, never by the data: series are per target and check
(and per status or alert rule), not per subject, so 10,000 tables add no series. Per subject values
stay in `run checks --format prometheus` for one-off exports.

  civicq_target_up{target}                             1 reachable, 0 not
  civicq_check_status{target,check}                    worst level: 0 ok, 1 warning, 2 critical, 3 error, -1 skipped
  civicq_check_findings{target,check,status}           findings per status
  civicq_check_worst_value{target,check}               the value of the most severe finding, in the check's unit
  civicq_check_last_run_timestamp_seconds{target,check}
  civicq_check_errors_total{target,check}              runs of the check that ended in error
  civicq_check_runs_total{target,check}
  civicq_watch_batch_duration_seconds{target}          histogram: one batch of due checks on one target
  civicq_alerts{alertname,state}                       pending and firing alerts per rule
  civicq_notifications_total{notifier,result}          deliveries: ok or failed (failed ones are dead letters)
  civicq_watch_leader                                  1 while this watcher holds the lease
  civicq_watch_cycles_total, civicq_watch_last_cycle_timestamp_seconds
  plus process_* (CPU, RSS) and python_* of this process.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from civicq_ops.core.thresholds import SEVERITY

_STATUS = {"ok": 0, "warning": 1, "critical": 2, "error": 3, "skipped": -1}


class WatchMetrics:
    def __init__(self) -> None:
        from prometheus_client import PlatformCollector, ProcessCollector

        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._lock = threading.Lock()
        self._findings: dict[tuple[str, str], list] = {}
        self._up: dict[str, int] = {}
        self._last_run: dict[tuple[str, str], float] = {}
        self._alerts: list = []
        r = self.registry
        self.check_errors = Counter("civicq_check_errors", "Runs of a check that ended in error", ["target", "check"],
                                    registry=r)
        self.check_runs = Counter("civicq_check_runs", "Runs of a check", ["target", "check"], registry=r)
        self.batch = Histogram("civicq_watch_batch_duration_seconds", "One batch of due checks on one target",
                               ["target"], registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.notifications = Counter("civicq_notifications", "Alert deliveries by result", ["notifier", "result"],
                                     registry=r)
        self.leader = Gauge("civicq_watch_leader", "1 while this watcher holds the lease", registry=r)
        self.cycles = Counter("civicq_watch_cycles", "Scheduler cycles that ran at least one check", registry=r)
        self.last_cycle = Gauge("civicq_watch_last_cycle_timestamp_seconds", "When the last cycle ended", registry=r)
        r.register(_StateCollector(self))

    def observe_run(self, result, now: float) -> None:
        with self._lock:
            for t in result.targets:
                self._up[t.name] = 0 if t.error else 1
                if t.error:
                    continue
                for check in result.checks:
                    self._findings[(t.name, check)] = []
                    self._last_run[(t.name, check)] = now
            for f in result.findings:
                if (f.target, f.check) in self._findings:
                    self._findings[(f.target, f.check)].append(f)
        for t in result.targets:
            if t.error:
                continue
            for check in result.checks:
                self.check_runs.labels(t.name, check).inc()
                findings = self._findings.get((t.name, check), [])
                if any(f.status == "error" for f in findings):
                    self.check_errors.labels(t.name, check).inc()

    def observe_alerts(self, alerts: list, deliveries: list) -> None:
        with self._lock:
            self._alerts = list(alerts)
        for d in deliveries:
            self.notifications.labels(d.notifier, "ok" if d.ok else "failed").inc()

    def snapshot(self):
        with self._lock:
            return dict(self._findings), dict(self._up), dict(self._last_run), list(self._alerts)


class _StateCollector:
    """Gauges computed at scrape time from the latest findings and alerts."""

    def __init__(self, metrics: WatchMetrics) -> None:
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        findings, up, last_run, alerts = self.metrics.snapshot()
        g_up = GaugeMetricFamily("civicq_target_up", "Whether the target could be reached", labels=["target"])
        for target, value in sorted(up.items()):
            g_up.add_metric([target], value)
        status = GaugeMetricFamily("civicq_check_status", "Worst level: 0 ok, 1 warning, 2 critical, 3 error, -1 skipped",
                                   labels=["target", "check"])
        counts = GaugeMetricFamily("civicq_check_findings", "Findings per status", labels=["target", "check", "status"])
        worst = GaugeMetricFamily("civicq_check_worst_value", "The value of the most severe finding, in the check's unit",
                                  labels=["target", "check"])
        last = GaugeMetricFamily("civicq_check_last_run_timestamp_seconds", "When the check last ran",
                                 labels=["target", "check"])
        for (target, check), fs in sorted(findings.items()):
            top = max(fs, key=lambda f: (SEVERITY[f.status], _num(f.value) or 0.0), default=None)
            status.add_metric([target, check], _STATUS[top.status] if top else 0)
            by_status: dict[str, int] = {}
            for f in fs:
                by_status[f.status] = by_status.get(f.status, 0) + 1
            for name, n in sorted(by_status.items()):
                counts.add_metric([target, check, name], n)
            worst_value = _num(top.value) if top is not None else None
            if worst_value is not None:
                worst.add_metric([target, check], worst_value)
            last.add_metric([target, check], last_run[(target, check)])
        per_rule: dict[tuple[str, str], int] = {}
        for a in alerts:
            if a.state in ("pending", "firing"):
                per_rule[(a.rule, a.state)] = per_rule.get((a.rule, a.state), 0) + 1
        g_alerts = GaugeMetricFamily("civicq_alerts", "Pending and firing alerts per rule", labels=["alertname", "state"])
        for (rule, state), n in sorted(per_rule.items()):
            g_alerts.add_metric([rule, state], n)
        yield from (g_up, status, counts, worst, last, g_alerts)


def _num(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
