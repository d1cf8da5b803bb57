"""Every offline case in checks/tests and policies/tests, one pytest test each (`-k CHECK::CASE`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicq_ops.catalog.load import load_catalog
from civicq_ops.testing.runner import run_test_file

REPO = Path(__file__).resolve().parents[1]
PATHS = [REPO / "checks", REPO / "policies"]


def _loaded():
    return load_catalog([p for p in PATHS if p.exists()])


def pytest_generate_tests(metafunc):
    if "yaml_case" in metafunc.fixturenames:
        loaded = _loaded()
        cases = []
        for doc in loaded.tests:
            for result in run_test_file(doc, loaded):
                cases.append(result)
        metafunc.parametrize("yaml_case", cases, ids=[c.id for c in cases])


def test_yaml_case(yaml_case):
    if yaml_case.skipped:
        pytest.skip(yaml_case.skipped)
    assert yaml_case.passed, f"{yaml_case.file}:{yaml_case.line}\n" + "\n".join(yaml_case.failures)


def test_shipped_catalog_validates_without_errors():
    loaded = _loaded()
    assert loaded.errors == []
    assert not [d for d in loaded.diagnostics if d.level == "warning"], loaded.diagnostics


def test_every_shipped_check_has_a_firing_and_a_quiet_case():
    loaded = _loaded()
    firing, quiet = set(), set()
    for doc in loaded.tests:
        check = doc.data.get("check")
        for case in doc.data["cases"].values():
            statuses = {f.get("status") for f in case.get("expect", {}).get("findings", [])}
            if statuses & {"warning", "critical"}:
                firing.add(check)
            if not statuses or statuses <= {"ok"}:
                quiet.add(check)
    checks = set(loaded.catalog.checks)
    assert checks - firing == set(), "checks without a firing case"
    assert checks - quiet == set(), "checks without a quiet case"


def test_every_shipped_check_documents_itself():
    for check in _loaded().catalog.checks.values():
        assert check.description, f"{check.id} has no description"
        assert check.recommendation or not (check.thresholds or check.level), f"{check.id} has no recommendation"


def test_committed_checks_doc_matches_the_catalogue(monkeypatch):
    from civicq_ops.report.checks_doc import render

    monkeypatch.chdir(REPO)
    generated = render(load_catalog([REPO / "checks"]).catalog)
    assert generated == (REPO / "docs" / "checks.md").read_text(), "docs/checks.md is stale: run `civicq-ops checks doc`"
