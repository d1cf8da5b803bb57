"""The JSON report: a versioned contract, described by schema/report.schema.json."""

from __future__ import annotations

import json

from civicq_ops import __version__
from civicq_ops.engine.run import RunResult

FORMAT_VERSION = "1.0"


def document(result: RunResult) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "civicq-ops", "version": __version__},
        "run": {"id": result.id, "started_at": result.started_at.isoformat(), "duration_s": result.duration_s,
                "fail_on": result.fail_on, "exit_code": result.exit_code, "baseline": result.baseline},
        "targets": [{"name": t.name, "server_version": t.server_version, "role": t.role,
                     "system_identifier": t.system_identifier, "error": t.error} for t in result.targets],
        "summary": result.summary.to_dict(),
        "findings": [_finding(f, f.id in result.gate_failures) for f in result.findings],
        "errors": result.errors,
        "notices": result.notices,
    }


def _finding(f, gate: bool) -> dict:
    return {"id": f.id, "check": f.check, "title": f.title, "category": f.category, "target": f.target,
            "subject": f.subject, "status": f.status, "value": f.value, "unit": f.unit, "threshold": f.threshold,
            "confidence": f.confidence, "confidence_reason": f.confidence_reason, "message": f.message,
            "recommendation": f.recommendation, "remediation": f.remediation, "waiver": f.waiver,
            "reason": f.reason, "fails_gate": gate, "evidence": f.evidence}


def render(result: RunResult) -> str:
    return json.dumps(document(result), indent=2, default=str) + "\n"
