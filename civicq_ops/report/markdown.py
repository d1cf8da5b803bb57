"""Markdown: a pull-request comment or a GitHub step summary."""

from __future__ import annotations

from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.core.units import format_value
from civicq_ops.engine.run import RunResult

_ICON = {"critical": "🔴", "error": "🟣", "warning": "🟠", "skipped": "⚪", "ok": "🟢"}


def render(result: RunResult) -> str:
    s = result.summary
    gate = {0: "passed", 1: "**failed**", 3: "**could not run**"}.get(result.exit_code, str(result.exit_code))
    lines = [f"### civicq-ops: gate {gate} (`--fail-on {result.fail_on}`)", "",
             f"{_ICON['critical']} {s.critical} critical · {_ICON['warning']} {s.warning} warning · "
             f"{_ICON['error']} {s.error} error · {_ICON['skipped']} {s.skipped} skipped · {_ICON['ok']} {s.ok} ok"
             + (f" · {s.waived} waived" if s.waived else ""), ""]
    problems = sorted((f for f in result.findings if f.status in ("critical", "warning", "error")),
                      key=lambda f: (-SEVERITY[f.status], f.check))
    if problems:
        lines += ["| | check | target | subject | value | what to do |", "|---|---|---|---|---|---|"]
        for f in problems:
            todo = f.recommendation or f.reason or f.message
            if f.waiver:
                todo = f"waived: {f.waiver['reason']} ({f.waiver['owner']}, until {f.waiver['expires']})"
            value = format_value(f.value, f.unit) if f.value is not None else ""
            lines.append(f"| {_ICON[f.status]} | `{f.check}` | {f.target} | {_esc(f.subject_text() if f.subject else '')}"
                         f" | {value} | {_esc(todo)} |")
        lines.append("")
    for e in result.errors:
        lines.append(f"> error: {_esc(e['message'])}")
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
