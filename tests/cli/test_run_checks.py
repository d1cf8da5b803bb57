"""`civicq-ops run checks` as CI uses it: formats, files, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.fixtures.pg import REPO, failed_concurrent_index

SARIF_SCHEMA = REPO / "tests" / "fixtures" / "sarif-schema-2.1.0.json"  # the official OASIS schema, vendored


@pytest.fixture
def problem_db(db):
    failed_concurrent_index(db)
    with db.connect() as conn:
        conn.execute("CREATE TABLE legacy (id serial PRIMARY KEY)")
        conn.execute("SELECT setval('legacy_id_seq', 2100000000)")
    return db


# The engine's five checks: enough to exercise every format, and stable whatever the catalogue holds.
FIVE = "connection-saturation,idle-in-transaction,table-dead-tuples,invalid-index,sequence-exhaustion"


def run(cli, database, *args):
    selection = () if any(a.startswith("--check") for a in args) else ("--check", FIVE)
    return cli("--config", str(REPO / "civicq-ops.yaml"), "run", "checks", *selection, *args,
               env={"CIVICQ_DATABASE_URL": database.url})


def test_text_report_groups_by_category_worst_first_with_a_summary(cli, problem_db):
    result = run(cli, problem_db)
    assert result.exit_code == 1, result.output  # the sequence is critical
    out = result.stdout
    assert out.index("== sequences") < out.index("== indexes")
    assert "CRITICAL  sequence-exhaustion  public.legacy_id_seq" in out
    assert "ok=" in out.splitlines()[-1] and "critical=1" in out.splitlines()[-1]


def test_json_report_follows_its_schema(cli, problem_db):
    from civicq_ops.catalog.structure import load_schema

    result = run(cli, problem_db, "--format", "json")
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, load_schema("report"))
    assert doc["run"]["exit_code"] == result.exit_code == 1
    assert doc["summary"]["critical"] == 1 and doc["summary"]["warning"] == 1


def test_sarif_validates_against_the_official_schema(cli, problem_db, tmp_path):
    result = run(cli, problem_db, "--format", "sarif")
    doc = json.loads(result.stdout)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(doc)
    levels = sorted(r["level"] for r in doc["runs"][0]["results"])
    assert levels == ["error", "warning"]
    assert doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith(".yaml")


def test_junit_loads_in_a_real_parser_with_unique_names(cli, problem_db, tmp_path):
    from junitparser import JUnitXml

    report = tmp_path / "report.xml"
    result = run(cli, problem_db, "--fail-on", "warning", "--output", f"junit={report}", "--output",
                 f"markdown={tmp_path / 'pr.md'}")
    assert result.exit_code == 1
    xml = JUnitXml.fromfile(str(report))
    names = [case.name for suite in xml for case in suite]
    assert len(names) == len(set(names)) == 5
    failures = [case.name for suite in xml for case in suite if case.result and case.result[0]._tag == "failure"]
    assert sorted(failures) == sorted(["invalid-index[env:public.dup_a_key]", "sequence-exhaustion[env:public.legacy_id_seq]"])
    assert "sequence-exhaustion" in (tmp_path / "pr.md").read_text()


def test_github_annotations_point_at_the_check_definition(cli, problem_db):
    result = run(cli, problem_db, "--format", "github")
    lines = result.stdout.splitlines()
    assert any(ln.startswith("::error file=checks/sequences.yaml,line=") for ln in lines) or \
        any(ln.startswith("::error file=") and "sequences.yaml" in ln for ln in lines)
    assert lines[-1].startswith("::notice title=civicq-ops::ok=")


def test_unknown_format_and_bad_output_spec_are_usage_errors_that_write_nothing(cli, db, tmp_path):
    bad = run(cli, db, "--format", "yaml")
    assert bad.exit_code == 2 and "unknown format 'yaml'" in bad.stderr
    spec = run(cli, db, "--output", "junit")
    assert spec.exit_code == 2 and "FORMAT=PATH" in spec.stderr
    assert not list(tmp_path.glob("*.xml"))


def test_unknown_check_is_exit_2(cli, db):
    result = run(cli, db, "--check", "no-such-check")
    assert result.exit_code == 2 and "unknown check no-such-check" in result.stderr


def test_unreachable_database_is_exit_3_without_password(cli):
    result = cli("--config", str(REPO / "civicq-ops.yaml"), "run", "checks",
                 env={"CIVICQ_DATABASE_URL": "postgresql://u:SeCrEt-pw@127.0.0.1:1/x?connect_timeout=2"})
    assert result.exit_code == 3 and "SeCrEt-pw" not in result.output
    assert "cannot connect to target 'env'" in result.output


def test_several_targets_in_one_report(cli, problem_db, db, tmp_path):
    config = tmp_path / "multi.yaml"
    config.write_text(f"version: 1\npaths: {{checks: ['{REPO / 'checks'}']}}\ntargets:\n"
                      f"  a: {{url: '{problem_db.url}'}}\n  b: {{url: '{problem_db.cluster.url(problem_db.name)}'}}\n")
    result = cli("--config", str(config), "--all", "run", "checks", "--check", FIVE, "--format", "json")
    doc = json.loads(result.stdout)
    assert {t["name"] for t in doc["targets"]} == {"a", "b"}
    assert {f["target"] for f in doc["findings"] if f["status"] == "critical"} == {"a", "b"}


def test_validate_and_test_commands_pass_on_the_shipped_catalog(cli):
    cfg = str(REPO / "civicq-ops.yaml")
    assert cli("--config", cfg, "validate").exit_code == 0
    tested = cli("--config", cfg, "test")
    assert tested.exit_code == 0 and "coverage: every check has a test" in tested.stdout


def test_checks_render_prints_sql_and_binds(cli):
    result = cli("--config", str(REPO / "civicq-ops.yaml"), "checks", "render", "table-dead-tuples",
                 "--param", "schemas=[public]")
    assert result.exit_code == 0
    assert "schemaname = ANY($2)" in result.stdout and '-- binds: [10000, ["public"]]' in result.stdout
    assert "ANY('{public}')" in result.stdout


def test_schema_command_prints_each_kind(cli):
    for kind in ("project", "checks", "policies", "tests", "report"):
        result = cli("schema", kind)
        assert result.exit_code == 0 and json.loads(result.stdout)["$schema"]
    assert cli("schema", "nope").exit_code == 2


def test_baseline_write_then_gate_on_it(cli, problem_db, tmp_path):
    path = tmp_path / "base.json"
    cfg = str(REPO / "civicq-ops.yaml")
    env = {"CIVICQ_DATABASE_URL": problem_db.url}
    wrote = cli("--config", cfg, "baseline", "write", str(path), "--check", FIVE, env=env)
    assert wrote.exit_code == 0 and "2 accepted" in wrote.stdout
    gated = cli("--config", cfg, "run", "checks", "--check", FIVE, "--fail-on", "warning", "--baseline", str(path), env=env)
    assert gated.exit_code == 0, gated.output
    Path(path).write_text("{not json")
    broken = cli("--config", cfg, "run", "checks", "--check", FIVE, "--baseline", str(path), env=env)
    assert broken.exit_code == 2 and "not a civicq-ops baseline" in broken.stderr


def test_github_format_appends_a_step_summary(cli, problem_db, tmp_path):
    summary = tmp_path / "summary.md"
    result = cli("--config", str(REPO / "civicq-ops.yaml"), "run", "checks", "--check", FIVE, "--format", "github",
                 env={"CIVICQ_DATABASE_URL": problem_db.url, "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1
    assert "### civicq-ops: gate **failed**" in summary.read_text()


def test_prometheus_exposition_parses_and_passes_promtool(cli, problem_db, tmp_path):
    import shutil

    from prometheus_client.parser import text_string_to_metric_families

    result = run(cli, problem_db, "--format", "prometheus")
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    status = {(s.labels["check"], s.labels["subject"]): s.value for s in families["civicq_check_status"].samples}
    assert status[("sequence-exhaustion", "public.legacy_id_seq")] == 2
    assert status[("invalid-index", "public.dup_a_key")] == 1
    assert families["civicq_run_exit_code"].samples[0].value == 1
    promtool = shutil.which("promtool")
    if promtool:
        (tmp_path / "m.prom").write_text(result.stdout)
        check = subprocess.run([promtool, "check", "metrics"], input=result.stdout, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
