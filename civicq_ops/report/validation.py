"""Diagnostics (from `validate`) as text, JSON, GitHub annotations or SARIF."""

from __future__ import annotations

import json

from civicq_ops import __version__
from civicq_ops.core.diagnostics import Diagnostic

FORMATS = ("text", "json", "github", "sarif")
_GITHUB = {"error": "error", "warning": "warning", "notice": "notice"}
_SARIF = {"error": "error", "warning": "warning", "notice": "note"}


def render(diagnostics: list[Diagnostic], fmt: str, files: int) -> str:
    if fmt == "json":
        return json.dumps({"format_version": "1.0", "files": files,
                           "diagnostics": [d.to_dict() for d in diagnostics]}, indent=2) + "\n"
    if fmt == "github":
        from civicq_ops.report.github import command

        return "".join(command(_GITHUB[d.level], d.message + (f" ({d.hint})" if d.hint else ""), file=d.path,
                               line=max(d.line, 1), col=max(d.col, 1), title=d.code) + "\n" for d in diagnostics)
    if fmt == "sarif":
        codes = sorted({d.code for d in diagnostics})
        doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [{
            "tool": {"driver": {"name": "civicq-ops validate", "version": __version__,
                                "rules": [{"id": c, "shortDescription": {"text": c}} for c in codes]}},
            "results": [{"ruleId": d.code, "level": _SARIF[d.level], "message": {"text": d.message},
                         "locations": [{"physicalLocation": {"artifactLocation": {"uri": d.path},
                                                             "region": {"startLine": max(d.line, 1),
                                                                        "startColumn": max(d.col, 1)}}}]}
                        for d in diagnostics]}]}
        return json.dumps(doc, indent=2) + "\n"
    lines = [d.format() for d in diagnostics]
    errors = sum(1 for d in diagnostics if d.level == "error")
    warnings = sum(1 for d in diagnostics if d.level == "warning")
    lines.append(f"{files} file(s) checked: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines) + "\n"
