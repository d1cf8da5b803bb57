"""`civicq-ops report` against real PostgreSQL, opened in a real headless Chromium."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

import pytest

from tests.fixtures.pg import shipped_catalog
from tests.reporting.browser import dump_dom, ink, png_pixels_of, screenshot, visit


def validate_analysis(doc: dict) -> None:
    """The JSON report against `civicq-ops schema analysis` (shipped in the package)."""
    import json

    import jsonschema

    from civicq_ops.catalog.structure import load_schema

    schema = load_schema("analysis")
    jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(doc, default=str)))


def _grow(conn, step: int) -> None:
    """Rows added between runs, so sizes, counts and a sequence move."""
    conn.execute("CREATE TABLE IF NOT EXISTS growth_probe (id serial PRIMARY KEY, pad text)")
    conn.execute("INSERT INTO growth_probe (pad) SELECT repeat('x', 200) FROM generate_series(1, %s)", (2000 * step,))


def _report(civicq_db, store, runs: int):
    from civicq_ops.report.analysis import analyze

    project, target = civicq_db.project()
    catalog = shipped_catalog()
    analysis = None
    with civicq_db.connect() as conn:
        for step in range(1, runs + 1):
            _grow(conn, step)
            analysis = analyze(project, target, catalog, store=store)
    return analysis


def test_first_report_says_there_is_no_history(civicq_db, store):
    from civicq_ops.report.analysis import analyze
    from civicq_ops.report.analysis_formats import markdown
    from civicq_ops.report.html import render

    project, target = civicq_db.project()
    analysis = analyze(project, target, shipped_catalog(), store=store, record=False)
    assert analysis.history.empty
    assert "no history yet" in analysis.history_note
    assert "no history yet" in markdown(analysis)
    assert "not enough history" in render(analysis)


def test_html_report_draws_every_chart_and_reads_without_javascript(civicq_db, store, chromium, tmp_path):
    from civicq_ops.report.analysis_formats import document, markdown
    from civicq_ops.report.html import render

    analysis = _report(civicq_db, store, runs=4)
    assert analysis.history.runs == 4
    html_path = tmp_path / "report.html"
    html_path.write_text(render(analysis))
    # Self-contained: nothing to fetch at view time.
    text = html_path.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "<script" not in text

    on = visit(chromium, html_path, tmp_path / "profile-js")
    off = visit(chromium, html_path, tmp_path / "profile-nojs", javascript=False)
    assert on.errors == [] and off.errors == [], (on.errors, off.errors)
    # Nothing on the page depends on a script: with JavaScript disabled the DOM and the pixels are the same.
    assert off.dom == on.dom
    assert png_pixels_of(off.png) == png_pixels_of(on.png)
    dom = off.dom
    assert "<script" not in dom
    charts = re.findall(r'<svg[^>]*class="chart".*?</svg>', dom, re.S)
    assert len(charts) >= 3
    for chart in charts:
        paths = re.findall(r'<path d="([^"]+)"', chart)
        assert paths and all(re.search(r"[ML]\d", d) for d in paths), chart[:300]
    # The tables are plain HTML: every section and every recommendation's SQL is there.
    for section in analysis.sections:
        assert f'id="{section.key}"' in dom
    assert dom.count("<table>") >= len(analysis.sections)
    for rec in analysis.recommendations:
        if rec.sql:
            assert escape(rec.sql.splitlines()[0], quote=False) in dom
    png = Path("/tmp/civicq-report-screenshot.png")  # kept for a person to look at
    png.write_bytes(off.png)
    assert ink(png) > 0.02

    # Markdown and JSON carry the same sections and recommendations.
    md = markdown(analysis)
    doc = document(analysis)
    validate_analysis(doc)
    assert [s["key"] for s in doc["sections"]] == [s.key for s in analysis.sections]
    for section in analysis.sections:
        assert f"## {section.title}" in md
    assert len(doc["recommendations"]) == len(analysis.recommendations)
    for rec in analysis.recommendations:
        assert rec.check in md


def test_cli_report_writes_html_and_json_and_exits_with_the_gate(civicq_db, cli, tmp_path):
    import json

    env = {"CIVICQ_DATABASE_URL": civicq_db.url}
    checks = Path(__file__).resolve().parents[2] / "checks"
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\npaths: {{checks: [{checks}]}}\n"
        "report: {top_queries: 5, forecast: {window: 7d, warning: 60d, critical: 20d}}\n")
    result = cli("report", "--format", "html", "--output", "json=r.json", "--output", "markdown=r.md", env=env)
    assert result.exit_code in (0, 1), result.stderr
    assert result.stdout.startswith("<!DOCTYPE html>")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["gate"]["exit_code"] == result.exit_code
    assert (tmp_path / "r.md").read_text().startswith("# civicq-ops report")
    bad = cli("report", "--format", "pdf", env=env)
    assert bad.exit_code == 2 and bad.stderr.strip().splitlines() == [
        "error: unknown format 'pdf' (choose from markdown, html, json)"]


@pytest.mark.parametrize("bad", ["window: soon", "critical: 90d, warning: 30d"])
def test_bad_forecast_horizon_is_one_line_exit_2(civicq_db, cli, tmp_path, bad):
    (tmp_path / "civicq-ops.yaml").write_text(f"version: 1\nreport: {{forecast: {{{bad}}}}}\n")
    result = cli("report", env={"CIVICQ_DATABASE_URL": civicq_db.url})
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "report.forecast" in result.stderr


def test_the_browser_harness_sees_console_errors_and_blank_pages(chromium, tmp_path):
    """The checks above can fail: a script error is caught, a blank page has no ink."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('boom'); nosuchfn();</script></body></html>")
    page = dump_dom(chromium, bad, tmp_path / "p1")
    assert any("boom" in line for line in page.console_errors)
    seen = visit(chromium, bad, tmp_path / "p3")
    assert "boom" in seen.errors and any("nosuchfn" in e or "Uncaught" in e for e in seen.errors)
    assert visit(chromium, bad, tmp_path / "p4", javascript=False).errors == []
    blank = tmp_path / "blank.png"
    screenshot(chromium, bad, tmp_path / "p2", blank, size="400,300")
    assert ink(blank) < 0.001
