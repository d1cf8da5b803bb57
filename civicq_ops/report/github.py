"""GitHub Actions workflow commands: annotations (at most 10 per level, then a count)."""

from __future__ import annotations

from civicq_ops.engine.run import RunResult

MAX_PER_LEVEL = 10
_COMMAND = {"critical": "error", "error": "error", "warning": "warning"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(result: RunResult) -> str:
    lines = []
    shown = {"error": 0, "warning": 0}
    hidden = {"error": 0, "warning": 0}
    for f in sorted(result.findings, key=lambda f: f.status != "critical"):
        if f.status not in _COMMAND or f.waived:
            continue
        level = _COMMAND[f.status]
        if shown[level] >= MAX_PER_LEVEL:
            hidden[level] += 1
            continue
        shown[level] += 1
        check = result.checks.get(f.check)
        where = f"file={_escape_prop(check.source.path)},line={check.source.line}," if check else ""
        title = _escape_prop(f"{f.check} [{f.target}] {f.subject_text() if f.subject else ''}".strip())
        body = f.message if f.status != "error" else f"{f.title}: {f.reason}"
        if f.recommendation:
            body += f"\n{f.recommendation}"
        lines.append(f"::{level} {where}title={title}::{_escape_data(body)}")
    for level, count in hidden.items():
        if count:
            lines.append(f"::{level} title=civicq-ops::{count} more {level} annotations not shown")
    for e in result.errors:
        lines.append(f"::error title=civicq-ops::{_escape_data(e['message'])}")
    lines.append(f"::notice title=civicq-ops::{result.summary.line()}")
    return "\n".join(lines) + "\n"
