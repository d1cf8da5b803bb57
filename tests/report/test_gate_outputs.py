"""What CI reads from a run, without a database: every output written on its own, unreachable
targets in JUnit and the summary, baseline marks and ordering, waiver notices in every format, and
one escaping for GitHub commands."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema

from civicq_ops.core.diagnostics import Diagnostic
from civicq_ops.engine.baseline import Comparison, Entry
from civicq_ops.engine.run import TargetRun
from civicq_ops.report.formats import render, write_outputs
from civicq_ops.report.sarif import template_outline
from civicq_ops.report.validation import render as render_diagnostics
from tests.report.runs import break_format, finding, result

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "sarif-schema-2.1.0.json"
UNREACHABLE = "cannot connect to target 'env': connection refused"


# 2. One failing output loses nothing else.
def test_a_failing_output_is_named_and_the_others_are_written(tmp_path, monkeypatch):
    run = result([finding(value=5000, unit="count")])
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    outputs = [("junit", str(blocked / "report.xml")), ("json", str(tmp_path / "out.json")),
               ("markdown", str(tmp_path / "pr.md"))]
    break_format(monkeypatch, "markdown")
    failures = write_outputs(run, outputs)
    assert [f.name for f in failures] == [f"junit={blocked / 'report.xml'}", f"markdown={tmp_path / 'pr.md'}"]
    assert "ValueError: renderer bug" in failures[1].message
    assert json.loads((tmp_path / "out.json").read_text())["findings"][0]["value"] == 5000
    assert not (tmp_path / "pr.md").exists()


# 6. An unreachable target is an error test case and counts as an error.
def test_unreachable_target_is_an_error_testcase_and_counted():
    run = result([], targets=[TargetRun(name="env", error=UNREACHABLE)],
                 errors=[{"target": "env", "check": None, "message": UNREACHABLE}], exit_code=3)
    root = ET.fromstring(render(run, "junit"))
    cases = root.findall(".//testcase")
    assert [c.get("name") for c in cases] == ["target[env]"]
    assert cases[0].find("error").get("message") == UNREACHABLE
    assert root.find("testsuite").get("errors") == "1"
    last = render(run, "text").splitlines()[-1]
    assert "error=1" in last and "gate(--fail-on critical): error" in last
    assert json.loads(render(run, "json"))["summary"]["error"] == 1


# 19. Baseline marks in every format, and gate failures first in GitHub annotations.
def _baselined_run():
    old = [finding("table-dead-tuples", subject={"schemaname": "public", "relname": f"t{i}"}, status="warning",
                   value=0.2, unit="ratio", message=f"t{i} has dead rows") for i in range(12)]
    new = finding("sequence-exhaustion", subject={"schemaname": "public", "sequencename": "s"}, status="warning",
                  value=0.9, unit="ratio", message="s is nearly used up")
    worse = finding("table-bloat", subject={"schemaname": "public", "relname": "big"}, status="critical",
                    value=0.8, unit="ratio", message="big is bloated")
    states = {f.id: "unchanged" for f in old} | {new.id: "new", worse.id: "worse"}
    previous = {f.id: Entry(f.check, "env", f.subject, "warning", 0.2, "ratio") for f in old}
    previous[worse.id] = Entry(worse.check, "env", worse.subject, "warning", 0.4, "ratio")
    gone = Entry("table-dead-tuples", "env", {"schemaname": "public", "relname": "fixed"}, "warning", 0.3, "ratio")
    run = result(old + [worse, new], gate_failures=[new.id, worse.id], exit_code=1, fail_on="warning")
    run.baseline, run.comparison = "base.json", Comparison(states=states, previous=previous, absent=[gone])
    return run, new, worse


def test_gate_failing_findings_come_first_in_github_annotations():
    run, new, worse = _baselined_run()
    lines = render(run, "github").splitlines()
    warnings = [ln for ln in lines if ln.startswith("::warning")]
    assert "sequence-exhaustion" in warnings[0] and "(new) fails the gate" in warnings[0]
    assert any("table-bloat" in ln and "(worse) fails the gate" in ln for ln in lines if ln.startswith("::error"))
    assert any("3 more warning annotations not shown (none fails the gate)" in ln for ln in lines)


def test_baseline_states_in_text_markdown_json_and_sarif():
    run, new, worse = _baselined_run()
    text = render(run, "text")
    assert "WARNING [new]  sequence-exhaustion" in text and "CRITICAL [worse]  table-bloat" in text
    assert "[baseline: warning, 40.0%]" in text and "baseline base.json: 1 new, 1 worse, 1 cleared" in text
    md = render(run, "markdown")
    assert "| 🟠 **new** | `sequence-exhaustion`" in md and "| 🔴 **worse** | `table-bloat`" in md
    doc = json.loads(render(run, "json"))
    marks = {f["check"]: f["baseline"]["state"] for f in doc["findings"] if f["baseline"]}
    assert marks["sequence-exhaustion"] == "new" and marks["table-bloat"] == "worse"
    assert doc["baseline_absent"][0]["subject"] == {"schemaname": "public", "relname": "fixed"}
    sarif = json.loads(render(run, "sarif"))
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    states = sorted(r["baselineState"] for r in sarif["runs"][0]["results"])
    assert states == ["absent", "new"] + ["unchanged"] * 12 + ["updated"]
    junit = render(run, "junit")
    assert "s is nearly used up (new since the baseline)" in junit and "accepted by the baseline (unchanged" in junit
    metrics = render(run, "prometheus")
    assert 'civicq_check_baseline_new{check="sequence-exhaustion",state="new",subject="public.s",target="env"} 1.0' in metrics


# 20. Waiver notices in GitHub, SARIF and Markdown; one escaping; readable rule help.
NOTICES = [{"code": "waiver-expired", "message": "waiver for unused-indexes on public.a expired on 2026-01-01",
            "path": "policies/waivers.yaml", "line": 7},
           {"code": "waiver-stale", "message": "waiver for invalid-index {} matches no finding: remove it",
            "path": "policies/waivers.yaml", "line": 12}]


def test_waiver_notices_reach_github_sarif_and_markdown():
    run = result([finding()], notices=NOTICES)
    github = render(run, "github")
    assert "::warning file=policies/waivers.yaml,line=7,title=civicq-ops waiver-expired::waiver for unused-indexes" in github
    assert "::notice file=policies/waivers.yaml,line=12,title=civicq-ops waiver-stale::" in github
    sarif = json.loads(render(run, "sarif"))
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    notes = sarif["runs"][0]["invocations"][0]["toolConfigurationNotifications"]
    assert [(n["level"], n["descriptor"]["id"]) for n in notes] == [("warning", "waiver-expired"), ("note", "waiver-stale")]
    assert notes[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 7
    md = render(run, "markdown")
    assert "- waiver-expired: waiver for unused-indexes" in md and "(`policies/waivers.yaml:12`)" in md


def test_validate_github_escapes_like_the_run_output():
    d = Diagnostic("checks/a,b.yaml", 3, 5, "schema", "bad value: 50%\nsecond line", hint="use a: b")
    line = render_diagnostics([d], "github", 1)
    assert line == ("::error file=checks/a%2Cb.yaml,line=3,col=5,title=schema::bad value: 50%25%0Asecond line"
                    " (use a: b)\n")


def test_sarif_rule_help_shows_placeholders_not_jinja():
    run = result([finding("invalid-index", subject={"schemaname": "public", "indexname": "i"})])
    rules = json.loads(render(run, "sarif"))["runs"][0]["tool"]["driver"]["rules"]
    help_text = rules[0]["help"]["text"]
    assert "{{" not in help_text and "{%" not in help_text
    assert "<schemaname>.<indexname>" in help_text and "[otherwise:]" in help_text
    assert template_outline("{{ row.query[:80] }} is {{ value | pct }}") == "<query> is <value>"
