"""`db lint` in every format (text, json, sarif, github, markdown); each finding points at its
migration file and line. SARIF and GitHub annotations use the escaping and locations of
civicq_ops.report, as `run checks` does."""

from __future__ import annotations

import json
from typing import Any

from civicq_ops import __version__
from civicq_ops.civicq.migration_lint import LintFinding, LintResult
from civicq_ops.civicq.migration_risk import RISKS, StatementContext
from civicq_ops.core.units import format_bytes, format_duration
from civicq_ops.report.github import MAX_PER_LEVEL, command
from civicq_ops.report.safe import printable
from civicq_ops.report.sarif import SCHEMA, _location, _uri

FORMATS = ("text", "json", "sarif", "github", "markdown")
_SARIF_LEVEL = {"high": "error", "unknown": "error", "medium": "warning", "low": "note", "info": "note"}


def render(result: LintResult, fmt: str, *, verbose: bool = False) -> str:
    return {"text": lambda: render_text(result, verbose), "json": lambda: render_json(result),
            "sarif": lambda: render_sarif(result), "github": lambda: render_github(result),
            "markdown": lambda: render_markdown(result)}[fmt]()


def _where(f: LintFinding | StatementContext) -> str:
    return f"{_uri(f.path)}:{f.line}" if f.path else "<alembic>"


def _statement_line(ctx: StatementContext) -> str:
    parts = [f"{ctx.kind} on {ctx.table}: {ctx.lock} ({ctx.blocks})"]
    if ctx.work != "none":
        parts.append(ctx.work)
    if ctx.new_table:
        parts.append("new table")
    elif ctx.rows is not None:
        parts.append(f"{ctx.rows:,} rows, {format_bytes(ctx.total_bytes)}")
        if ctx.writes_per_s is not None:
            parts.append(f"{ctx.writes_per_s:.1f} writes/s since statistics reset")
        if ctx.estimate_s is not None:
            parts.append(f"~{format_duration(ctx.estimate_s)} under the lock")
    return ", ".join(parts)


def _shown(result: LintResult, verbose: bool) -> list[LintFinding]:
    return [f for f in result.findings if verbose or f.risk != "info"]


def _summary(result: LintResult) -> str:
    counts = {r: sum(1 for f in result.findings if f.risk == r) for r in reversed(RISKS)}
    shown = ", ".join(f"{n} {r}" for r, n in counts.items() if n)
    where = f"target '{result.target}'" if result.online else "offline"
    gate = "FAILS the gate" if result.failed else "passes"
    revs = ", ".join(result.revisions) or "none pending"
    return (f"db lint {result.range} ({revs}) on {where}: risk {result.verdict}, {gate} (fail_on {result.fail_on}); "
            f"findings: {shown or 'none'}")


def render_text(result: LintResult, verbose: bool = False) -> str:
    contexts = {c.index: c for c in result.statements}
    lines: list[str] = []
    for f in _shown(result, verbose):
        lines.append(f"{_where(f)}: {f.risk} [{f.rule}] {printable(f.message)}")
        ctx = contexts.get(f.statement) if f.statement is not None else None
        if ctx is not None:
            lines.append(f"    {_statement_line(ctx)}")
            for reason in ctx.reasons:
                lines.append(f"    - {reason}")
            for b in ctx.breaks:
                handled = " (dropped earlier in this range)" if ctx.breaks_handled else ""
                lines.append(f"    - depends on the column: {b}{handled}")
        if f.help:
            lines.append(f"    help: {printable(f.help)}")
    hidden = sum(1 for f in result.findings if f.risk == "info") if not verbose else 0
    if hidden:
        lines.append(f"({hidden} info findings on style and re-runnability not shown: --verbose)")
    for u in result.unknown:
        lines.append(f"not known: {u}")
    lines.append(_summary(result))
    return "\n".join(lines) + "\n"


def _finding_dict(f: LintFinding) -> dict[str, Any]:
    return {"rule": f.rule, "source": f.source, "risk": f.risk, "message": f.message, "help": f.help,
            "file": _uri(f.path) if f.path else None, "line": f.line, "statement": f.statement, "url": f.url,
            "sql": f.sql[:500]}


