"""The terminal report: problems grouped by category, worst first, then what to do, then a summary."""

from __future__ import annotations

from collections import defaultdict

from civicq_ops.core.errors import ExitCode
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.core.units import format_value
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunResult

_COLOURS = {"critical": "\033[1;31m", "error": "\033[1;35m", "warning": "\033[33m", "skipped": "\033[2m",
            "ok": "\033[32m"}
_RESET = "\033[0m"


def _status(status: str, colour: bool, waived: bool = False) -> str:
    text = status.upper() + (" (waived)" if waived else "")
    return f"{_COLOURS[status]}{text}{_RESET}" if colour else text


def _rank(f: Finding) -> tuple:
    return (-(SEVERITY[f.status] if f.status != "skipped" else 0.5), f.waived, f.check, f.subject_text())


def render(result: RunResult, colour: bool = False, verbose: bool = False) -> str:
    from tabulate import tabulate

    lines: list[str] = []
    by_category: dict[str, list[Finding]] = defaultdict(list)
    for f in result.findings:
        by_category[f.category].append(f)
    multi = len(result.targets) > 1

    def worst(cat: str) -> int:
        return max(SEVERITY[f.status] for f in by_category[cat])

    for cat in sorted(by_category, key=lambda c: (-worst(c), c)):
        findings = sorted(by_category[cat], key=_rank)
        shown = [f for f in findings if verbose or f.status != "ok"]
        ok = sum(1 for f in findings if f.status == "ok")
        header = f"== {cat} ({len({f.check for f in findings})} checks, {ok} ok)"
        lines.append(header)
        if shown:
            rows = []
            for f in shown:
                detail = (f.reason if f.status in ("skipped", "error") else f.message) or ""
                if f.confidence == "low":
                    detail += f" [low confidence: {f.confidence_reason}]"
                row = [_status(f.status, colour, f.waived), f.check]
                if multi:
                    row.append(f.target)
                row += [_subject(f), format_value(f.value, f.unit) if f.value is not None else "", detail]
                rows.append(row)
            headers = ["status", "check", *(["target"] if multi else []), "subject", "value", "detail"]
            lines.append(tabulate(rows, headers=headers, tablefmt="simple", maxcolwidths=[None, None, 40, 12, 70]
                                  if not multi else None))
        lines.append("")
    todo = [f for f in sorted(result.findings, key=_rank) if f.recommendation and not f.waived]
    if todo:
        lines.append("== what to do")
        for i, f in enumerate(todo, 1):
            lines.append(f"{i}. [{f.status}] {f.check} {_subject(f)}: {f.recommendation}")
        lines.append("")
    for e in result.errors:
        lines.append(f"error: {e['message']}")
    for n in result.notices:
        lines.append(f"notice: {n['path']}:{n['line']}: {n['message']}")
    targets = ", ".join(f"{t.name} (PostgreSQL {t.server_version}, {t.role})" if t.server_version else
                        f"{t.name} (unreachable)" for t in result.targets)
    lines.append(f"targets: {targets}; {len(result.checks)} checks in {result.duration_s:.2f}s")
    gate = ("FAILED" if result.exit_code == ExitCode.GATE_FAILED
            else "error" if result.exit_code == ExitCode.EXECUTION_ERROR else "passed")
    lines.append(f"{result.summary.line()}  gate(--fail-on {result.fail_on}): {gate}")
    return "\n".join(lines) + "\n"


def _subject(f: Finding) -> str:
    return f.subject_text() if f.subject else ""
