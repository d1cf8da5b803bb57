"""The JSON report: a versioned contract, described by schema/report.schema.json."""

from __future__ import annotations

from civicq_ops import __version__
from civicq_ops.engine.run import RunResult
from civicq_ops.report.safe import json_text

FORMAT_VERSION = "1.0"


def document(result: RunResult) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "civicq-ops", "version": __version__},
        "run": {"id": result.id, "started_at": result.started_at.isoformat(), "duration_s": result.duration_s,
                "fail_on": result.fail_on, "exit_code": result.exit_code, "baseline": result.baseline},
        "targets": [{"name": t.name, "server_version": t.server_version, "role": t.role,
                     "system_identifier": t.system_identifier, "database": t.database, "error": t.error}
                    for t in result.targets],
        "summary": result.summary.to_dict(),
        "findings": [_finding(f, f.id in result.gate_failures, _baseline(result, f)) for f in result.findings],
        "errors": result.errors,
        "notices": result.notices,
        **({"baseline_absent": [e.to_dict() for e in result.comparison.absent]} if result.comparison else {}),
    }


def _baseline(result: RunResult, f) -> dict | None:
    """How a warning or critical finding compares with the baseline: state, and the accepted status and value."""
    comparison = result.comparison
    if comparison is None or f.id not in comparison.states:
        return None
    before = comparison.previous.get(f.id)
    return {"state": comparison.states[f.id], "status": before.status if before else None,
            "value": before.value if before else None}


def _finding(f, gate: bool, baseline: dict | None) -> dict:
    return {"id": f.id, "check": f.check, "title": f.title, "category": f.category, "target": f.target,
            "subject": f.subject, "status": f.status, "value": f.value, "unit": f.unit, "threshold": f.threshold,
            "confidence": f.confidence, "confidence_reason": f.confidence_reason, "message": f.message,
            "recommendation": f.recommendation, "remediation": f.remediation, "waiver": f.waiver,
            "reason": f.reason, "fails_gate": gate, "baseline": baseline, "evidence": f.evidence}


def render(result: RunResult, pretty: bool = False) -> str:
    """One line by default (json's C encoder: an indent takes its pure-Python path, seconds on a report
    of tens of thousands of findings); `pretty` indents for people."""
    # Strict: parsers such as jq and JavaScript reject NaN, so json_text spells them out.
    return json_text(document(result), indent=2 if pretty else None) + "\n"
