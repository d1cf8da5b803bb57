"""GitHub Actions workflow commands: annotations (at most 10 per level, then a count).

GitHub shows only ten annotations of each level per step, so the findings that fail the gate come
first (then new ones, then the worst): the limit can hide only what does not decide the gate.
`command` is the one way any civicq-ops output writes a workflow command (the run and `validate`).
"""

from __future__ import annotations

from civicq_ops.engine.run import RunResult
from civicq_ops.report.safe import printable

MAX_PER_LEVEL = 10
_COMMAND = {"critical": "error", "error": "error", "warning": "warning"}
_NOTICE_LEVEL = {"waiver-expired": "warning"}


def escape_data(text: object) -> str:
    """A command's message: %, CR and LF escaped as the runner expects (other controls shown as escapes)."""
    return printable(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: object) -> str:
    """A command's property value: also `:` and `,`, which would end the property."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: object, **props: object) -> str:
    """`::kind prop=value,...::message`, every part escaped; properties left None are omitted."""
    shown = ",".join(f"{k}={escape_property(v)}" for k, v in props.items() if v is not None)
    return f"::{kind}{' ' + shown if shown else ''}::{escape_data(message)}"


def _order(result: RunResult):
    gate = set(result.gate_failures)
    states = result.comparison.states if result.comparison else {}

    def key(f):
        return (f.id not in gate, states.get(f.id) not in ("new", "worse"), f.status != "critical")
    return key


def render(result: RunResult) -> str:
    lines = []
    shown = {"error": 0, "warning": 0}
    hidden = {"error": 0, "warning": 0}
    states = result.comparison.states if result.comparison else {}
    gate = set(result.gate_failures)
    for f in sorted(result.findings, key=_order(result)):
        if f.status not in _COMMAND or f.waived:
            continue
        level = _COMMAND[f.status]
        if shown[level] >= MAX_PER_LEVEL:
            hidden[level] += 1
            continue
        shown[level] += 1
        check = result.checks.get(f.check)
        mark = states.get(f.id)
        title = f"{f.check} [{f.target}] {f.subject_text() if f.subject else ''}".strip()
        if mark in ("new", "worse"):
            title += f" ({mark})"
        if f.id in gate:
            title += " fails the gate"
        body = f.message if f.status != "error" else f"{f.title}: {f.reason}"
        if f.recommendation:
            body += f"\n{f.recommendation}"
        lines.append(command(level, body, file=check.source.path if check else None,
                             line=check.source.line if check else None, title=title))
    for level, count in hidden.items():
        if count:
            lines.append(command(level, f"{count} more {level} annotations not shown (none of them fails the gate)"
                                 if not _hidden_gate(result, level, shown) else
                                 f"{count} more {level} annotations not shown", title="civicq-ops"))
    for e in result.errors:
        lines.append(command("error", e["message"], title="civicq-ops"))
    for n in result.notices:
        lines.append(command(_NOTICE_LEVEL.get(n.get("code", ""), "notice"), n["message"],
                             file=n.get("path") if n.get("line") else None, line=n.get("line") or None,
                             title=f"civicq-ops {n.get('code', 'notice')}"))
    lines.append(command("notice", result.summary.line(), title="civicq-ops"))
    return "\n".join(lines) + "\n"


def _hidden_gate(result: RunResult, level: str, shown: dict) -> bool:
    """Whether some gate-failing findings of this level did not fit (more than ten fail the gate)."""
    gate = set(result.gate_failures)
    failing = sum(1 for f in result.findings if f.id in gate and _COMMAND.get(f.status) == level and not f.waived)
    return failing > shown[level]
