"""Each report format rendered from one run built in memory (no database): a critical finding that
fails the gate, a waived warning, an ok, a skipped and an error finding, and a target error. Each
format must say the same things in its own grammar, and the machine formats must parse."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from civicq_ops.catalog.model import Check, Source
from civicq_ops.catalog.structure import load_schema
from civicq_ops.core.errors import ExitCode
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunResult, TargetRun, decide_exit
from civicq_ops.report import github, json_report, junit, markdown, prometheus, sarif, text

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "sarif-schema-2.1.0.json"


def _check(check_id: str, category: str, line: int) -> Check:
    return Check.from_dict({"id": check_id, "title": check_id.replace("-", " ").capitalize(), "category": category,
                            "query": "SELECT 1 AS v", "value": "v", "unit": "ratio",
                            "thresholds": {"warning": {"gt": 0.1}, "critical": {"gt": 0.3}}},
                           Source(f"checks/{category}.yaml", line))


@pytest.fixture
def result() -> RunResult:
    checks = {c.id: c for c in (_check("dead-rows", "vacuum", 4), _check("cache-ratio", "cache", 9),
                                _check("seq-left", "sequences", 12), _check("needs-ext", "queries", 20),
                                _check("broken", "locks", 30))}
    findings = [
        Finding("dead-rows", "vacuum", "prod", {"relname": "votes"}, "critical", title="Dead rows", value=0.42,
                unit="ratio", message="votes is 42.0% dead", recommendation="VACUUM votes"),
        Finding("cache-ratio", "cache", "prod", None, "warning", title="Cache ratio", value=0.2, unit="ratio",
                message="cache ratio 20.0%", waiver={"reason": "migrating", "owner": "dba", "expires": "2026-12-31",
                                                     "source": "policies/waivers.yaml:3"}),
        Finding("seq-left", "sequences", "prod", {"seq": "ids"}, "ok", title="Seq left", value=0.01, unit="ratio",
                message="ids 1.0%"),
        Finding("needs-ext", "queries", "prod", None, "skipped", title="Needs ext", reason="needs extension pg_x"),
        Finding("broken", "locks", "prod", None, "error", title="Broken", reason="query failed: boom"),
    ]
    run = RunResult(id="abc123", started_at=datetime(2026, 11, 25, 2, 0, tzinfo=UTC), duration_s=1.25,
                    fail_on="critical", targets=[TargetRun("prod", "18.1", "primary", "7"), TargetRun("dr", error="down")],
                    findings=findings, checks=checks, errors=[{"target": "dr", "check": None, "message": "cannot connect"}])
    run.gate_failures = [findings[0].id]
    run.exit_code = decide_exit(run)
    return run


def test_the_run_is_an_execution_error_that_outranks_the_failed_gate(result):
    assert result.exit_code == ExitCode.EXECUTION_ERROR


def test_text_lists_problems_by_category_and_ends_with_the_summary(result):
    out = text.render(result)
    assert "CRITICAL  dead-rows" in out and "votes is 42.0% dead" in out
    assert "query failed: boom" in out and "cannot connect" in out
    assert "ok=1" in out.splitlines()[-1] and "critical=1" in out.splitlines()[-1]


def test_json_follows_the_report_schema_and_marks_the_gate(result):
    doc = json.loads(json_report.render(result))
    jsonschema.validate(doc, load_schema("report"))
    assert doc["run"]["exit_code"] == 3 and doc["summary"]["waived"] == 1
    assert [f["check"] for f in doc["findings"] if f["fails_gate"]] == ["dead-rows"]
    assert doc["targets"][1] == {"name": "dr", "server_version": None, "role": None, "system_identifier": None,
                                 "database": None, "error": "down"}


def test_junit_has_a_failure_an_error_and_a_skip(result):
    root = ET.fromstring(junit.render(result))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["dead-rows[prod:votes]"].find("failure").get("message") == "votes is 42.0% dead"
    assert cases["broken[prod]"].find("error").get("message") == "query failed: boom"
    assert cases["needs-ext[prod]"].find("skipped").get("message") == "needs extension pg_x"
    assert cases["cache-ratio[prod]"].find("failure") is None  # waived: never a failure


def test_sarif_follows_the_official_schema_and_points_at_the_yaml(result):
    doc = json.loads(sarif.render(result))
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(doc)
    results = {r["ruleId"]: r for r in doc["runs"][0]["results"]}
    assert results["dead-rows"]["level"] == "error"
    location = results["dead-rows"]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "checks/vacuum.yaml" and location["region"]["startLine"] == 4
    assert doc["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_github_annotates_unwaived_problems_at_their_check_and_counts_the_overflow(result):
    lines = github.render(result).splitlines()
    assert lines[0] == "::error title=civicq-ops::cannot connect"  # run errors first, then gate failures
    assert lines[1] == ("::error file=checks/vacuum.yaml,line=4,title=dead-rows [prod] votes fails the gate::"
                        "votes is 42.0%25 dead%0AVACUUM votes")
    assert not [line for line in lines if "cache-ratio" in line]  # waived
    assert "::error title=civicq-ops::cannot connect" in lines
    many = [Finding(f"c{i}", "x", "prod", {"n": i}, "warning", message=f"w{i}") for i in range(13)]
    result.findings = many
    overflow = github.render(result).splitlines()
    assert sum(1 for line in overflow if line.startswith("::warning ")) == 11
    assert "::warning title=civicq-ops::3 more warning annotations not shown (none fails the gate)" in overflow


def test_markdown_states_the_gate_and_the_waiver(result):
    out = markdown.render(result)
    assert out.splitlines()[0] == "### civicq-ops: gate **could not run** (`--fail-on critical`)"
    assert "| 🔴 | `dead-rows` | prod | votes | 42.0% | VACUUM votes |" in out
    assert "waived: migrating (dba, until 2026-12-31)" in out and "> error: cannot connect" in out


def test_prometheus_parses_and_carries_status_and_value(result):
    families = {f.name: f for f in text_string_to_metric_families(prometheus.render(result))}
    status = {(s.labels["check"], s.labels["waived"]): s.value for s in families["civicq_check_status"].samples}
    assert status[("dead-rows", "false")] == 2 and status[("cache-ratio", "true")] == 1
    assert status[("needs-ext", "false")] == -1 and status[("broken", "false")] == 3
    values = {s.labels["check"]: s.value for s in families["civicq_check_value"].samples}
    assert values == {"dead-rows": 0.42, "cache-ratio": 0.2, "seq-left": 0.01}
    up = {s.labels["target"]: s.value for s in families["civicq_target_up"].samples}
    assert up == {"prod": 1, "dr": 0}
    [exit_code] = families["civicq_run_exit_code"].samples
    assert exit_code.value == 3
