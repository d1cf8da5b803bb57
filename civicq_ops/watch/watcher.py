"""The watch loop: run the checks that are due on each target, evaluate alerts, record history.

One watcher per state store is active: it holds a lease (renewed every third of its length) and a
second watcher waits as a standby, serving /metrics and /healthz, until the lease expires. A target
that cannot be reached fires CivicqTargetDown and is retried with exponential backoff (1 s to 30 s);
the checks it missed run as soon as it answers. The loop runs in its own thread so that stop()
returns within a few seconds even while a check is running.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from civicq_ops.alerts.dispatch import Delivery
from civicq_ops.alerts.evaluate import Observation
from civicq_ops.alerts.model import Alert
from civicq_ops.alerts.notifiers import Notifier, load_notifiers
from civicq_ops.alerts.process import observation_of, process_observation
from civicq_ops.catalog.model import Catalog
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, InputError
from civicq_ops.core.units import parse_duration
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunOptions, Selection, run_checks
from civicq_ops.facts import default_providers
from civicq_ops.report.history import TRENDED
from civicq_ops.state.alert_tables import release_lease, take_lease
from civicq_ops.state.store import StateStore, open_store
from civicq_ops.watch.logs import log
from civicq_ops.watch.metrics import WatchMetrics
from civicq_ops.watch.schedule import Schedule

LEASE_S = 30.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
STOP_GRACE_S = 3.0


@dataclass
class TargetState:
    schedule: Schedule
    backoff_s: float = 0.0
    retry_at: float = 0.0
    latest: dict[str, list[Finding]] = field(default_factory=dict)


class Watcher:
    """Long-running checks and alerts over `targets`; `step()` is one iteration, for tests."""

    def __init__(self, project: Project, targets: list[Target], catalog: Catalog, *,
                 checks: list[str] | None = None, store: StateStore | None = None,
                 notifiers: dict[str, Notifier] | None = None, lease_s: float | None = None,
                 pool_size: int = 2, params: dict[str, dict] | None = None) -> None:
        settings = project.section("watch")
        unknown = sorted(set(checks or []) - set(catalog.checks))
        if unknown:
            raise InputError(f"unknown check {', '.join(unknown)} (see `civicq-ops checks list`)")
        self.project, self.targets, self.catalog = project, targets, catalog
        self.store = store or open_store(project)
        self.notifiers = notifiers if notifiers is not None else load_notifiers(project)
        self.lease_s = lease_s or (parse_duration(settings["lease"]) if settings.get("lease") else LEASE_S)
        self.lease_name = "watch:" + ",".join(sorted(t.name for t in targets))
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.pool_size = pool_size
        self.params = params or {}
        self.metrics = WatchMetrics()
        self.state = {t.name: TargetState(Schedule.of(catalog, settings, checks)) for t in targets}
        self.alerts: list[Alert] = []
        self.leader = self.lease_checked = False
        self.lease_renewed_at = 0.0
        self.cycles_done = 0
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- one iteration -------------------------------------------------------------------------

    def step(self, now: float | None = None) -> float:
        """Renew the lease, run what is due; returns how long to sleep before the next step."""
        now = time.time() if now is None else now
        self.heartbeat = time.monotonic()
        if not self._hold_lease(now):
            return min(1.0, self.lease_s / 3)
        ran = False
        for target in self.targets:
            ts = self.state[target.name]
            if now < ts.retry_at:
                continue
            due = ts.schedule.due(now)
            if not due:
                continue
            ran = True
            self._run_target(target, ts, due, now)
        if ran:
            self.cycles_done += 1
            self.metrics.cycles.inc()
            self.metrics.last_cycle.set(time.time())
        wake = min([self.lease_renewed_at + self.lease_s / 3]
                   + [max(ts.retry_at, ts.schedule.next_due()) for ts in self.state.values()])
        return max(0.05, min(1.0, wake - time.time()))

    def _hold_lease(self, now: float) -> bool:
        if self.leader and now - self.lease_renewed_at < self.lease_s / 3:
            return True
        try:
            got = take_lease(self.store, self.lease_name, self.holder, self.lease_s, now)
        except Exception as e:  # noqa: BLE001 - a state store outage makes us standby, never crash
            log("lease-error", logging.WARNING, error=str(e))
            got = False
        if got != self.leader:
            log("lease-acquired" if got else "standby", holder=self.holder, lease=self.lease_name)
        self.leader, self.lease_checked = got, True
        self.metrics.leader.set(1 if got else 0)
        if got:
            self.lease_renewed_at = now
        return got

    def _run_target(self, target: Target, ts: TargetState, due: list[str], now: float) -> None:
        started = time.monotonic()
        try:
            result = run_checks(self.project, [target], self.catalog, Selection(checks=due),
                                RunOptions(pool_size=self.pool_size, params=self.params,
                                           facts=default_providers(self.project)))
        except CivicqError as e:
            log("run-failed", logging.ERROR, target=target.name, error=e.message)
            return
        self.metrics.batch.labels(target.name).observe(time.monotonic() - started)
        down = result.targets[0].error if result.targets else None
        if down:
            ts.backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, ts.backoff_s * 2))
            ts.retry_at = now + ts.backoff_s
            log("target-down", logging.WARNING, target=target.name, error=down, retry_in=ts.backoff_s)
        else:
            if ts.backoff_s:
                log("target-up", target=target.name)
            ts.backoff_s, ts.retry_at = 0.0, 0.0
            ts.schedule.done(due, now)
            for check in due:
                ts.latest[check] = [f for f in result.findings if f.check == check]
        self.metrics.observe_run(result, time.time())
        try:
            self.store.record_run(result, keep_ok=TRENDED)
        except Exception as e:  # noqa: BLE001 - history is best effort; alerts and metrics go on
            log("history-not-recorded", logging.WARNING, error=str(e))
        # A long batch may outlast the lease: renew it (forcing the write) before sending, so a
        # standby that took over meanwhile is the only one that notifies.
        self.lease_renewed_at = 0.0
        if not self._hold_lease(now + (time.monotonic() - started)):
            log("lease-lost", logging.WARNING, target=target.name)
            return
        self._alerts(observation_of(result, self.catalog), now)
        errors = sum(1 for f in result.findings if f.status == "error")
        log("checks-ran", logging.DEBUG, target=target.name, checks=len(due), errors=errors,
            seconds=round(time.monotonic() - started, 3))

    def _alerts(self, obs: Observation, now: float) -> None:
        try:
            outcome = process_observation(self.catalog.alerts, obs, self.store, self.notifiers, now)
        except Exception as e:  # noqa: BLE001 - the loop must outlive a state store hiccup
            log("alerts-not-evaluated", logging.ERROR, error=str(e))
            return
        with self._lock:
            self.alerts = outcome.alerts
        self.metrics.observe_alerts(outcome.alerts, outcome.deliveries)
        for a in outcome.changed:
            log("alert", alertname=a.rule, state=a.state, target=a.target, fingerprint=a.fingerprint)
        for d in outcome.deliveries:
            _log_delivery(d)
        for p in outcome.problems:
            log("alert-rule-problem", logging.WARNING, problem=p)

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="watch-loop")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                pause = self.step()
            except Exception as e:  # noqa: BLE001 - log and go on: a watcher that dies is silence
                log("step-failed", logging.ERROR, error=f"{type(e).__name__}: {e}")
                pause = 1.0
            self._stop.wait(pause)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the loop (waiting at most `grace_s` for a running batch) and hand the lease back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(grace_s)
        if self.leader:
            try:
                release_lease(self.store, self.lease_name, self.holder)
            except Exception:  # noqa: BLE001, S110 - it expires on its own
                pass
        self.leader = False

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    # -- views ----------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        age = time.monotonic() - self.heartbeat
        limit = max(60.0, 3 * max((c.timeout_s for c in self.catalog.checks.values()), default=10.0))
        return (age < limit, "ok" if age < limit else f"the loop has not moved for {age:.0f}s")

    def ready(self) -> tuple[bool, str]:
        if not self.leader:
            return (True, "standby") if self.lease_checked else (False, "starting")
        return (self.cycles_done > 0, "active" if self.cycles_done else "starting")

    def latest_findings(self) -> list[Finding]:
        return [f for ts in self.state.values() for fs in list(ts.latest.values()) for f in fs]

    def current_alerts(self) -> list[Alert]:
        with self._lock:
            return list(self.alerts)


def _log_delivery(d: Delivery) -> None:
    if d.ok:
        log("delivered", notifier=d.notifier, alerts=d.alerts, attempts=d.attempts)
    else:
        log("delivery-failed", logging.WARNING, notifier=d.notifier, alerts=d.alerts, attempts=d.attempts,
            error=d.error)



def serve(project: Project, targets: list[Target], catalog: Catalog, *, listen: str | None = None,
          checks: list[str] | None = None, pool_size: int = 2, until=None):
    """Run a watcher with its HTTP endpoint until `until()` (a blocking wait) returns; then stop both."""
    from civicq_ops.watch.server import DEFAULT_LISTEN, MetricsServer

    watcher = Watcher(project, targets, catalog, checks=checks, pool_size=pool_size)
    server = MetricsServer(listen or project.section("watch").get("listen") or DEFAULT_LISTEN,
                           watcher.metrics.registry, watcher.health, watcher.ready)
    server.start()
    log("watching", targets=",".join(t.name for t in targets), listen=server.address,
        checks=sum(len(s.schedule.intervals) for s in watcher.state.values()))
    watcher.start()
    try:
        (until or watcher.wait)()
    finally:
        watcher.stop()
        server.stop()
        watcher.store.close()
        log("stopped")
    return watcher
