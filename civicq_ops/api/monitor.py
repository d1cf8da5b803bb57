"""DatabaseMonitor: the seed's monitoring module as a library object. It runs the `watch` loop in
a background thread (checks on their intervals, alert rules, notifiers, history) and exposes the
latest findings, the alerts and the Prometheus exposition, pool statistics included."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from civicq_ops.watch.watcher import Watcher

from typing import Any


class DatabaseMonitor:
    """Real-time monitoring of one target from Python.

    >>> monitor = DatabaseMonitor(checks=["connection-saturation"])   # doctest: +SKIP
    >>> monitor.start(); ...; print(monitor.export_metrics_prometheus()); monitor.stop()
    """

    def __init__(self, target: str | None = None, config: str | None = None, *, checks: list[str] | None = None,
                 params: dict[str, dict] | None = None) -> None:
        from civicq_ops.catalog.load import project_catalog
        from civicq_ops.config import load_project

        project = load_project(config)
        self._args = (project, [project.target(target)], project_catalog(project).catalog)
        self._checks, self._params = checks, params
        self._watcher: Watcher | None = None

    def start(self) -> DatabaseMonitor:
        from civicq_ops.api.pool import PoolCollector
        from civicq_ops.watch.watcher import Watcher

        if self._watcher is None:
            watcher = Watcher(*self._args, checks=self._checks, params=self._params)
            watcher.metrics.registry.register(PoolCollector())
            watcher.start()
            self._watcher = watcher
        return self

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.store.close()
            self._watcher = None

    def __enter__(self) -> DatabaseMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def cycles(self) -> int:
        return self._watcher.cycles_done if self._watcher else 0

    def latest_findings(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self._watcher.latest_findings()] if self._watcher else []

    def alerts(self) -> list[dict[str, Any]]:
        return [a.summary() for a in self._watcher.current_alerts()] if self._watcher else []

    def export_metrics_prometheus(self) -> str:
        from prometheus_client import generate_latest

        if self._watcher is None:
            raise RuntimeError("the monitor is not running: call start() first")
        return generate_latest(self._watcher.metrics.registry).decode()
