"""SARIF 2.1.0: rules are checks (located in their YAML), results are warning/critical findings.

With a baseline, every result carries `baselineState` (new, updated, unchanged) and the accepted
findings that have cleared come back as `absent` results. Waiver notices (expired, stale) are
configuration notifications of the invocation, located in the waiver's file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from civicq_ops import __version__
from civicq_ops.core.errors import ExitCode
from civicq_ops.engine.run import RunResult
from civicq_ops.report.safe import json_text

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"critical": "error", "warning": "warning", "error": "error"}
_BASELINE_STATE = {"new": "new", "worse": "updated", "better": "updated", "unchanged": "unchanged"}
_NOTICE_LEVEL = {"waiver-expired": "warning"}
_EXPR = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_TAG = re.compile(r"\{%-?\s*(if|elif|else|endif|for|endfor)\b\s*(.*?)\s*-?%\}", re.S)


def _uri(path: str) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return p.as_posix()


def template_outline(text: str) -> str:
    """A message template for people who see no finding: `{{ subject.relname }}` becomes <relname>,
    `{% if x %}A{% else %}B{% endif %}` becomes `[if x:] A [otherwise:] B`.

    >>> template_outline("VACUUM {{ subject.schemaname }}.{{ subject.relname }} ({{ value | pct }})")
    'VACUUM <schemaname>.<relname> (<value>)'
    """
    def expr(m: re.Match) -> str:
        head, _, filters = m.group(1).partition("|")
        qualified = re.match(r"\s*qident\((.*?)\)", filters)  # {{ subject | qident('schemaname', 'relname') }}
        if qualified and qualified.group(1).strip():
            return ".".join(f"<{part.strip().strip(chr(39) + chr(34))}>" for part in qualified.group(1).split(","))
        name = re.sub(r"\[.*?\]", "", head.strip()).split(".")[-1].strip() or "value"
        return f"<{name}>"

    def tag(m: re.Match) -> str:
        word, cond = m.group(1), m.group(2)
        return {"if": f"[if {cond}:] ", "elif": f" [else if {cond}:] ", "else": " [otherwise:] ",
                "for": f"[for each {cond}:] "}.get(word, "")

    return re.sub(r"\s+", " ", _TAG.sub(tag, _EXPR.sub(expr, text))).strip()


def _location(path: str, line: int, col: int = 1) -> dict:
    return {"physicalLocation": {"artifactLocation": {"uri": _uri(path)},
                                 "region": {"startLine": max(int(line), 1), "startColumn": max(int(col), 1)}}}


def render(result: RunResult) -> str:
    checks = sorted(result.checks.values(), key=lambda c: c.id)
    index = {c.id: i for i, c in enumerate(checks)}
    rules = [{
        "id": c.id,
        "name": "".join(part.capitalize() for part in c.id.split("-")),
        "shortDescription": {"text": c.title},
        "fullDescription": {"text": c.description or c.title},
        "help": {"text": template_outline(c.recommendation) if c.recommendation else (c.description or c.title)},
        "properties": {"category": c.category, "tags": list(c.tags)},
    } for c in checks]
    comparison = result.comparison
    results = []
    for f in result.findings:
        if f.status not in _LEVEL or f.check not in index:
            continue
        check = result.checks[f.check]
        text = f.message if f.status != "error" else f"{f.title}: {f.reason}"
        res: dict[str, Any] = {
            "ruleId": f.check,
            "ruleIndex": index[f.check],
            "level": _LEVEL[f.status],
            "message": {"text": str(text) + (f" {f.recommendation}" if f.recommendation else "")},
            "partialFingerprints": {"civicqFindingId/v1": f.id},
            "locations": [{
                **_location(check.source.path, check.source.line, check.source.col),
                "logicalLocations": [{
                    "name": f.subject_text() if f.subject else f.target,
                    "fullyQualifiedName": f"{f.target}/{f.subject_text()}" if f.subject else f.target,
                    "kind": "object",
                }],
            }],
            "properties": {"target": f.target, "subject": f.subject, "value": f.value, "status": f.status,
                           "failsGate": f.id in result.gate_failures},
        }
        if comparison is not None:
            state = comparison.states.get(f.id, "new")
            res["baselineState"] = _BASELINE_STATE[state]
            res["properties"] |= {"baseline": state}
        if f.waiver:
            res["suppressions"] = [{"kind": "external", "status": "accepted",
                                    "justification": f"{f.waiver['reason']} (owner {f.waiver['owner']}, "
                                                     f"expires {f.waiver['expires']})"}]
        results.append(res)
    for entry in comparison.absent if comparison is not None else []:
        if entry.check not in index:
            continue
        check = result.checks[entry.check]
        subject = ".".join(str(v) for v in (entry.subject or {}).values()) or entry.target
        results.append({
            "ruleId": entry.check, "ruleIndex": index[entry.check], "kind": "pass", "level": "none",
            "baselineState": "absent",
            "message": {"text": f"{check.title}: {subject} no longer found (it was {entry.status} in the baseline)"},
            "locations": [_location(check.source.path, check.source.line, check.source.col)],
            "properties": {"target": entry.target, "subject": entry.subject, "value": entry.value,
                           "status": entry.status},
        })
    notices = [{"level": _NOTICE_LEVEL.get(n.get("code", ""), "note"), "message": {"text": n["message"]},
                "descriptor": {"id": n.get("code") or "notice"},
                **({"locations": [_location(n["path"], n["line"])]} if n.get("path") and n.get("line") else {})}
               for n in result.notices]
    doc = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "civicq-ops", "version": __version__, "informationUri":
                                "https://github.com/civicq/civicq-ops", "rules": rules}},
            "results": results,
            "invocations": [{"executionSuccessful": result.exit_code != ExitCode.EXECUTION_ERROR,
                             "toolExecutionNotifications": [{"level": "error", "message": {"text": e["message"]}}
                                                            for e in result.errors],
                             "toolConfigurationNotifications": notices}],
        }],
    }
    return json_text(doc, indent=2) + "\n"
