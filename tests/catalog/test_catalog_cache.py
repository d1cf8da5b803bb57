"""The validated-catalogue cache: unchanged files are not validated again; any change to a file,
another civicq-ops version or other options is a miss; a set with errors is never recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from civicq_ops.catalog import cache as cache_module
from civicq_ops.catalog.cache import CatalogCache
from civicq_ops.catalog.load import load_catalog, validated_before
from civicq_ops.core import signed_cache

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


@pytest.fixture
def own_key(tmp_path, monkeypatch) -> Path:
    """A signing key of this test's own (another user's, another machine's...)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    signed_cache.secret.cache_clear()
    yield tmp_path / "xdg" / "civicq-ops" / "catalog-cache.key"
    signed_cache.secret.cache_clear()


def test_a_hit_reads_the_documents_from_the_entry_not_the_yaml(checks, tmp_path, monkeypatch, own_key):
    from civicq_ops.core import yamlpos

    cache = CatalogCache(tmp_path / "cache")
    first = load_catalog([checks], cache=cache)
    parsed: list[str] = []
    original = yamlpos.load_file
    monkeypatch.setattr(yamlpos, "load_file", lambda p: parsed.append(str(p)) or original(p))
    again = load_catalog([checks], cache=cache)
    assert parsed == []
    assert again.catalog.checks == first.catalog.checks  # SQL, thresholds, params and file:line alike
    assert {c.source.line for c in again.catalog.checks.values()} == {c.source.line for c in first.catalog.checks.values()}
    assert own_key.stat().st_mode & 0o777 == 0o600


def test_an_entry_edited_outside_civicq_ops_is_a_miss(checks, tmp_path, own_key):
    """A forged entry (committed in a repository's .civicq-ops/, say) cannot swap a check's SQL."""
    cache = CatalogCache(tmp_path / "cache")
    first = load_catalog([checks], cache=cache)
    [entry] = (tmp_path / "cache").glob("*.json")
    mac, head, documents = entry.read_text().split("\n")
    forged = json.loads(documents)
    sql = first.catalog.checks["sequence-exhaustion"].query
    [doc] = [d for d in forged if d["path"].endswith("sequences.yaml")]
    [item] = [c for c in doc["data"]["checks"] if c["id"] == "sequence-exhaustion"]
    assert item["query"] == sql
    item["query"] = "SELECT 1 AS forged"
    entry.write_text(f"{mac}\n{head}\n{json.dumps(forged, separators=(',', ':'))}")
    again = load_catalog([checks], cache=cache)
    assert again.catalog.checks["sequence-exhaustion"].query == sql


def test_an_entry_signed_with_another_key_is_a_miss(checks, tmp_path, monkeypatch, own_key, validations):
    cache = CatalogCache(tmp_path / "cache")
    load_catalog([checks], cache=cache)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    signed_cache.secret.cache_clear()
    validations.clear()
    load_catalog([checks], cache=cache)
    assert "semantic" in validations


def test_without_a_usable_key_there_is_no_cache_and_loading_still_works(checks, tmp_path, monkeypatch, own_key,
                                                                        validations):
    (tmp_path / "xdg").write_text("a file where the folder should be")
    cache = CatalogCache(tmp_path / "cache")
    assert not load_catalog([checks], cache=cache).errors
    validations.clear()
    assert not load_catalog([checks], cache=cache).errors
    assert "semantic" in validations and not list((tmp_path / "cache").glob("*.json"))


def test_a_file_saved_while_it_is_loaded_never_pairs_one_content_with_another(checks, tmp_path, monkeypatch,
                                                                                own_key):
    """An editor saving the file between the hash and the parse: the entry records what was hashed."""
    path = checks / "space.yaml"
    before, after = path.read_text(), path.read_text().replace("default: 10}", "default: 11}", 1)
    cache = CatalogCache(tmp_path / "cache")
    hashed = CatalogCache.key

    def save_after_hashing(self, *args, **kwargs):
        key = hashed(self, *args, **kwargs)
        path.write_text(after)
        return key

    monkeypatch.setattr(CatalogCache, "key", save_after_hashing)
    first = load_catalog([checks], cache=cache)
    monkeypatch.undo()
    path.write_text(before)
    again = load_catalog([checks], cache=cache)  # the bytes first hashed: the entry is theirs
    assert again.catalog.checks == first.catalog.checks
    path.write_text(after)
    assert load_catalog([checks], cache=cache).catalog.checks != first.catalog.checks


def test_no_home_folder_means_no_cache_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    assert signed_cache.key_file() is None
    monkeypatch.setenv("XDG_CACHE_HOME", ".cache")  # relative: ignored, as the XDG rules say
    assert signed_cache.key_file() is None


def test_a_relative_xdg_cache_home_never_puts_the_key_in_the_project(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert signed_cache.key_file() == tmp_path / "home" / ".cache" / "civicq-ops" / "catalog-cache.key"
