"""The catalogue commands through the real CLI (`validate --format`, `test --junit`, `checks list |
show`, `schema --write`) and `audit`, each also as the library call the command makes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import jsonschema
from junitparser import JUnitXml

from civicq_ops.config import load_project
from civicq_ops.core.errors import ExitCode
from civicq_ops.report.catalog_views import check_list, check_show, validate_report
from civicq_ops.testing.runner import offline_tests
from tests.fixtures.pg import REPO

SARIF_SCHEMA = REPO / "tests" / "schemas" / "sarif-schema-2.1.0.json"
CFG = str(REPO / "civicq-ops.yaml")

BAD_CHECK = """\
version: 1
checks:
  - id: big-tables
    title: Big tables
    category: space
    query: SELECT relname, n_live_tup AS n FROM pg_stat_user_tables
    value: n
    unit: furlongs
    thresholds: {warning: {gt: 10}}
    recommendation: Look.
"""


def _bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad" / "checks.yaml"
    path.parent.mkdir()
    path.write_text(BAD_CHECK)
    return path


def test_validate_json_lists_each_diagnostic_and_exits_2(cli, tmp_path):
    bad = _bad(tmp_path)
    result = cli("--config", CFG, "validate", str(bad), "--format", "json")
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["files"] == 1
    [diag] = doc["diagnostics"]
    assert (diag["path"], diag["line"], diag["code"], diag["level"]) == ("bad/checks.yaml", 8, "bad-value", "error")


def test_validate_github_prints_one_annotation_per_problem(cli, tmp_path):
    bad = _bad(tmp_path)
    result = cli("--config", CFG, "validate", str(bad), "--format", "github")
    assert result.exit_code == 2
    [line] = result.stdout.splitlines()
    assert line.startswith("::error file=bad/checks.yaml,line=8,col=") and "title=bad-value::" in line


def test_validate_sarif_follows_the_official_schema(cli, tmp_path):
    bad = _bad(tmp_path)
    result = cli("--config", CFG, "validate", str(bad), "--format", "sarif")
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(doc)
    [finding] = doc["runs"][0]["results"]
    assert finding["ruleId"] == "bad-value" and finding["level"] == "error"
    assert finding["locations"][0]["physicalLocation"]["region"]["startLine"] == 8


def test_validate_report_is_the_library_call_behind_validate(tmp_path):
    project = load_project(CFG, env={})
    assert validate_report(project, None).exit_code == ExitCode.OK
    outcome = validate_report(project, [str(_bad(tmp_path))], "text")
    assert outcome.exit_code == ExitCode.INVALID_INPUT
    assert outcome.text.splitlines()[-1] == "1 file(s) checked: 1 error(s), 0 warning(s)"


FAILING_TEST = """\
version: 1
check: table-dead-tuples
cases:
  wrongly-expects-ok:
    rows: [{schemaname: public, relname: votes, dead_ratio: 0.5, n_dead_tup: 500, n_live_tup: 500}]
    expect: {findings: [{subject: {schemaname: public, relname: votes}, status: ok}]}
