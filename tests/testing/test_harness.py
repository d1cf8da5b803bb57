"""The offline test runner tested on itself: a case that should fail does fail, with the message
a check author needs (as sqlfluff's testing_test does for its YAML test harness). If `compare`
returned [] for everything, every test below would go red."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicq_ops.engine.findings import Finding
from civicq_ops.testing.runner import compare, render_junit, run_tests

CHECK = """\
version: 1
checks:
  - id: dead-rows
    title: Dead rows
    category: vacuum
    facts: [backups]
    query: |
      SELECT relname, dead, {{ facts.backups.latest_id }}::text AS latest FROM t
    subject: [relname]
    value: dead
    unit: count
    thresholds: {warning: {gt: 10}, critical: {gt: 100}}
    message: "{{ subject.relname }} has {{ value }} dead rows (backup {{ facts.backups.latest_id }})"
    recommendation: VACUUM {{ subject.relname }}
"""

ROWS = "rows: [{relname: a, dead: 50, latest: x}, {relname: b, dead: 5, latest: x}]"


def run_case(tmp_path: Path, case: str):
    (tmp_path / "checks").mkdir(exist_ok=True)
    (tmp_path / "checks" / "dead.yaml").write_text(CHECK)
    (tmp_path / "checks" / "tests").mkdir(exist_ok=True)
    (tmp_path / "checks" / "tests" / "dead-rows.yaml").write_text(
        "version: 1\ncheck: dead-rows\nfacts: {backups: {latest_id: nightly-7}}\ncases:\n  the-case:\n" + case)
    report = run_tests([tmp_path / "checks"])
    assert not report.diagnostics, report.diagnostics
    [result] = report.cases
    return report, result


def test_a_correct_case_passes(tmp_path):
    report, result = run_case(tmp_path, f"""\
    {ROWS}
    expect:
      findings:
        - {{subject: {{relname: a}}, status: warning, message: "a has 50 dead rows (backup nightly-7)"}}
""")
    assert result.passed and result.failures == [] and report.exit_code == 0


@pytest.mark.parametrize(("expect", "failure"), [
    ("{subject: {relname: a}, status: critical}", "[a]: expected status 'critical', got 'warning'"),
    ("{subject: {relname: a}, value: 51}", "[a]: expected value 51, got 50"),
    ("{subject: {relname: a}, message: wrong}",
     "[a]: expected message\n    'wrong'\n  got\n    'a has 50 dead rows (backup nightly-7)'"),
    ("{subject: {relname: a}, recommendation_contains: ANALYZE}",
     "[a]: recommendation does not contain 'ANALYZE': 'VACUUM a'"),
    ("{subject: {relname: a}, confidence: low}", "[a]: expected confidence 'low', got 'high'"),
])
def test_a_wrong_expectation_fails_with_its_message(tmp_path, expect, failure):
    report, result = run_case(tmp_path, f"    {ROWS}\n    expect:\n      findings: [{expect}]\n")
    assert not result.passed
    assert result.failures == [failure]
    assert report.exit_code == 1


def test_a_missing_finding_fails_and_names_what_was_found(tmp_path):
    _, result = run_case(tmp_path, f"    {ROWS}\n    expect:\n      findings: [{{subject: {{relname: zz}}}}]\n")
    assert result.failures == [
        "expected a finding subject={'relname': 'zz'}, found none; actual: [a] warning; [b] ok",
        "unexpected finding [a] status warning: a has 50 dead rows (backup nightly-7)"]


def test_an_unexpected_finding_fails_the_case(tmp_path):
    _, result = run_case(tmp_path, f"    {ROWS}\n    expect:\n      findings: []\n")
    assert result.failures == ["unexpected finding [a] status warning: a has 50 dead rows (backup nightly-7)"]


def test_a_case_without_expectations_fails_because_it_could_never_fail(tmp_path):
    _, result = run_case(tmp_path, f"    {ROWS}\n")
    assert result.failures == ["the case states no expect.findings: it could never fail"]


def test_a_fact_the_check_does_not_declare_fails_the_case(tmp_path):
    _, result = run_case(tmp_path, f"    {ROWS}\n    facts: {{disk: {{used_ratio: 0.5}}}}\n"
                                   "    expect: {findings: [{subject: {relname: a}, status: warning}]}\n")
    assert result.failures == ["the case gives facts disk, which check 'dead-rows' does not declare (facts:)"]


def test_a_failing_case_is_a_junit_failure_with_its_message(tmp_path):
    report, _ = run_case(tmp_path, f"    {ROWS}\n    expect:\n      findings: [{{subject: {{relname: a}}, status: ok}}]\n")
    xml = render_junit(report)
    assert 'failures="1"' in xml
    assert "<failure message=\"[a]: expected status 'ok', got 'warning'\">" in xml


def test_compare_alone_reports_each_mismatch():
    got = [Finding(check="c", category="x", target="t", subject={"n": "a"}, status="warning", value=3)]
    assert compare([{"subject": {"n": "a"}, "status": "warning", "value": 3}], got) == []
    assert compare([{"subject": {"n": "a"}, "status": "critical"}], got) == [
        "[a]: expected status 'critical', got 'warning'"]
    assert compare([], got) == ["unexpected finding [a] status warning: None"]
