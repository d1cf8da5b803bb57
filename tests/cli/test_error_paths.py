"""The paths that ended in `error: unexpected <Exception>` (issue 11 point 12) now end in a real
message and the right exit code, with and without `--debug` (point 13). Real PostgreSQL 15 and 18."""

from __future__ import annotations

import re

import pytest
from psycopg import sql

from tests.fixtures.pg import REPO

CONFIG = str(REPO / "civicq-ops.yaml")


def both(cli, url, *args, cwd=None):
    """Run with and without --debug: the exit code must be the same, the error line too."""
    plain = cli("--config", CONFIG, *args, env={"CIVICQ_DATABASE_URL": url}, cwd=cwd)
    debug = cli("--config", CONFIG, "--debug", *args, env={"CIVICQ_DATABASE_URL": url}, cwd=cwd)
    assert plain.exit_code == debug.exit_code, (plain.output, debug.output)
    assert "Traceback" not in plain.output and "unexpected" not in plain.output, plain.output
    assert "Traceback" in debug.stderr or debug.exit_code == 0
    error = [ln for ln in plain.stderr.splitlines() if ln.startswith("error: ")]
    assert not error or error[0] in debug.stderr
    return plain


def test_apply_a_folder_is_bad_input(cli, db, tmp_path):
    result = both(cli, db.url, "apply", str(tmp_path))
    assert result.exit_code == 2 and "directory" in result.stderr.lower()


def test_an_output_that_cannot_be_written_is_named_and_the_run_exits_3(cli, db, tmp_path):
    # issue 12 point 2: the report still reaches standard output, the lost output is named, exit 3
    (tmp_path / "a-file").write_text("x")
    result = cli("--config", CONFIG, "run", "checks", "--check", "invalid-index", "-o", f"json={tmp_path}/a-file/r.json",
                 env={"CIVICQ_DATABASE_URL": db.url})
    assert result.exit_code == 3 and "a-file" in result.stderr and "was not written" in result.stderr
    assert "Traceback" not in result.output and "unexpected" not in result.output
    assert "== indexes" in result.stdout  # the report itself was printed


def test_a_bad_lock_wait_timeout_is_bad_input(cli, db, tmp_path):
    result = both(cli, db.url, "backup", "create", "--lock-wait-timeout", "abc", cwd=tmp_path)
    assert result.exit_code == 2


def test_a_yaml_tag_in_a_param_is_bad_input(cli, db):
    result = both(cli, db.url, "run", "checks", "--check", "table-dead-tuples",
                  "--param", "table-dead-tuples.min_live_tuples=!!python/object/apply:os.system [id]")
    assert result.exit_code == 2 and "--param table-dead-tuples.min_live_tuples" in result.stderr


@pytest.fixture
def monitor_url(db):
    role = f"{db.name}_mon"
    with db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'mon-pass-1' IN ROLE pg_monitor").format(
            sql.Identifier(role)))
        conn.execute("CREATE TABLE secret_stuff (a int)")
    kw = db.conninfo
    yield f"postgresql://{role}:mon-pass-1@{kw['host']}:{kw['port']}/{db.name}"
    with db.connect() as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_monitoring_role_running_backup_gets_a_permission_error(cli, monitor_url, tmp_path):
    result = both(cli, monitor_url, "backup", "create", "--no-globals", cwd=tmp_path)
    assert result.exit_code == 3 and "permission denied" in result.stderr.lower()


def test_a_read_only_database_is_named_as_such(cli, db, tmp_path):
    with db.cluster.admin() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
            sql.Identifier(db.name)))
    result = both(cli, db.url, "db", "migrate", cwd=tmp_path)
    assert result.exit_code == 3 and "read-only" in result.stderr


def test_a_server_killed_mid_command_is_an_execution_error(cli, db, tmp_path):
    # every session of this database is terminated while `db seed` runs its first statements
    import threading
    import time

    def kill():
        time.sleep(1.0)
        with db.cluster.admin() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                         "AND pid <> pg_backend_pid()", (db.name,))

    # a development target: `db seed` refuses production, which a bare CIVICQ_DATABASE_URL is
    config = tmp_path / "civicq-ops.yaml"
    config.write_text("version: 1\ntargets: {t: {url: '${DB_URL}', environment: development}}\ndefault_target: t\n")
    cli("--config", str(config), "db", "migrate", env={"DB_URL": db.url}, cwd=tmp_path)
    killer = threading.Thread(target=kill)
    killer.start()
    result = cli("--config", str(config), "db", "seed", "--scale", "50", env={"DB_URL": db.url}, cwd=tmp_path)
    killer.join()
    # Our own `unexpected <Exception>:` line, not libpq's "closed the connection unexpectedly".
    assert not re.search(r"\bunexpected [A-Z]\w*", result.output) and "Traceback" not in result.output, result.output
    assert result.exit_code in (0, 3), result.output
    assert "error ignored" not in result.stderr, result.stderr  # no psycopg log line beside ours
