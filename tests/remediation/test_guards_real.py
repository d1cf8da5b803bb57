"""Guards that ask the database, on real PostgreSQL 15 and 18: old snapshots before a concurrent
build (12.17), a VACUUM that cannot fix table bloat (12.18), a failed re-check (12.7), a failed
connection mid-apply (10.7), a check that errors while planning (12.5), REFRESH ... CONCURRENTLY
decided by the database and the measured refresh time (10.5)."""

from __future__ import annotations

import json
import time

from psycopg import sql

from civicq_ops.config import load_project
from civicq_ops.remediation.apply import apply_plan
from civicq_ops.state.store import open_store
from tests.fixtures.pg import failed_concurrent_index
from tests.remediation.support import ALWAYS, bloat, make_project, plan_for

REINDEX = f"""version: 1
policies:
  - id: rebuild-invalid-indexes
    when: {{check: invalid-index}}
    action: reindex
    window: {json.dumps(ALWAYS)}
    limits: {{lock_timeout: 1s, retries: 0}}
"""


def test_a_concurrent_rebuild_is_not_planned_or_run_while_an_old_snapshot_is_open(tmp_path, db):
    failed_concurrent_index(db, "dup", "dup_a_key")
    project, target = make_project(tmp_path, db.url, REINDEX)
    early, catalog = plan_for(project, target, ["invalid-index"])  # made before the long transaction
    assert [a.object_name for a in early.actions] == ["public.dup_a_key"]
    reader = db.connect(autocommit=False)
    reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    reader.execute("SELECT count(*) FROM pg_class")  # a snapshot, held open
    try:
        time.sleep(1.3)  # older than the policy's lock_timeout
        later, _ = plan_for(project, target, ["invalid-index"])
        assert later.actions == []
        [blocked] = later.blocked
        assert "waits for every older snapshot" in blocked.reason and "pid" in blocked.reason, blocked.reason
        started = time.monotonic()
        [step] = apply_plan(project, target, catalog, early, open_store(project)).steps
        assert time.monotonic() - started < 5
        assert step.result == "refused" and "older snapshot" in step.detail, step.detail
    finally:
        reader.close()
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%ccnew%'").fetchone()[0] == 0
    assert "waits for every transaction older than itself" in early.actions[0].note  # and the plan says so


VACUUM_BLOAT = f"""version: 1
policies:
  - id: vacuum-bloated-tables
    when: {{check: table-bloat, level: critical}}
    action: vacuum
    window: {json.dumps(ALWAYS)}
"""


def test_vacuum_is_not_proposed_for_bloat_that_vacuum_cannot_give_back(tmp_path, db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE holey (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO holey SELECT g, md5(g::text) || md5(g::text) FROM generate_series(1, 150000) g")
        conn.execute("DELETE FROM holey WHERE id % 5 <> 0")  # 80% free, spread over every page
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")  # the DELETE's dead tuples reach the statistics before VACUUM counts them
        conn.execute("VACUUM ANALYZE holey")  # the dead tuples are gone; the free space stays inside the pages
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.3)
    project, target = make_project(tmp_path, db.url, VACUUM_BLOAT)
    plan, _ = plan_for(project, target, ["table-bloat"])
    assert [a.object_name for a in plan.actions if a.object_name == "public.holey"] == []
    [blocked] = [b for b in plan.blocked if b.object_name == "public.holey"]
    assert blocked.finding["status"] == "critical" and "VACUUM cannot fix this" in blocked.reason, blocked


def test_a_failed_recheck_is_a_failed_step_never_a_cleared_finding(tmp_path, db):
    bloat(db, "held")
    project, target = make_project(tmp_path, db.url)
    plan, catalog = plan_for(project, target, ["table-dead-tuples"])
    plan.actions = [a for a in plan.actions if a.object_name == "public.held"]
    holder = db.connect(autocommit=False)
    holder.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")  # the check cannot read the table's size
    try:
        result = apply_plan(project, target, catalog, plan, open_store(project))
    finally:
        holder.close()
    [step] = result.steps
    assert step.result == "failed" and "re-check" in step.detail and "cleared" not in step.detail, step.detail
    assert result.exit_code == 3
    [record] = open_store(project).audit()
    assert record["result"] == "not-run"  # nothing ran: the step may run again
    again = apply_plan(project, target, catalog, plan, open_store(project))
    assert [s.result for s in again.steps] == ["done"]


def test_a_failed_connection_never_leaves_a_step_running(tmp_path, db):
    bloat(db, "first")
    bloat(db, "second")
    role = f"ops_{db.name}"
    with db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD 'ops-pw'").format(sql.Identifier(role)))
    kw = db.conninfo
    url = f"postgresql://{role}:ops-pw@{kw['host']}:{kw['port']}/{db.name}"
    try:
        project, target = make_project(tmp_path, url)
        plan, catalog = plan_for(project, target, ["table-dead-tuples"])
        plan.actions = [a for a in plan.actions if a.object_name in ("public.first", "public.second")]
        assert len(plan.actions) == 2

        def lock_out(step) -> None:  # after the first step the runner can no longer log in
            with db.connect() as conn:
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))

        result = apply_plan(project, target, catalog, plan, open_store(project), progress=lock_out)
        assert [s.result for s in result.steps] == ["done", "failed"]
        assert "could not connect" in result.steps[1].detail and result.exit_code == 3
        rows = {r["step"]: r["result"] for r in open_store(project).audit()}
        assert rows == {1: "done", 2: "not-run"}  # no claim left "running" forever
        with db.connect() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
        again = apply_plan(project, target, catalog, plan, open_store(project))
        assert [s.result for s in again.steps] == ["skipped", "done"]
        assert again.steps[0].detail == "already taken by another runner"
    finally:
        with db.connect() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
            conn.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s"),
                         (role,))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


