"""Prometheus exposition of a run (text format 0.0.4), built with prometheus_client.

Each finding becomes a status gauge (0 ok, 1 warning, 2 critical, 3 error, -1 skipped) and, when
it has a number, a value gauge in the check's unit; labels are the check, the target and the
subject. Scrape it from a textfile collector, or serve it with any HTTP server.
"""

from __future__ import annotations

from civicq_ops.engine.run import RunResult
from civicq_ops.report.safe import number, printable

_STATUS = {"ok": 0, "warning": 1, "critical": 2, "error": 3, "skipped": -1}


def render(result: RunResult) -> str:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    class RunCollector:
        def collect(self):
            status = GaugeMetricFamily("civicq_check_status", "Finding level: 0 ok, 1 warning, 2 critical, 3 error, "
                                       "-1 skipped", labels=["check", "category", "target", "subject", "waived"])
            value = GaugeMetricFamily("civicq_check_value", "A finding's value, in the unit of its check",
                                      labels=["check", "target", "subject", "unit"])
            for f in result.findings:
                # Label values are UTF-8 text: controls and lone surrogates shown as escapes
                # (prometheus_client escapes newlines, quotes and backslashes itself).
                subject = printable(f.subject_text()) if f.subject else ""
                check, target = printable(f.check), printable(f.target)
                status.add_metric([check, printable(f.category), target, subject, str(f.waived).lower()],
                                  _STATUS[f.status])
                shown = number(f.value)
                if shown is not None:  # NaN, infinities and numbers no float holds are left out
                    value.add_metric([check, target, subject, printable(f.unit or "")], shown)
            yield status
            yield value
            if result.comparison is not None:
                changed = GaugeMetricFamily("civicq_check_baseline_new", "1 for a finding new or worse than the "
                                            "baseline (state: new or worse)", labels=["check", "target", "subject", "state"])
                for f in result.findings:
                    state = result.comparison.states.get(f.id)
                    if state in ("new", "worse"):
                        changed.add_metric([printable(f.check), printable(f.target),
                                            printable(f.subject_text()) if f.subject else "", state], 1)
                yield changed
            totals = GaugeMetricFamily("civicq_findings", "Findings of the run by status", labels=["status"])
            for name, count in result.summary.to_dict().items():
                totals.add_metric([name], count)
            yield totals
            yield GaugeMetricFamily("civicq_run_duration_seconds", "How long the run took", value=result.duration_s)
            yield GaugeMetricFamily("civicq_run_exit_code", "The run's exit code (0 passed, 1 gate failed, 3 error)",
                                    value=result.exit_code)
            up = GaugeMetricFamily("civicq_target_up", "Whether the target could be reached", labels=["target", "version"])
            for t in result.targets:
                up.add_metric([t.name, t.server_version or ""], 0 if t.error else 1)
            yield up

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector())
    return generate_latest(registry).decode()
