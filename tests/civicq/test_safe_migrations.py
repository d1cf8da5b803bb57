"""Safe migrations by default (issue 16.2): every migration session runs under lock_timeout and
statement_timeout, a lock timeout is retried a bounded number of times with jittered backoff, and
readers queued behind a waiting migration wait no longer than lock_timeout; `db migrate --sql`
prints the pending range; `db current --check` is a gate; a statement that cannot run in a
transaction, written inside one, is refused by `db lint`."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from civicq_ops.civicq.migration_lint import lint
from civicq_ops.civicq.migrations import migrate, pending_sql
from civicq_ops.config import load_project
from civicq_ops.core.errors import QueryFailed
from tests.civicq.test_migration_lint import RISKY, line_of, make_project, seed_demo

ADD_COLUMN = RISKY.split("def upgrade")[0] + '''def upgrade() -> None:
    op.execute("ALTER TABLE lint_demo ADD COLUMN extra int")


def downgrade() -> None:
    op.execute("ALTER TABLE lint_demo DROP COLUMN extra")
'''
CONCURRENT_IN_TRANSACTION = RISKY.split("def upgrade")[0] + '''def upgrade() -> None:
    op.execute("CREATE INDEX CONCURRENTLY lint_demo_note_idx ON lint_demo (note)")


def downgrade() -> None:
    pass
'''
FAST = "migrations: {lock_timeout: 300ms, retries: 2, retry_backoff: 50ms}\n"


def _revision(database) -> str:
    with database.connect() as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def _wait_for_lock_wait(database, timeout: float = 20.0) -> None:
    """Until a session waits for a lock on lint_demo (the migration's ALTER)."""
    deadline = time.monotonic() + timeout
    with database.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE 'ALTER TABLE lint_demo%%'").fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the migration never waited for its lock")


def test_a_migration_blocked_by_another_session_gives_up_after_bounded_retries_and_readers_wait_less_than_lock_timeout(
        tmp_path, civicq_db):
    seed_demo(civicq_db, 100)
    cfg = make_project(tmp_path, civicq_db.url, ADD_COLUMN, FAST)
    with civicq_db.connect(autocommit=False) as holder:
        holder.execute("SELECT 1 FROM lint_demo LIMIT 1")  # ACCESS SHARE until the end of this transaction
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(cfg), "db", "migrate"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_lock_wait(civicq_db)
            first_wait = time.monotonic()
            with civicq_db.connect() as reader:  # queued behind the migration's ACCESS EXCLUSIVE request
                reader.execute("SET statement_timeout = '10s'")
                t0 = time.monotonic()
                assert reader.execute("SELECT count(*) FROM lint_demo").fetchone()[0] == 100
                reader_wait = time.monotonic() - t0
            out, err = proc.communicate(timeout=60)
            waited = time.monotonic() - first_wait
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        elapsed = time.monotonic() - started
    assert proc.returncode == 3, (out, err)
    assert err.count("\n") == 1 and "lock timeout on each of 3 tries (lock_timeout 0.3s)" in err, err
    assert reader_wait < 0.3 + 0.25, reader_wait
    assert 3 * 0.3 - 0.1 <= waited and elapsed < 15, (waited, elapsed)  # three tries of 300 ms, then it stops
    assert _revision(civicq_db) == "0004"


def test_a_lock_released_during_the_backoff_lets_the_retry_succeed(tmp_path, civicq_db):
    seed_demo(civicq_db, 100)
    cfg = make_project(tmp_path, civicq_db.url, ADD_COLUMN, "migrations: {lock_timeout: 200ms, retries: 5, "
                                                            "retry_backoff: 100ms}\n")
    project = load_project(cfg)
    holder = civicq_db.connect(autocommit=False)
    holder.execute("SELECT 1 FROM lint_demo LIMIT 1")
    release = threading.Timer(0.5, holder.rollback)
    release.start()
    try:
        result = migrate(project, project.target())
    finally:
        release.join()
        holder.close()
    assert result.after == "0005" and result.tries > 1


def test_migrations_run_under_the_configured_timeouts(tmp_path, civicq_db):
    seed_demo(civicq_db, 10)
    probe = RISKY.split("def upgrade")[0] + '''def upgrade() -> None:
    op.execute("CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lt, "
               "current_setting('statement_timeout') AS st")


def downgrade() -> None:
    pass
'''
    cfg = make_project(tmp_path, civicq_db.url, probe, "migrations: {lock_timeout: 2s, statement_timeout: 10min}\n")
    project = load_project(cfg)
    migrate(project, project.target())
    with civicq_db.connect() as conn:
        assert conn.execute("SELECT lt, st FROM seen").fetchone() == ("2s", "10min")


def test_migrate_sql_prints_the_pending_range_and_from_base_the_whole_history(tmp_path, civicq_db, cli):
    seed_demo(civicq_db, 10)
    cfg = make_project(tmp_path, civicq_db.url, ADD_COLUMN)
    pending = cli("--config", str(cfg), "db", "migrate", "--sql")
    assert pending.exit_code == 0, pending.output
    assert "Running upgrade 0004 -> 0005" in pending.stdout and "-> 0001" not in pending.stdout
    assert pending.stdout.startswith("SET lock_timeout = '5000ms';\n")  # one terminator, not `;;`
    everything = cli("--config", str(cfg), "db", "migrate", "--sql", "--from", "base")
    assert "Running upgrade  -> 0001" in everything.stdout and "Running upgrade 0004 -> 0005" in everything.stdout
    project = load_project(cfg)
    migrate(project, project.target())
    assert pending_sql(project, project.target()).startswith("-- nothing to upgrade")


def test_current_check_fails_with_pending_migrations_and_passes_at_head(tmp_path, civicq_db, cli):
    seed_demo(civicq_db, 10)
    cfg = make_project(tmp_path, civicq_db.url, ADD_COLUMN)
    behind = cli("--config", str(cfg), "db", "current", "--check")
    assert (behind.exit_code, behind.stdout) == (1, "0004 (pending: 0005)\n"), behind.output
    project = load_project(cfg)
    migrate(project, project.target())
    at_head = cli("--config", str(cfg), "db", "current", "--check")
    assert (at_head.exit_code, at_head.stdout) == (0, "0005 (head)\n"), at_head.output


def test_a_concurrent_index_build_inside_the_migration_transaction_is_refused_by_lint(tmp_path):
    project = load_project(make_project(tmp_path, None, CONCURRENT_IN_TRANSACTION))
    result = lint(project, None, "0005")
    finding = next(f for f in result.findings if f.rule == "needs-autocommit-block")
    assert finding.risk == "high" and finding.line == line_of(CONCURRENT_IN_TRANSACTION, "CONCURRENTLY") and result.failed


def test_the_shipped_concurrent_index_builds_run_in_autocommit_blocks(tmp_path):
    project = load_project(make_project(tmp_path, None))
    result = lint(project, None, "0002")
    assert not [f for f in result.findings if f.rule == "needs-autocommit-block"]


def test_a_failed_statement_is_not_retried(tmp_path, civicq_db):
    seed_demo(civicq_db, 10)
    broken = ADD_COLUMN.replace("ADD COLUMN extra int", "ADD COLUMN extra no_such_type")
    project = load_project(make_project(tmp_path, civicq_db.url, broken, FAST))
    started = time.monotonic()
    with pytest.raises(QueryFailed, match="no_such_type"):
        migrate(project, project.target())
    assert time.monotonic() - started < 5
