"""The validated-catalogue cache: unchanged files are not validated again; any change to a file,
another civicq-ops version or other options is a miss; a set with errors is never recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from civicq_ops.catalog import cache as cache_module
from civicq_ops.catalog.cache import CatalogCache
from civicq_ops.catalog.load import load_catalog, validated_before

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def checks(tmp_path) -> Path:
    folder = tmp_path / "checks"
    folder.mkdir()
    for name in ("space.yaml", "sequences.yaml"):
        shutil.copy(REPO / "checks" / name, folder / name)
    return folder


@pytest.fixture
def validations(monkeypatch) -> list[str]:
    """Each call of the schema validation and of the semantic checks."""
    from civicq_ops.catalog import load, semantic

    calls: list[str] = []
    schema, checks = load.validate_document, semantic.check_catalog
    monkeypatch.setattr(load, "validate_document", lambda *a, **k: calls.append("schema") or schema(*a, **k))
    monkeypatch.setattr(semantic, "check_catalog", lambda *a, **k: calls.append("semantic") or checks(*a, **k))
    return calls


def test_unchanged_files_are_validated_once(checks, tmp_path, validations):
    cache = CatalogCache(tmp_path / "cache")
    first = load_catalog([checks], cache=cache)
    assert "semantic" in validations and not first.errors
    validations.clear()
    again = load_catalog([checks], cache=cache)
    assert validations == []
    assert set(again.catalog.checks) == set(first.catalog.checks) and again.diagnostics == first.diagnostics
    assert validated_before([checks], cache) == (sorted(checks.glob("*.yaml")), first.diagnostics)


def test_a_changed_byte_is_a_miss(checks, tmp_path, validations):
    cache = CatalogCache(tmp_path / "cache")
    load_catalog([checks], cache=cache)
    validations.clear()
    path = checks / "space.yaml"
    path.write_text(path.read_text().replace("default: 10}", "default: 11}", 1))
    load_catalog([checks], cache=cache)
    assert "semantic" in validations


def test_another_civicq_ops_version_is_a_miss(checks, tmp_path, validations, monkeypatch):
    cache = CatalogCache(tmp_path / "cache")
    load_catalog([checks], cache=cache)
    validations.clear()
    monkeypatch.setattr(cache_module, "__version__", "99.0.0")
    load_catalog([checks], cache=cache)
    assert "semantic" in validations


def test_other_options_are_a_miss(checks, tmp_path, validations):
    cache = CatalogCache(tmp_path / "cache")
    load_catalog([checks], cache=cache, parse_sql=False)
    validations.clear()
    load_catalog([checks], cache=cache, parse_sql=True)
    assert "semantic" in validations


def test_files_with_errors_are_never_recorded(checks, tmp_path, validations):
    cache = CatalogCache(tmp_path / "cache")
    path = checks / "space.yaml"
    path.write_text(path.read_text().replace("category: space", "category: Not A Category", 1))
    assert load_catalog([checks], cache=cache).errors
    validations.clear()
    assert load_catalog([checks], cache=cache).errors
    assert "schema" in validations


def test_validate_answers_from_the_cache_and_still_sees_an_edit(cli, project_file, checks, tmp_path):
    project_file("version: 1\npaths: {checks: [checks]}\n")
    assert cli("validate").exit_code == 0
    assert list((tmp_path / ".civicq-ops" / "catalog-cache").glob("*.json"))
    cached = cli("validate")
    assert cached.exit_code == 0 and "2 file(s) checked: 0 error(s)" in cached.output
    path = checks / "space.yaml"
    path.write_text(path.read_text().replace("category: space", "category: Not A Category", 1))
    assert cli("validate").exit_code == 2