FAILING_CHECK = """version: 1
checks:
  - id: broken-dead-tuples
    title: A check that fails on the server
    category: vacuum
    query: SELECT schemaname, relname, (n_dead_tup / (n_live_tup * 0))::float8 AS ratio FROM pg_stat_user_tables
    subject: [schemaname, relname]
    value: ratio
    thresholds: {warning: {gt: 0.1}}
    recommendation: VACUUM it.
    remediation: vacuum
    object: {kind: table, schema: schemaname, name: relname}
"""
FAILING_POLICY = """version: 1
policies:
  - id: vacuum-broken
    when: {check: broken-dead-tuples}
    action: vacuum
  - id: vacuum-dead-tuples
    when: {check: table-dead-tuples, level: critical}
    action: vacuum
"""


def test_plan_with_a_failing_check_exits_3_even_with_detailed_exitcode(tmp_path, db, cli):
    bloat(db, "planned")
    make_project(tmp_path, db.url, FAILING_POLICY, extra_checks=FAILING_CHECK)
    cfg = str(tmp_path / "civicq-ops.yaml")
    planned = cli("--config", cfg, "plan", "--detailed-exitcode")
    assert planned.exit_code == 3, planned.output
    assert "broken-dead-tuples failed" in planned.stdout and "division by zero" in planned.stdout, planned.stdout
    plain = cli("--config", cfg, "plan")
    assert plain.exit_code == 3, plain.output


def test_the_refresh_log_gets_the_measured_time(tmp_path, civicq_db):
    with civicq_db.connect() as conn:
        conn.execute("CREATE MATERIALIZED VIEW mv_slow AS SELECT g AS id, length(pg_sleep(0.3)::text) AS z "
                     "FROM generate_series(1, 1) g WITH NO DATA")
        conn.execute("CREATE UNIQUE INDEX ON mv_slow (id)")
    policies = "version: 1\npolicies:\n  - id: refresh\n    when: {check: matview-not-populated}\n    action: refresh_matview\n"
    project, target = make_project(tmp_path, civicq_db.url, policies)
    plan, catalog = plan_for(project, target, ["matview-not-populated"])
    [action] = [a for a in plan.actions if a.object_name == "public.mv_slow"]
    assert action.sql == ['REFRESH MATERIALIZED VIEW "public"."mv_slow"']  # not populated: no CONCURRENTLY
    plan.actions = [action]
    [step] = apply_plan(project, target, catalog, plan, open_store(project)).steps
    assert step.result == "done", step.detail
    with civicq_db.connect() as conn:
        duration, concurrent = conn.execute("SELECT duration_ms, was_concurrent FROM matview_refresh_log "
                                            "WHERE view_name = 'mv_slow'").fetchone()
    assert duration >= 300 and concurrent is False


def test_the_database_says_whether_a_view_can_be_refreshed_concurrently(db):
    from civicq_ops.remediation.facts import DatabaseFacts

    with db.connect() as conn:
        conn.execute("CREATE MATERIALIZED VIEW mv_unique AS SELECT g AS id FROM generate_series(1, 3) g")
        conn.execute("CREATE UNIQUE INDEX ON mv_unique (id)")
        conn.execute("CREATE MATERIALIZED VIEW mv_partial AS SELECT g AS id FROM generate_series(1, 3) g")
        conn.execute("CREATE UNIQUE INDEX ON mv_partial (id) WHERE id > 1")
        conn.execute("CREATE MATERIALIZED VIEW mv_expr AS SELECT g AS id FROM generate_series(1, 3) g")
        conn.execute("CREATE UNIQUE INDEX ON mv_expr ((id + 1))")
        conn.execute("CREATE MATERIALIZED VIEW mv_plain AS SELECT g AS id FROM generate_series(1, 3) g")
        conn.execute("CREATE MATERIALIZED VIEW mv_empty AS SELECT g AS id FROM generate_series(1, 3) g WITH NO DATA")
        conn.execute("CREATE UNIQUE INDEX ON mv_empty (id)")
        facts = DatabaseFacts(conn)
        names = ("mv_unique", "mv_partial", "mv_expr", "mv_plain", "mv_empty")
        assert [facts.can_refresh_concurrently("public", n) for n in names] == [True, False, False, False, False]


def test_vacuum_with_an_empty_table_name_is_invalid_input(tmp_path, db, cli):
    make_project(tmp_path, db.url)
    cfg = str(tmp_path / "civicq-ops.yaml")
    for name in ("", "   ", "public.", "."):
        result = cli("--config", cfg, "vacuum", "--table", name, "--yes")
        assert result.exit_code == 2 and "--table needs a table name" in result.stderr, (name, result.output)
        result = cli("--config", cfg, "analyze", "--table", name, "--yes")
        assert result.exit_code == 2, (name, result.output)
    assert open_store(load_project(tmp_path / "civicq-ops.yaml", env={})).audit() == []
