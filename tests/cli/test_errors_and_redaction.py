"""The CLI's contract for bad input: one line on stderr, a documented exit code, no traceback,
and no password in any output."""

from __future__ import annotations

import socket

import pytest

from civicq_ops.config import load_project
from civicq_ops.core.errors import ExitCode, TargetUnreachable
from civicq_ops.postgres.connect import connect
from tests.fixtures.pg import REPO

PASSWORD = "Hunter2-very-secret"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1


def test_version_prints_the_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("civicq-ops ")


def test_unknown_option_is_a_usage_error_with_exit_2(cli):
    result = cli("db", "status", "--no-such-option")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_bad_project_file_gives_file_line_and_exit_2(cli, tmp_path):
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\ntargets:\n  local: {embedded: yes-please}\n")
    result = cli("db", "status")
    assert_one_line_error(result, 2, "civicq-ops.yaml:3:")


def test_unknown_target_gives_exit_2(cli):
    assert_one_line_error(cli("--target", "nope", "db", "status"), 2, "unknown target 'nope'")


def test_unset_variable_gives_exit_2_naming_it(cli, tmp_path):
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\ntargets:\n  prod: {url: '${CIVICQ_PROD_URL}'}\n")
    assert_one_line_error(cli("db", "url"), 2, "environment variable CIVICQ_PROD_URL is not set")


def test_unreachable_database_gives_exit_3_and_never_the_password(cli):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{_closed_port()}/civicq?connect_timeout=3"
    # `db current` connects through civicq-ops (`db psql` would hand the failure to psql's own exit code).
    result = cli("db", "current", env={"CIVICQ_DATABASE_URL": url})
    assert_one_line_error(result, 3, "cannot connect to target 'env'")
    assert PASSWORD not in result.output


def test_url_command_masks_the_password(cli):
    url = f"postgresql://app:{PASSWORD}@db.example:5432/civicq"
    result = cli("db", "url", env={"CIVICQ_DATABASE_URL": url})
    assert result.exit_code == 0
    assert PASSWORD not in result.output and "app:********@db.example" in result.stdout


def test_interpolated_password_is_masked_everywhere(cli, tmp_path):
    (tmp_path / "civicq-ops.yaml").write_text(
        "version: 1\ntargets:\n  prod: {url: 'postgresql://app:${DB_PASSWORD}@127.0.0.1:1/x'}\n"
    )
    result = cli("db", "url", env={"DB_PASSWORD": PASSWORD})
    assert result.exit_code == 0 and PASSWORD not in result.output


def test_wrong_password_on_a_real_server_gives_exit_3_without_the_password(cli, pg_cluster):
    kw = pg_cluster.conninfo()
    url = f"postgresql://{kw['user']}:{PASSWORD}@127.0.0.1:{kw['port']}/postgres"
    result = cli("--config", str(REPO / "civicq-ops.yaml"), "run", "checks", "--check", "invalid-index",
                 env={"CIVICQ_DATABASE_URL": url})
    assert result.exit_code == 3, result.output
    assert "cannot connect to target 'env'" in result.output and "password authentication failed" in result.output
    assert PASSWORD not in result.output
    # The library error too: its message, and the psycopg error it wraps.
    project = load_project(env={"CIVICQ_DATABASE_URL": url})
    with pytest.raises(TargetUnreachable) as caught:
        connect(project, project.target())
    assert caught.value.exit_code == ExitCode.EXECUTION_ERROR
    assert "password authentication failed" in caught.value.message
    assert PASSWORD not in caught.value.message and PASSWORD not in str(caught.value.__cause__)


def test_db_commands_on_a_url_target_explain_they_need_an_embedded_one(cli):
    result = cli("db", "up", env={"CIVICQ_DATABASE_URL": "postgresql://u@h/d"})
    assert_one_line_error(result, 2, "is not embedded")