"""


def test_test_command_exits_1_on_a_failing_case_and_writes_junit(cli, tmp_path):
    case = tmp_path / "t" / "table-dead-tuples.yaml"
    case.parent.mkdir()
    case.write_text(FAILING_TEST)
    junit = tmp_path / "yaml-tests.xml"
    result = cli("--config", CFG, "test", str(case.parent), "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout and "expected status 'ok', got 'critical'" in result.stdout
    xml = JUnitXml.fromfile(str(junit))
    failed = [c for suite in xml for c in suite if not c.is_passed and not c.is_skipped]
    assert [c.name for c in failed] == ["table-dead-tuples::wrongly-expects-ok"]
    assert "expected status 'ok', got 'critical'" in failed[0].result[0].message


def test_test_with_a_path_runs_only_the_cases_under_it(cli):
    one = REPO / "checks" / "tests" / "deadlocks.yaml"
    result = cli("--config", CFG, "test", str(one))
    assert result.exit_code == 0, result.output
    ran = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL", "SKIP"))]
    assert ran and all(str(one) in line for line in ran), ran
    assert "coverage: every check has a test" not in result.stdout  # not known from one file


def test_test_and_validate_of_a_folder_without_yaml_are_bad_input(cli, tmp_path):
    assert cli("--config", CFG, "test", str(tmp_path)).exit_code == 2
    result = cli("--config", CFG, "validate", str(tmp_path))
    assert result.exit_code == 2 and "no YAML files under" in result.output


def test_offline_tests_is_the_library_call_behind_test(tmp_path):
    project = load_project(CFG, env={})
    assert offline_tests(project, None).exit_code == ExitCode.OK
    (tmp_path / "table-dead-tuples.yaml").write_text(FAILING_TEST)
    outcome = offline_tests(project, [str(tmp_path)])
    assert outcome.exit_code == ExitCode.GATE_FAILED
    (tmp_path / "table-dead-tuples.yaml").write_text("version: 1\ncheck: x\ncases: {}\n")
    assert offline_tests(project, [str(tmp_path)]).exit_code == ExitCode.INVALID_INPUT


def test_checks_list_filters_and_shows_requirements_and_facts(cli):
    result = cli("--config", CFG, "checks", "list", "--category", "backup")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[-1] == "2 checks"
    assert any(line.startswith("backup-freshness") and "facts: backups" in line for line in lines)
    as_json = json.loads(cli("--config", CFG, "checks", "list", "--tag", "quick", "--format", "json").stdout)
    assert as_json and all("quick" in c["tags"] for c in as_json)
    assert {c["id"]: c["facts"] for c in as_json}["connection-latency"] == ["connection"]
    assert cli("--config", CFG, "checks", "list", "--format", "xml").exit_code == 2


def test_checks_show_prints_where_the_check_lives_and_its_yaml(cli):
    result = cli("--config", CFG, "checks", "show", "table-dead-tuples")
    assert result.exit_code == 0
    first, *rest = result.stdout.splitlines()
    assert first.startswith("# table-dead-tuples (") and "checks/vacuum.yaml:" in first
    assert "id: table-dead-tuples" in rest and any(line.startswith("query:") for line in rest)
    unknown = cli("--config", CFG, "checks", "show", "nope")
    assert unknown.exit_code == 2 and "unknown check 'nope'" in unknown.stderr


def test_check_list_and_show_are_library_calls():
    project = load_project(CFG, env={})
    assert check_list(project, category="backup").splitlines()[-1] == "2 checks"
    assert check_show(project, "backup-freshness").startswith("# backup-freshness (")


def test_schema_write_writes_every_schema_for_editors(cli, tmp_path):
    result = cli("schema", "--write", str(tmp_path / "schemas"))
    assert result.exit_code == 0
    written = sorted(p.name for p in (tmp_path / "schemas").iterdir())
    shipped = sorted(p.name for p in (REPO / "civicq_ops" / "schemas").glob("*.schema.json"))
    assert written == shipped and {"checks.schema.json", "policies.schema.json", "project.schema.json",
                                   "tests.schema.json"} <= set(written)
    checks_schema = json.loads((tmp_path / "schemas" / "checks.schema.json").read_text())
    assert "facts" in checks_schema["$defs"]["check"]["properties"]
    assert cli("schema").exit_code == 2 and cli("schema", "checks", "--write", str(tmp_path)).exit_code == 2


def test_audit_lists_the_actions_of_the_state_store(cli, tmp_path):
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\ntargets:\n  local: {embedded: true}\n")
    state = tmp_path / ".civicq-ops" / "state.db"
    state.parent.mkdir()
    conn = sqlite3.connect(state)
    conn.executescript((REPO / "tests" / "state" / "fixtures" / "state_v1.sql").read_text())
    conn.close()
    text = cli("audit")
    assert text.exit_code == 0, text.output
    [header, _rule, row] = text.stdout.splitlines()
    assert header.split()[:3] == ["when", "(UTC)", "target"]
    assert row.split() == ["2026-11-20T02:05:00", "local", "vacuum-dead", "vacuum", "public.votes", "done"]
    [record] = json.loads(cli("audit", "--format", "json").stdout)
    assert record["sql"] == "VACUUM public.votes" and record["finished_at"] == "2026-11-20T02:05:03+00:00"


def test_run_checks_keeps_its_report_when_the_state_store_cannot_be_opened(cli, db, tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\npaths: {{checks: ['{REPO / 'checks'}']}}\n"
        f"targets:\n  db: {{url: '{db.url}'}}\nstate: {{url: 'sqlite:///not-a-folder/state.db'}}\n")
    result = cli("run", "checks", "--check", "invalid-index", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # the whole report, though history could not be kept
    assert [f["check"] for f in doc["findings"]] == ["invalid-index"]
    assert "notice: the run was not recorded in the state store: cannot open the state store" in result.stderr
