"""Pre-commit: `validate FILE...` resolves references against the whole project catalogue and
reports on the named files only; one mistake gives one error (no unknown-check, no misleading
did-you-mean, in the policies, alerts and waivers that name the broken check)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from civicq_ops.config import load_project
from civicq_ops.core.errors import ExitCode
from civicq_ops.report.catalog_views import validate_report
from tests.fixtures.pg import REPO

SHIPPED = sorted(str(p.relative_to(REPO)) for p in [*(REPO / "checks").glob("*.yaml"), *(REPO / "policies").glob("*.yaml")])


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    """A copy of the repository's catalogue, as a team's repository holds it."""
    shutil.copytree(REPO / "checks", tmp_path / "checks")
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\npaths: {checks: [checks], policies: [policies]}\n")
    monkeypatch.chdir(tmp_path)
    return load_project(tmp_path / "civicq-ops.yaml", env={})


def errors(outcome) -> list[str]:
    return [line for line in outcome.text.splitlines() if ": error[" in line]


def test_each_shipped_file_validates_on_its_own(project):
    bad = {}
    for name in SHIPPED:
        outcome = validate_report(project, [name])
        if outcome.exit_code != ExitCode.OK:
            bad[name] = outcome.text
    assert not bad
    assert "policies/alerts.yaml" in SHIPPED and "policies/waivers.yaml" in SHIPPED


def test_a_renamed_check_in_the_named_file_reports_the_references_it_breaks_elsewhere(project):
    """What review found: the hook passed `validate checks/vacuum.yaml` while the policies and alerts
    naming the old id were broken by it."""
    path = Path("checks/vacuum.yaml")
    path.write_text(path.read_text().replace("id: table-dead-tuples", "id: table-dead-rows", 1))
    outcome = validate_report(project, [str(path)])
    assert outcome.exit_code == ExitCode.INVALID_INPUT
    where = {e.split(": error[")[0].rsplit(":", 2)[0] for e in errors(outcome)}
    assert "policies/maintenance.yaml" in where and "checks/vacuum.yaml" not in where, outcome.text


def test_an_error_in_another_file_is_reported_because_the_catalogue_is_invalid(project):
    broken = Path("checks/vacuum.yaml")
    broken.write_text(broken.read_text().replace("title: Dead tuples piling up", "titel: Dead tuples piling up", 1))
    outcome = validate_report(project, ["policies/maintenance.yaml"])
    assert outcome.exit_code == ExitCode.INVALID_INPUT
    assert [e.split(": error[")[0].rsplit(":", 2)[0] for e in errors(outcome)] == ["checks/vacuum.yaml"]


@pytest.mark.parametrize(("old", "new", "code"), [
    ("critical: {gt: 0.30}", "critical: {gt: 10GB}", "bad-unit"),  # a threshold whose unit does not fit
    ("    thresholds: {warning: {gt: 0.10}, critical: {gt: 0.30}}",
     "    thresholdz: {warning: {gt: 0.10}, critical: {gt: 0.30}}", "unknown-key"),  # a schema error
])
def test_a_broken_check_is_one_error_in_its_file_and_nowhere_else(project, old, new, code):
    path = Path("checks/vacuum.yaml")
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))  # table-dead-tuples: named by policies, alerts, waivers
    alone = validate_report(project, [str(path)])
    assert alone.exit_code == ExitCode.INVALID_INPUT
    assert len(errors(alone)) == 1 and f"error[{code}]" in errors(alone)[0], alone.text
    everything = validate_report(project, None)
    assert len(errors(everything)) == 1, everything.text
    assert "did you mean" not in everything.text


def test_cli_validate_one_broken_file_exits_2_with_one_error(project, cli, tmp_path):
    path = tmp_path / "checks" / "vacuum.yaml"
    path.write_text(path.read_text().replace("critical: {gt: 0.30}", "critical: {gt: 10GB}", 1))
    result = cli("validate", "checks/vacuum.yaml", "policies/alerts.yaml", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stdout.count(": error[") == 1, result.stdout