def _context_dict(c: StatementContext) -> dict[str, Any]:
    return {"statement": c.index, "revision": c.revision, "file": _uri(c.path) if c.path else None, "line": c.line,
            "kind": c.kind, "table": c.table, "lock": c.lock, "blocks": c.blocks, "work": c.work,
            "rewrites": c.work == "rewrite", "new_table": c.new_table, "exists": c.exists, "rows": c.rows,
            "total_bytes": c.total_bytes, "writes_per_s": c.writes_per_s, "estimate_s": c.estimate_s,
            "breaks": c.breaks, "breaks_handled": c.breaks_handled, "blockers": c.blockers, "risk": c.risk,
            "reasons": c.reasons, "sql": c.sql[:500]}


def render_json(result: LintResult) -> str:
    doc = {"tool": "civicq-ops db lint", "version": __version__, "range": result.range, "revisions": result.revisions,
           "target": result.target, "online": result.online, "verdict": result.verdict, "fails_gate": result.failed,
           "fail_on": result.fail_on, "unknown": result.unknown, "squawk_version": result.squawk_version,
           "scan_rate_bytes_per_s": result.scan_rate, "timings_s": result.timings,
           "findings": [_finding_dict(f) for f in result.findings],
           "statements": [_context_dict(c) for c in result.statements]}
    return json.dumps(doc, indent=2, default=str) + "\n"


def render_sarif(result: LintResult) -> str:
    rules: dict[str, dict[str, Any]] = {}
    for f in result.findings:
        if f.rule not in rules:
            rule: dict[str, Any] = {"id": f.rule, "shortDescription": {"text": f.message.split(". ")[0][:200]},
                                    "properties": {"source": f.source}}
            if f.url:
                rule["helpUri"] = f.url
            rules[f.rule] = rule
    index = {rid: i for i, rid in enumerate(rules)}
    contexts = {c.index: c for c in result.statements}
    results = []
    for f in result.findings:
        ctx = contexts.get(f.statement) if f.statement is not None else None
        text = f.message + (f" ({_statement_line(ctx)})" if ctx else "") + (f" Help: {f.help}" if f.help else "")
        res: dict[str, Any] = {"ruleId": f.rule, "ruleIndex": index[f.rule], "level": _SARIF_LEVEL[f.risk],
                               "message": {"text": text}, "properties": {"risk": f.risk}}
        if f.path:
            res["locations"] = [_location(f.path, f.line or 1)]
        results.append(res)
    notes = [{"level": "warning", "message": {"text": f"not known: {u}"}} for u in result.unknown]
    doc = {"$schema": SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "civicq-ops db lint", "version": __version__,
                            "informationUri": "https://squawkhq.com/docs/rules", "rules": list(rules.values())}},
        "invocations": [{"executionSuccessful": True, "toolConfigurationNotifications": notes}],
        "results": results,
        "properties": {"verdict": result.verdict, "failsGate": result.failed, "range": result.range},
    }]}
    return json.dumps(doc, indent=2) + "\n"


def render_github(result: LintResult) -> str:
    level = {"high": "error", "unknown": "error", "medium": "warning", "low": "notice"}
    shown: dict[str, int] = {}
    lines = []
    order = sorted((f for f in result.findings if f.risk in level), key=lambda f: -RISKS.index(f.risk))
    for f in order:
        kind = level[f.risk]
        if shown.get(kind, 0) >= MAX_PER_LEVEL:
            continue
        shown[kind] = shown.get(kind, 0) + 1
        lines.append(command(kind, f.message + (f" Help: {f.help}" if f.help else ""),
                             file=_uri(f.path) if f.path else None, line=f.line,
                             title=f"db lint {f.rule} ({f.risk} risk)"))
    lines.append(_summary(result))
    return "\n".join(lines) + "\n"


def render_markdown(result: LintResult) -> str:
    contexts = {c.index: c for c in result.statements}
    out = [f"### civicq-ops db lint: risk **{result.verdict}**", "", _summary(result), ""]
    shown = _shown(result, False)
    if shown:
        out += ["| risk | rule | where | statement | context |", "| --- | --- | --- | --- | --- |"]
        for f in shown:
            ctx = contexts.get(f.statement) if f.statement is not None else None
            cell = (_statement_line(ctx) + ("; " + "; ".join(ctx.reasons) if ctx.reasons else "")) if ctx else ""
            sql = f.sql.splitlines()[0][:80] if f.sql else ""
            out.append(f"| {f.risk} | {f.rule} | `{_where(f)}` | `{_md(sql)}` | {_md(f.message)} {_md(cell)} |")
    for u in result.unknown:
        out.append(f"- not known: {_md(u)}")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return printable(text).replace("|", "\\|").replace("\n", " ").replace("`", "'")
