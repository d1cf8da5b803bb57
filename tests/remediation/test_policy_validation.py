"""`validate` holds policies to each action's declared options (11.9) and checks to the columns
their declared object names (10.5), offline."""

from __future__ import annotations

import shutil

from tests.fixtures.pg import REPO


def _validate(tmp_path, cli, policies: str = "", checks: str = ""):
    shutil.copytree(REPO / "checks", tmp_path / "checks", ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "policies").mkdir()
    if policies:
        (tmp_path / "policies" / "p.yaml").write_text(policies)
    if checks:
        (tmp_path / "checks" / "extra.yaml").write_text(checks)
    return cli("validate", str(tmp_path / "checks"), str(tmp_path / "policies"))


def test_options_outside_the_actions_schema_are_errors(tmp_path, cli):
    result = _validate(tmp_path, cli, """version: 1
policies:
  - id: free-sql
    when: {check: table-dead-tuples}
    action: vacuum
    options: {sql: "DROP TABLE users"}
  - id: sql-in-a-reloption
    when: {check: autovacuum-disabled-tables}
    action: set_autovacuum
    options: {set: {"autovacuum_enabled = false); DROP TABLE users; --": 1}}
  - id: sql-in-a-reset
    when: {check: autovacuum-disabled-tables}
    action: set_autovacuum
    options: {reset: ["fillfactor); DROP TABLE users; --"]}
  - id: bad-state
    when: {check: idle-in-transaction}
    action: terminate_backend
    options: {states: [idle]}
  - id: fine
    when: {check: autovacuum-disabled-tables}
    action: set_autovacuum
    options: {set: {autovacuum_vacuum_scale_factor: 0.02, toast.autovacuum_enabled: true}, reset: [autovacuum_enabled]}
""")
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert any("p.yaml:6:" in ln and "unknown key 'sql'" in ln for ln in lines), result.stdout
    assert any("p.yaml:10:" in ln and "DROP TABLE users" in ln for ln in lines), result.stdout
    assert any("p.yaml:14:" in ln for ln in lines), result.stdout
    assert any("p.yaml:18:" in ln and "'idle'" in ln for ln in lines), result.stdout
    assert not any("p.yaml:2" in ln.split(" ")[0] for ln in lines), result.stdout  # the last policy is fine
    assert "4 error(s)" in result.stdout


def test_a_declared_object_column_the_query_does_not_return_is_an_error(tmp_path, cli):
    result = _validate(tmp_path, cli, checks="""version: 1
checks:
  - id: misdeclared
    title: Object columns that do not exist
    category: vacuum
    query: SELECT schemaname, relname, n_dead_tup FROM pg_stat_user_tables
    subject: [schemaname, relname]
    level: warning
    recommendation: VACUUM it.
    remediation: vacuum
    object: {kind: table, schema: schemaname, name: tablename, size: total_bytes}
""")
    assert result.exit_code == 2, result.output
    assert "the query returns no column tablename, total_bytes" in result.stdout, result.stdout


def test_a_backend_object_needs_a_pid_column(tmp_path, cli):
    result = _validate(tmp_path, cli, checks="""version: 1
checks:
  - id: no-pid
    title: A backend without a pid
    category: connections
    query: SELECT pid FROM pg_stat_activity
    subject: [pid]
    level: warning
    recommendation: end it.
    remediation: terminate_backend
    object: {kind: backend, name: pid}
""")
    assert result.exit_code == 2 and "object: 'pid' is a required property" in result.stdout, result.output


def test_a_zero_lock_timeout_is_an_error(tmp_path, cli):
    result = _validate(tmp_path, cli, """version: 1
policies:
  - id: waits-forever
    when: {check: table-dead-tuples}
    action: vacuum
    limits: {lock_timeout: 0s}
""")
    assert result.exit_code == 2 and "lock_timeout 0 means no timeout" in result.stdout, result.output
