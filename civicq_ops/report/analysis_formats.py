"""The analysis report as Markdown and as JSON: the same sections, recommendations, forecasts and
trend data as the HTML file (report/html.py), for a terminal, a wiki page or a program."""

from __future__ import annotations

import json

from civicq_ops import __version__
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.core.units import format_value
from civicq_ops.report.analysis import FORMAT_VERSION, Analysis, cell
from civicq_ops.report.charts import thin
from civicq_ops.report.forecast import eta_text

FORMATS = ("markdown", "html", "json")


def _esc(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(a: Analysis) -> str:
    s = a.summary
    lines = [f"# civicq-ops report: {a.target}", "",
             f"PostgreSQL {a.server_version or 'unreachable'} · generated {a.generated_at:%Y-%m-%d %H:%M:%S %Z} · "
             f"civicq-ops {__version__} · run {a.result.id}", "",
             "## Summary and gate", "",
             f"Gate (`--fail-on {a.result.fail_on}`): **{a.gate}**", "",
             f"critical {s.critical} · warning {s.warning} · error {s.error} · skipped {s.skipped} · ok {s.ok}", "",
             f"History: {a.history_note}.", ""]
    lines += [f"> error: {_esc(e['message'])}" for e in a.result.errors]
    lines += ["## What to do first", ""]
    if not a.recommendations:
        lines += ["Nothing to do: no warning or critical finding.", ""]
    for r in a.recommendations:
        lines.append(f"{r.rank}. **{r.status}** · effort {r.effort} · `{r.check}` {r.subject}: {r.what}")
        if r.sql:
            lines += ["", "   ```sql", *("   " + x for x in r.sql.splitlines()), "   ```", f"   Lock: {r.lock}", ""]
    lines.append("")
    for sec in a.sections:
        lines += [f"## {sec.title} ({sec.worst})", ""]
        lines += [f"> {n}" for n in sec.notes]
        if sec.key == "capacity" and a.forecasts:
            soon = [fc for fc in a.forecasts if fc.soon]
            lines += ["### Time to exhaustion", ""]
            if soon:
                lines += ["| source | subject | runs out in | points | confidence | how |", "|---|---|---|---|---|---|"]
                lines += [f"| `{fc.check}` | {_esc('.'.join(str(v) for v in (fc.subject or {}).values()))} | "
                          f"{_esc(eta_text(fc))} | {fc.points} | {fc.confidence} | {_esc(fc.note)} |" for fc in soon]
            else:
                lines.append("Nothing runs out within 10 years at the current rates.")
            rest = len(a.forecasts) - len(soon)
            if rest:
                lines += ["", f"{rest} more: not growing, not enough history, or more than 10 years away (see the JSON)."]
            lines.append("")
        problems = sorted((f for f in sec.findings if f.status != "ok"), key=lambda f: (-SEVERITY[f.status], f.check))
        ok = len(sec.findings) - len(problems)
        if problems:
            lines += ["| status | check | subject | value | detail |", "|---|---|---|---|---|"]
            for f in problems:
                detail = f.reason if f.status in ("skipped", "error") else f.message
                value = format_value(f.value, f.unit) if f.value is not None else ""
                lines.append(f"| {f.status}{' (waived)' if f.waived else ''} | `{f.check}` | "
                             f"{_esc(f.subject_text() if f.subject else '')} | {value} | {_esc(detail or '')} |")
            lines.append("")
        if ok:
            lines += [f"{ok} ok finding(s).", ""]
        for chart in sec.charts:
            latest = ", ".join(f"{ln.label} {format_value(ln.points[-1][1], chart.unit)}" for ln in chart.lines
                               if ln.points and not ln.dashed)
            lines += [f"Chart (in the HTML report): {chart.title}" + (f": latest {latest}" if latest else ""), ""]
        for t in sec.tables:
            lines += [f"### {t.title}", ""]
            if not t.columns:
                lines += [t.note, ""]
                continue
            lines += ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
            lines += ["| " + " | ".join(_esc(cell(c, v)) for c, v in zip(t.columns, row, strict=True)) + " |"
                      for row in t.rows]
            lines += ["", f"{len(t.rows)} of {t.total} row(s); {t.note}" if t.note else "", ""]
    return "\n".join(lines).rstrip() + "\n"


def document(a: Analysis) -> dict:
    from civicq_ops.report.json_report import document as run_document

    run = run_document(a.result)
    return {
        "format_version": FORMAT_VERSION, "kind": "analysis",
        "tool": {"name": "civicq-ops", "version": __version__},
        "generated_at": a.generated_at.isoformat(), "target": a.target, "server_version": a.server_version,
        "gate": {"fail_on": a.result.fail_on, "exit_code": a.result.exit_code, "result": a.gate},
        "summary": run["summary"], "history": {"note": a.history_note, "runs": a.history.runs,
                                               "bucket": a.history.bucket},
        "recommendations": [r.to_dict() for r in a.recommendations],
        "forecasts": [fc.to_dict() for fc in a.forecasts],
        "sections": [{"key": s.key, "title": s.title, "worst": s.worst, "notes": s.notes,
                      "findings": [f.id for f in s.findings],
                      "tables": [t.to_dict() for t in s.tables],
                      "charts": [{"title": c.title, "unit": c.unit, "limit": c.limit,
                                  "lines": [{"label": ln.label, "dashed": ln.dashed,
                                             "points": [[t.isoformat(), v] for t, v in thin(ln.points)]}
                                            for ln in c.lines]} for c in s.charts]} for s in a.sections],
        "findings": run["findings"],
        "trends": {fid: [[t.isoformat(), v] for t, v in thin(points, 60)] for fid, points in a.trends.items()},
        "errors": a.result.errors,
    }


def json_text(a: Analysis) -> str:
    return json.dumps(document(a), indent=1, default=str) + "\n"


def render(a: Analysis, fmt: str) -> str:
    from civicq_ops.core.errors import InputError
    from civicq_ops.report import html

    if fmt == "markdown":
        return markdown(a)
    if fmt == "json":
        return json_text(a)
    if fmt == "html":
        return html.render(a)
    raise InputError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
