"""Markdown: a pull-request comment or a GitHub step summary."""

from __future__ import annotations

from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.run import RunResult
from civicq_ops.report.safe import printable, shown_value

_ICON = {"critical": "🔴", "error": "🟣", "warning": "🟠", "skipped": "⚪", "ok": "🟢"}
_MARK = {"new": " **new**", "worse": " **worse**"}


def render(result: RunResult) -> str:
    s = result.summary
    gate = {0: "passed", 1: "**failed**", 3: "**could not run**"}.get(result.exit_code, str(result.exit_code))
    lines = [f"### civicq-ops: gate {gate} (`--fail-on {result.fail_on}`)", "",
             f"{_ICON['critical']} {s.critical} critical · {_ICON['warning']} {s.warning} warning · "
             f"{_ICON['error']} {s.error} error · {_ICON['skipped']} {s.skipped} skipped · {_ICON['ok']} {s.ok} ok"
             + (f" · {s.waived} waived" if s.waived else ""), ""]
    comparison = result.comparison
    states = comparison.states if comparison else {}
    gate_ids = set(result.gate_failures)
    problems = sorted((f for f in result.findings if f.status in ("critical", "warning", "error")),
                      key=lambda f: (f.id not in gate_ids, -SEVERITY[f.status], f.check))
    if comparison is not None:
        new = sum(1 for v in states.values() if v == "new")
        worse = sum(1 for v in states.values() if v == "worse")
        lines += [f"Against the baseline `{_esc(result.baseline or '')}`: {new} new, {worse} worse, "
                  f"{len(comparison.absent)} cleared.", ""]
    if problems:
        lines += ["| | check | target | subject | value | what to do |", "|---|---|---|---|---|---|"]
        for f in problems:
            todo = f.recommendation or f.reason or f.message
            if f.waiver:
                todo = f"waived: {f.waiver['reason']} ({f.waiver['owner']}, until {f.waiver['expires']})"
            mark = _MARK.get(states.get(f.id, ""), "")
            lines.append(f"| {_ICON[f.status]}{mark} | `{_code(f.check)}` | {_esc(f.target)} | "
                         f"{_esc(f.subject_text() if f.subject else '')} | {_esc(shown_value(f.value, f.unit))} | "
                         f"{_esc(todo)} |")
        lines.append("")
    for e in result.errors:
        lines.append(f"> error: {_esc(e['message'])}")
    if result.notices:
        lines += ["", "**Waivers and notices**", ""]
        for n in result.notices:
            where = f" (`{_code(n['path'])}:{n['line']}`)" if n.get("path") and n.get("line") else ""
            lines.append(f"- {_esc(n.get('code', 'notice'))}: {_esc(n['message'])}{where}")
    return "\n".join(lines) + "\n"


def _esc(text: object) -> str:
    """One table cell: pipes escaped, one line, no raw control characters."""
    return printable(text, newlines=False).replace("|", "\\|")


def _code(text: object) -> str:
    return printable(text, newlines=False).replace("`", "'")
