"""Run results built in memory for report tests: real shipped checks, findings of any shape."""

from __future__ import annotations

from datetime import UTC, datetime

from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunResult, TargetRun
from tests.fixtures.pg import shipped_catalog

_CATALOG = None


def catalog():
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = shipped_catalog()
    return _CATALOG


def finding(check_id: str = "table-dead-tuples", **kw) -> Finding:
    check = catalog().checks[check_id]
    kw.setdefault("target", "env")
    kw.setdefault("subject", {"schemaname": "public", "relname": "votes"})
    kw.setdefault("status", "warning")
    kw.setdefault("message", "something is off")
    return Finding(check=check.id, category=check.category, title=check.title, **kw)


def result(findings: list[Finding], *, targets: list[TargetRun] | None = None, errors=None, notices=None,
           exit_code: int = 0, fail_on: str = "critical", gate_failures=None) -> RunResult:
    checks = {f.check: catalog().checks[f.check] for f in findings}
    return RunResult(id="r1", started_at=datetime(2026, 1, 1, tzinfo=UTC), duration_s=0.5, fail_on=fail_on,
                     targets=targets or [TargetRun(name="env", server_version="18.1", role="primary",
                                                   system_identifier="7")],
                     findings=findings, checks=checks, errors=errors or [], notices=notices or [],
                     gate_failures=gate_failures or [], exit_code=exit_code)


def break_format(monkeypatch, broken: str, message: str = "renderer bug") -> None:
    """Make one format's renderer raise, as a renderer bug would; the others render as usual."""
    from civicq_ops.report import formats

    real = formats.render

    def render(result, fmt, **kw):
        if fmt == broken:
            raise ValueError(message)
        return real(result, fmt, **kw)

    monkeypatch.setattr(formats, "render", render)
