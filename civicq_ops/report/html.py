"""The analysis report as one self-contained HTML file: inline CSS, charts as inline SVG drawn in
Python (report/charts.py), no script and no external resource, so it opens offline, from a file
URL, in a mail attachment or with JavaScript disabled, and prints as it shows."""

from __future__ import annotations

from html import escape

from civicq_ops import __version__
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.core.units import format_value
from civicq_ops.engine.findings import Finding
from civicq_ops.report.analysis import Analysis, Section, Table, cell
from civicq_ops.report.charts import render_chart, sparkline
from civicq_ops.report.forecast import eta_text

_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:1180px;padding:20px 24px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:34px 0 8px;padding-top:8px;border-top:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}.muted{color:var(--muted)}nav a{margin-right:12px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:var(--soft);padding:6px 8px;
margin:4px 0;white-space:pre-wrap;word-break:break-word;border-radius:4px}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.critical{background:#cf222e}.warning{background:#bf8700}.error{background:#8250df}.ok{background:#1a7f37}
.skipped{background:#8c959f}.passed{background:#1a7f37}.failed{background:#cf222e}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0}.card{border:1px solid var(--line);border-radius:6px;
padding:8px 14px;min-width:110px}.card b{display:block;font-size:22px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
svg.chart{width:100%;height:auto;border:1px solid var(--line);border-radius:6px;background:#fff}
svg .ct{font-size:13px;font-weight:600;fill:#1f2328}svg .cx,svg .cy{font-size:10px;fill:#59636e}
svg .cy{text-anchor:end}svg .cn{font-size:12px;fill:#59636e}svg .cf{fill:#fbfcfd}svg .cg{stroke:#e6ebf0}
svg .cl{stroke:#cf222e;stroke-dasharray:3 3}details{margin:6px 0}summary{cursor:pointer;color:var(--muted)}
.note{background:#fff8c5;border:1px solid #eed888;padding:6px 10px;border-radius:6px;margin:8px 0}
@media print{th{position:static}.charts{display:block}svg.chart{break-inside:avoid;margin-bottom:8px}}
"""


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(t: Table) -> str:
    if t.note and not t.columns:
        return f"<h3>{escape(t.title)}</h3><p class='muted'>{escape(t.note)}</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f'<td class="{"num" if _num(v) else ""}">{escape(cell(c, v))}</td>'
                                    for c, v in zip(t.columns, row, strict=True)) + "</tr>" for row in t.rows)
    shown = f"{len(t.rows)} of {t.total}" if t.total is not None else str(len(t.rows))
    return (f"<h3>{escape(t.title)} <span class='muted'>({shown})</span></h3>"
            + (f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if t.rows else
               "<p class='muted'>no rows</p>")
            + (f"<p class='muted'>{escape(t.note)}</p>" if t.note else ""))


def _findings_table(findings: list[Finding], trends: dict) -> str:
    rows = []
    for f in sorted(findings, key=lambda f: (-SEVERITY[f.status], f.check, f.subject_text())):
        detail = (f.reason if f.status in ("skipped", "error") else f.message) or ""
        if f.waived and f.waiver:
            detail = f"waived: {f.waiver['reason']} ({f.waiver['owner']}, until {f.waiver['expires']}). {detail}"
        if f.confidence == "low" and f.confidence_reason:
            detail += f" [low confidence: {f.confidence_reason}]"
        value = format_value(f.value, f.unit) if f.value is not None else ""
        rows.append(f"<tr><td>{_badge(f.status)}</td><td><code>{escape(f.check)}</code></td>"
                    f"<td>{escape(f.subject_text() if f.subject else '')}</td><td class='num'>{escape(value)}</td>"
                    f"<td>{sparkline(trends.get(f.id, []))}</td><td>{escape(detail or '')}</td></tr>")
    return ("<table><thead><tr><th>status</th><th>check</th><th>subject</th><th>value</th><th>trend</th>"
            f"<th>detail</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _section(s: Section, a: Analysis) -> str:
    parts = [f'<section id="{s.key}"><h2>{escape(s.title)} {_badge(s.worst)}</h2>']
    parts += [f"<p class='note'>{escape(n)}</p>" for n in s.notes]
    if s.key == "capacity" and a.forecasts:
        parts.append(_forecast_table(a))
    problems = [f for f in s.findings if f.status != "ok"]
    fine = [f for f in s.findings if f.status == "ok"]
    if problems:
        parts.append(_findings_table(problems, a.trends))
    elif s.findings:
        parts.append("<p class='muted'>every check in this section is ok</p>")
    if fine:
        parts.append(f"<details><summary>{len(fine)} ok finding(s)</summary>{_findings_table(fine, a.trends)}</details>")
    if s.charts:
        parts.append('<div class="charts">' + "".join(render_chart(c) for c in s.charts) + "</div>")
    parts += [_table(t) for t in s.tables]
    return "".join(parts) + "</section>"


def _forecast_rows(forecasts) -> str:
    return "".join(
        f"<tr><td><code>{escape(fc.check)}</code></td><td>{escape('.'.join(str(v) for v in (fc.subject or {}).values()))}"
        f"</td><td class='num'>{escape(format_value(fc.current, 'xids' if fc.limit > 1 else 'ratio'))}</td>"
        f"<td>{escape(eta_text(fc))}</td><td class='num'>{fc.points}</td><td>{escape(fc.confidence)}</td>"
        f"<td>{escape(fc.note)}</td></tr>" for fc in forecasts)


def _forecast_table(a: Analysis) -> str:
    head = ("<table><thead><tr><th>source</th><th>subject</th><th>now</th><th>runs out in</th><th>points</th>"
            "<th>confidence</th><th>how</th></tr></thead><tbody>")
    soon = [fc for fc in a.forecasts if fc.soon]
    rest = [fc for fc in a.forecasts if not fc.soon]
    out = "<h3>Time to exhaustion</h3>"
    out += head + _forecast_rows(soon) + "</tbody></table>" if soon else \
        "<p>Nothing runs out within 10 years at the current rates.</p>"
    if rest:
        out += (f"<details><summary>{len(rest)} more: not growing, not enough history, or more than 10 years away"
                f"</summary>{head}{_forecast_rows(rest)}</tbody></table></details>")
    return out


def _recommendations(a: Analysis) -> str:
    if not a.recommendations:
        return "<p>Nothing to do: no warning or critical finding.</p>"
    rows = []
    for r in a.recommendations:
        sql = f"<pre>{escape(r.sql)}</pre>" if r.sql else "<span class='muted'>no single statement: see the advice</span>"
        rows.append(f"<tr><td class='num'>{r.rank}</td><td>{_badge(r.status)}</td><td>{escape(r.effort)}</td>"
                    f"<td><code>{escape(r.check)}</code><br>{escape(r.subject)}</td><td>{escape(r.what)}</td>"
                    f"<td>{sql}</td><td>{escape(r.lock or '')}</td></tr>")
    return ("<table><thead><tr><th>#</th><th>severity</th><th>effort</th><th>finding</th><th>what to do</th>"
            f"<th>SQL</th><th>lock</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def render(a: Analysis) -> str:
    s = a.summary
    gate = "passed" if a.result.exit_code == 0 else "failed"
    cards = "".join(f'<div class="card"><b>{getattr(s, k)}</b>{_badge(k)}</div>'
                    for k in ("critical", "warning", "error", "skipped", "ok"))
    nav = "".join(f'<a href="#{x.key}">{escape(x.title)}</a>' for x in a.sections)
    errors = "".join(f"<p class='note'>error: {escape(e['message'])}</p>" for e in a.result.errors)
    body = (f"<header><h1>civicq-ops report: {escape(a.target)}</h1>"
            f"<p class='muted'>PostgreSQL {escape(a.server_version or 'unreachable')} · generated "
            f"{a.generated_at:%Y-%m-%d %H:%M:%S %Z} · civicq-ops {escape(__version__)} · run {escape(a.result.id)}</p>"
            f"<nav><a href='#summary'>Summary</a><a href='#todo'>What to do first</a>{nav}</nav></header>"
            f"<section id='summary'><h2>Summary and gate</h2><p>Gate (<code>--fail-on {escape(a.result.fail_on)}</code>): "
            f"{_badge(gate)} {escape(a.gate)}</p><div class='cards'>{cards}</div>{errors}"
            f"<p class='muted'>History: {escape(a.history_note)}.</p></section>"
            f"<section id='todo'><h2>What to do first</h2><p class='muted'>Ranked by severity, then effort (online "
            f"statements first). Each statement is exact and schema-qualified; the lock is what it takes.</p>"
            f"{_recommendations(a)}</section>"
            + "".join(_section(x, a) for x in a.sections))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>civicq-ops report: {escape(a.target)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n")
