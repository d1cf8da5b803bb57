"""GitHub Actions workflow commands: annotations (at most 10 per level, then a count).

GitHub shows only ten annotations of each level per step, so the findings that fail the gate come
first (then new ones, then the worst): the limit can hide only what does not decide the gate.
`command` is the one way any civicq-ops output writes a workflow command (the run and `validate`).
"""

from __future__ import annotations

from civicq_ops.engine.baseline import FAILING_STATES
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


def render(result: RunResult) -> str:
    states = result.comparison.states if result.comparison else {}
    gate = set(result.gate_failures)
    # Errors of the run (an unreachable target) first: they decide the exit code and count towards
    # the same ten error annotations.
    lines = [command("error", e["message"], title="civicq-ops") for e in result.errors]
    shown = {"error": len(lines), "warning": 0}
    hidden = {"error": 0, "warning": 0}
    hidden_failing = {"error": 0, "warning": 0}
    order = sorted(result.findings, key=lambda f: (f.id not in gate, states.get(f.id) not in FAILING_STATES,
                                                    f.status != "critical"))
    for f in order:
        if f.status not in _COMMAND or f.waived:
            continue
        level = _COMMAND[f.status]
        if shown[level] >= MAX_PER_LEVEL:
            hidden[level] += 1
            hidden_failing[level] += f.id in gate
            continue
        shown[level] += 1
        check = result.checks.get(f.check)
        title = f"{f.check} [{f.target}] {f.subject_text() if f.subject else ''}".strip()
        if states.get(f.id) in FAILING_STATES:
            title += f" ({states[f.id]})"
        if f.id in gate:
            title += " fails the gate"
        body = f.message if f.status != "error" else f"{f.title}: {f.reason}"
        if f.recommendation:
            body += f"\n{f.recommendation}"
        lines.append(command(level, body, file=check.source.path if check else None,
                             line=check.source.line if check else None, title=title))
    for level, count in hidden.items():
        if count:
            which = f"{hidden_failing[level]} of them fail the gate" if hidden_failing[level] else "none fails the gate"
            lines.append(command(level, f"{count} more {level} annotations not shown ({which})", title="civicq-ops"))
    for n in result.notices:
        lines.append(command(_NOTICE_LEVEL.get(n.get("code", ""), "notice"), n["message"],
                             file=n.get("path") if n.get("line") else None, line=n.get("line") or None,
                             title=f"civicq-ops {n.get('code', 'notice')}"))
    lines.append(command("notice", result.summary.line(), title="civicq-ops"))
    return "\n".join(lines) + "\n"
