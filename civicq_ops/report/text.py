"""The terminal report: problems grouped by category, worst first, then what to do, then a summary."""

from __future__ import annotations

from collections import defaultdict

from civicq_ops.core.errors import ExitCode
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunResult
from civicq_ops.report.safe import printable, shown_value
from civicq_ops.report.table import render_table

_COLOURS = {"critical": "\033[1;31m", "error": "\033[1;35m", "warning": "\033[33m", "skipped": "\033[2m",
            "ok": "\033[32m"}
_RESET = "\033[0m"


def _status(status: str, waived: bool = False, mark: str | None = None) -> str:
    return status.upper() + (" (waived)" if waived else "") + (f" [{mark}]" if mark in ("new", "worse") else "")


def _since(result: RunResult, f: Finding) -> str:
    """What the baseline accepted, when the finding changed since: ` [baseline: warning, 5,000]`."""
    comparison = result.comparison
    before = comparison.previous.get(f.id) if comparison else None
    if comparison is None or before is None or (comparison.states.get(f.id) == "unchanged" and before.value == f.value):
        return ""
    value = shown_value(before.value, before.unit or f.unit)
    return f" [baseline: {before.status}{', ' + value if value else ''}]"


def _rank(f: Finding) -> tuple:
    return (-(SEVERITY[f.status] if f.status != "skipped" else 0.5), f.waived, f.check, f.subject_text())


def render(result: RunResult, colour: bool = False, verbose: bool = False) -> str:
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
        ok = sum(1 for f in findings if f.status == "ok") + sum(
            n for (check, _target), n in result.ok_counts.items()
            if check in result.checks and result.checks[check].category == cat)  # counted in SQL, not listed
        header = f"== {printable(cat, newlines=False)} ({len({f.check for f in findings})} checks, {ok} ok)"
        lines.append(header)
        if shown:
            rows = []
            for f in shown:
                detail = (f.reason if f.status in ("skipped", "error") else f.message) or ""
                if f.confidence == "low":
                    detail += f" [low confidence: {f.confidence_reason}]"
                detail += _since(result, f)
                mark = result.comparison.states.get(f.id) if result.comparison else None
                row = [_status(f.status, f.waived, mark), f.check]
                if multi:
                    row.append(f.target)
                row += [_subject(f), shown_value(f.value, f.unit), detail]
                rows.append([printable(c) for c in row])
            headers = ["status", "check", *(["target"] if multi else []), "subject", "value", "detail"]
            limits = [None, None, *([20] if multi else []), 40, 12, 70]

            def paint(r: int, col: int, text: str, shown=shown) -> str:
                return f"{_COLOURS[shown[r].status]}{text}{_RESET}" if colour and col == 0 else text

            lines.append(render_table(headers, rows, limits, paint))
        lines.append("")
    todo = [f for f in sorted(result.findings, key=_rank) if f.recommendation and not f.waived]
    if todo:
        lines.append("== what to do")
        for i, f in enumerate(todo, 1):
            where = f" {_subject(f)}" if f.subject else ""
            lines.append(printable(f"{i}. [{f.status}] {f.check}{where}: {f.recommendation}"))
        lines.append("")
    for e in result.errors:
        lines.append(printable(f"error: {e['message']}"))
    for n in result.notices:
        lines.append(printable(f"notice: {n['path']}:{n['line']}: {n['message']}"))
    targets = ", ".join(f"{t.name} (PostgreSQL {t.server_version}, {t.role})" if t.server_version else
                        f"{t.name} (unreachable)" for t in result.targets)
    lines.append(printable(f"targets: {targets}; {len(result.checks)} checks in {result.duration_s:.2f}s"))
    if result.comparison is not None:
        states = list(result.comparison.states.values())
        lines.append(printable(f"baseline {result.baseline}: {states.count('new')} new, {states.count('worse')} worse, "
                               f"{len(result.comparison.absent)} cleared"))
    gate = ("FAILED" if result.exit_code == ExitCode.GATE_FAILED
            else "error" if result.exit_code == ExitCode.EXECUTION_ERROR else "passed")
    lines.append(f"{result.summary.line()}  gate(--fail-on {result.fail_on}): {gate}")
    return "\n".join(lines) + "\n"


def _subject(f: Finding) -> str:
    return f.subject_text() if f.subject else ""
