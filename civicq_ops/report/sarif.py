"""SARIF 2.1.0: rules are checks (located in their YAML), results are warning/critical findings."""

from __future__ import annotations

import json
from pathlib import Path

from civicq_ops import __version__
from civicq_ops.core.errors import ExitCode
from civicq_ops.engine.run import RunResult

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"critical": "error", "warning": "warning", "error": "error"}


def _uri(path: str) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def render(result: RunResult) -> str:
    checks = sorted(result.checks.values(), key=lambda c: c.id)
    index = {c.id: i for i, c in enumerate(checks)}
    rules = [{
        "id": c.id,
        "name": "".join(part.capitalize() for part in c.id.split("-")),
        "shortDescription": {"text": c.title},
        "fullDescription": {"text": c.description or c.title},
        "help": {"text": c.recommendation or c.description or c.title},
        "properties": {"category": c.category, "tags": list(c.tags)},
    } for c in checks]
    results = []
    for f in result.findings:
        if f.status not in _LEVEL or f.check not in index:
            continue
        check = result.checks[f.check]
        text = f.message if f.status != "error" else f"{f.title}: {f.reason}"
        res = {
            "ruleId": f.check,
            "ruleIndex": index[f.check],
            "level": _LEVEL[f.status],
            "message": {"text": text + (f" {f.recommendation}" if f.recommendation else "")},
            "partialFingerprints": {"civicqFindingId/v1": f.id},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(check.source.path)},
                    "region": {"startLine": check.source.line, "startColumn": check.source.col},
                },
                "logicalLocations": [{
                    "name": f.subject_text() if f.subject else f.target,
                    "fullyQualifiedName": f"{f.target}/{f.subject_text()}" if f.subject else f.target,
                    "kind": "object",
                }],
            }],
            "properties": {"target": f.target, "subject": f.subject, "value": f.value, "status": f.status},
        }
        if f.waiver:
            res["suppressions"] = [{"kind": "external", "status": "accepted",
                                    "justification": f"{f.waiver['reason']} (owner {f.waiver['owner']}, "
                                                     f"expires {f.waiver['expires']})"}]
        results.append(res)
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "civicq-ops", "version": __version__, "informationUri":
                                "https://github.com/civicq/civicq-ops", "rules": rules}},
            "results": results,
            "invocations": [{"executionSuccessful": result.exit_code != ExitCode.EXECUTION_ERROR,
                             "toolExecutionNotifications": [{"level": "error", "message": {"text": e["message"]}}
                                                            for e in result.errors]}],
        }],
    }
    return json.dumps(doc, indent=2, default=str) + "\n"
