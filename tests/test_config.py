"""civicq-ops.yaml: loading, validation with file:line, ${ENV} interpolation, target selection."""

from __future__ import annotations

import re

import pytest

from civicq_ops.config import load_project
from civicq_ops.core.errors import ConfigError


def test_no_project_file_gives_one_local_embedded_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = load_project(env={})
    target = project.target()
    assert target.name == "local" and target.embedded


def test_project_file_is_found_in_a_parent_folder(tmp_path, monkeypatch, project_file):
    project_file("version: 1\ntargets:\n  here: {embedded: true}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert load_project(env={}).target().name == "here"


def test_unknown_key_is_an_error_at_its_line(project_file):
    path = project_file("version: 1\ntargets:\n  local: {embedded: true}\ncolour: blue\n")
    with pytest.raises(ConfigError, match=r"civicq-ops.yaml:4:1: unknown key 'colour'"):
        load_project(path, env={})


def test_duplicate_key_is_an_error_naming_both_lines(project_file):
    path = project_file("version: 1\ntargets:\n  a: {embedded: true}\n  a: {url: x}\n")
    with pytest.raises(ConfigError, match=r":4:3: duplicate key 'a' \(first defined at line 3\)"):
        load_project(path, env={})


def test_wrong_version_is_an_error(project_file):
    path = project_file("version: 2\n")
    with pytest.raises(ConfigError, match=r":1:10: version"):
        load_project(path, env={})


def test_invalid_yaml_is_an_error_with_position(project_file):
    path = project_file("version: 1\ntargets: [unclosed\n")
    with pytest.raises(ConfigError, match=r"civicq-ops.yaml:3:1: invalid YAML"):
        load_project(path, env={})


def test_target_needs_exactly_one_of_embedded_or_url(project_file):
    path = project_file("version: 1\ntargets:\n  both: {embedded: true, url: 'postgresql://x'}\n")
    with pytest.raises(ConfigError, match=r":3:9: .*exactly one of 'embedded: true' or 'url'"):
        load_project(path, env={})


def test_default_target_must_exist(project_file):
    path = project_file("version: 1\ntargets:\n  a: {embedded: true}\ndefault_target: b\n")
    with pytest.raises(ConfigError, match=r":4:17: default_target 'b' is not one of the targets"):
        load_project(path, env={})


def test_env_reference_is_interpolated_when_the_target_is_used(project_file):
    path = project_file("version: 1\ntargets:\n  prod: {url: '${PROD_URL}'}\n")
    project = load_project(path, env={"PROD_URL": "postgresql://db.example/civicq"})
    assert project.target("prod").url == "postgresql://db.example/civicq"


def test_unset_env_variable_is_an_error_naming_it_and_its_line(project_file):
    path = project_file("version: 1\ntargets:\n  local: {embedded: true}\n  prod: {url: '${PROD_URL}'}\n")
    project = load_project(path, env={})
    assert project.target("local").embedded  # an unused target does not get in the way
    with pytest.raises(ConfigError, match=r"civicq-ops.yaml:4:15: environment variable PROD_URL is not set"):
        project.target("prod")


def test_env_default_and_dollar_escape(project_file):
    path = project_file("version: 1\ntargets:\n  a: {url: 'postgresql://h/${DB:-civicq}?x=$$1'}\n")
    assert load_project(path, env={}).target("a").url == "postgresql://h/civicq?x=$1"


def test_unknown_target_lists_the_known_ones(project_file):
    path = project_file("version: 1\ntargets:\n  a: {embedded: true}\n  b: {url: x}\ndefault_target: a\n")
    with pytest.raises(ConfigError, match=r"unknown target 'c' \(targets in .*: a, b\)"):
        load_project(path, env={}).target("c")


def test_database_url_variable_becomes_the_default_target(project_file):
    path = project_file("version: 1\ntargets:\n  local: {embedded: true}\n")
    project = load_project(path, env={"CIVICQ_DATABASE_URL": "postgresql://u@h/d"})
    target = project.target()
    assert (target.name, target.url) == ("env", "postgresql://u@h/d")
    assert project.target("local").embedded


def test_config_variable_names_the_project_file(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("version: 1\ntargets:\n  x: {embedded: true}\n")
    monkeypatch.chdir(tmp_path)
    assert load_project(env={"CIVICQ_CONFIG": str(other)}).target().name == "x"


def test_missing_explicit_project_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such project file"):
        load_project(tmp_path / "nope.yaml", env={})


def test_sections_are_parsed_once_into_typed_settings_with_their_defaults(project_file):
    from civicq_ops.config import DEFAULT_BACKUP_JOBS, BackupSettings, StateSettings

    bare = load_project(project_file("version: 1\ntargets:\n  local: {embedded: true}\n"), env={})
    assert bare.backups == BackupSettings(dir="backups", format="directory", jobs=DEFAULT_BACKUP_JOBS, compress=None)
    assert bare.state == StateSettings(url=None) and bare.notifiers == {}
    full = load_project(project_file(
        "version: 1\ntargets:\n  local: {embedded: true}\n"
        "state: {url: 'sqlite:///s.db'}\n"
        "notifiers:\n  am: {type: alertmanager, url: 'http://am:9093'}\n"
        "backups: {dir: /srv/b, format: custom, jobs: 6, compress: 'zstd', retention: {keep_last: 3}}\n"), env={})
    assert full.backups == BackupSettings(dir="/srv/b", format="custom", jobs=6, compress="zstd",
                                          retention={"keep_last": 3})
    assert full.state.url == "sqlite:///s.db"
    assert full.notifiers["am"].type == "alertmanager" and full.notifiers["am"].url == "http://am:9093"


@pytest.mark.parametrize(("section", "says"), [
    ("state: {retention: 0s}", "at least 1d"),
    ("state: {retention: 12h}", "at least 1d"),
    ("migrations: {lock_timeout: 0s}", "under 1ms"),
    ("migrations: {lock_timeout: 0.0001s}", "under 1ms"),
    ("migrations: {lint: {rows: {medium: 1000000, high: 10}}}", "medium (1000000) is above high (10)"),
])
def test_settings_that_would_switch_a_safety_off_are_refused_at_their_line(tmp_path, section, says):
    """A retention of 0s deleted every earlier run; a lock_timeout under 1ms is PostgreSQL's "no
    timeout", so a migration's readers would queue without bound (found by review)."""
    path = tmp_path / "civicq-ops.yaml"
    path.write_text(f"version: 1\ntargets: {{t: {{url: 'postgresql://x@h/db'}}}}\n{section}\n")
    with pytest.raises(ConfigError, match=rf"civicq-ops.yaml:3:\d+: .*{re.escape(says)}"):
        load_project(path, env={})


def test_an_unchanged_project_file_is_neither_parsed_nor_validated_again(project_file, monkeypatch):
    """Issue 14: every command reads the project file; the catalogue cache gives back its document."""
    from civicq_ops.core import yamlpos

    path = project_file("version: 1\ntargets:\n  here: {embedded: true}\n")
    assert load_project(path, env={}).target().name == "here"

    def no_parse(p):
        raise AssertionError(f"{p} parsed again")

    monkeypatch.setattr(yamlpos, "load_file", no_parse)
    project = load_project(path, env={})
    assert project.target().name == "here" and project.document.position(("targets", "here")) == (3, 9)
    monkeypatch.undo()
    path.write_text("version: 1\ntargets:\n  there: {embedded: true}\n")
    assert load_project(path, env={}).target().name == "there"
