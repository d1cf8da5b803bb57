"""Recording history is best effort (issue 11 point 11, issue 10 point 7): with the state store
read-only, full, or impossible to open, `run checks` still prints and writes its report, says
on stderr that the run was not recorded, and keeps the gate's exit code. Real PostgreSQL 15 and 18."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest
from psycopg import sql

from tests.fixtures.pg import REPO

CHECK = "invalid-index"


def project(tmp_path, state_url: str | None = None):
    state = f"state: {{url: '{state_url}'}}\n" if state_url else ""
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\npaths: {{checks: ['{REPO / 'checks'}']}}\ntargets: {{t: {{url: '${{DB_URL}}'}}}}\n"
        f"default_target: t\n{state}")
    return tmp_path


def run(folder, db, *args, fsize: int | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    env.update(DB_URL=db.url, PYTHONDONTWRITEBYTECODE="1")

    def limit():
        if fsize is not None:  # a full disk: every file this process writes stops at `fsize` bytes
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    proc = subprocess.run([sys.executable, "-m", "civicq_ops", "run", "checks", "--check", CHECK, "--format", "json",
                           *args], capture_output=True, text=True, env=env, cwd=folder, preexec_fn=limit, timeout=120)
    return proc


def assert_report_kept(proc):
    doc = json.loads(proc.stdout)
    assert [f["check"] for f in doc["findings"]] == [CHECK]
    assert proc.returncode == doc["run"]["exit_code"] == 0, proc.stderr
    assert "notice: the run was not recorded in the state store" in proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_read_only_postgresql_state_store_keeps_the_report(db, tmp_path):
    store = f"{db.name}_state"
    with db.cluster.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(store)))
    try:
        url = db.cluster.url(store)
        assert run(project(tmp_path, url), db).returncode == 0  # creates the schema
        with db.cluster.admin() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(store)))
        proc = run(tmp_path, db)
        assert_report_kept(proc)
        assert "read-only transaction" in proc.stderr
    finally:
        with db.cluster.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(store)))


def test_a_full_disk_keeps_the_report_and_records_nothing_half(db, tmp_path):
    folder = project(tmp_path)
    assert run(folder, db).returncode == 0  # the state store exists, with one run
    proc = run(folder, db, fsize=4096)  # less than one WAL frame
    assert_report_kept(proc)
    assert "full" in proc.stderr or "disk" in proc.stderr or "I/O" in proc.stderr, proc.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / ".civicq-ops" / "state.db") as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        # ok findings are kept as their check's aggregate row (issue 14 point 1), the others one row each
        assert conn.execute("SELECT count(DISTINCT run_id) FROM (SELECT run_id FROM findings "
                            "UNION ALL SELECT run_id FROM check_aggregates)").fetchone() == (1,)


@pytest.mark.parametrize("where", ["a-file/state.db", "a-folder"])
def test_a_state_store_that_cannot_be_opened_keeps_the_report(db, tmp_path, where):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    proc = run(project(tmp_path, f"sqlite:///{where}"), db)
    assert_report_kept(proc)
