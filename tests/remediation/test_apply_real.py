"""plan and apply against real PostgreSQL 15 and 18: the bloated table is vacuumed and clears,
locks are never waited on for long, plans are refused when stale or foreign, each step runs once,
and sessions that must not be touched are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from civicq_ops.catalog.load import project_catalog
from civicq_ops.core.errors import PlanRefused
from civicq_ops.engine.run import RunOptions, Selection, run_checks
from civicq_ops.facts import default_providers
from civicq_ops.remediation.actions import build
from civicq_ops.remediation.apply import _execute, apply_plan
from civicq_ops.remediation.plan import PlannedAction, read_plan, write_plan
from civicq_ops.state.store import open_store
from tests.fixtures.pg import failed_concurrent_index
from tests.remediation.support import ALWAYS, bloat, make_project, plan_for


def dead_tuples_of(project, target, name: str):
    catalog = project_catalog(project).catalog
    result = run_checks(project, [target], catalog, Selection(checks=["table-dead-tuples"]),
                         RunOptions(facts=default_providers(project)))
    found = [f for f in result.findings if f.subject == {"schemaname": "public", "relname": name}]
    assert found, ([(f.subject, f.status, f.reason) for f in result.findings], result.errors)
    return found[0]


def test_bloated_table_is_vacuumed_by_apply_and_the_finding_clears(tmp_path, db):
    bloat(db)
    project, target = make_project(tmp_path, db.url)
    assert dead_tuples_of(project, target, "bloated").status == "critical"
    plan, catalog = plan_for(project, target, ["table-dead-tuples"])
    [action] = [a for a in plan.actions if a.object_name == "public.bloated"]
    assert action.sql == ['VACUUM (VERBOSE, ANALYZE) "public"."bloated"'] and action.lock == "SHARE UPDATE EXCLUSIVE"
    write_plan(plan, tmp_path / "plan.json", project)
    result = apply_plan(project, target, catalog, read_plan(tmp_path / "plan.json", project), open_store(project))
    assert [(s.result, "verified: the finding cleared" in s.detail) for s in result.steps] == [("done", True)]
    assert dead_tuples_of(project, target, "bloated").status == "ok"
    [record] = open_store(project).audit()
    assert record["policy"] == "vacuum-dead-tuples" and record["result"] == "done"
    assert json.loads(record["before"])["status"] == "critical" and json.loads(record["after"])["status"] == "ok"


@pytest.mark.parametrize("action", ["vacuum_full", "reindex"])
def test_lock_contention_times_out_retries_and_blocks_no_reader_for_long(tmp_path, db, action):
    check = "table-dead-tuples" if action == "vacuum_full" else "invalid-index"
    project, target = make_project(tmp_path, db.url, f"""version: 1
policies:
  - id: contended
    when: {{check: {check}}}
    action: {action}
    window: {json.dumps(ALWAYS)}
    limits: {{lock_timeout: 200ms, retries: 2}}
""")
    if action == "vacuum_full":
        bloat(db, "busy")
    else:
        failed_concurrent_index(db, "busy", "busy_a")
        with db.connect() as conn:
            conn.execute("DELETE FROM busy WHERE ctid = (SELECT min(ctid) FROM busy)")
    plan, catalog = plan_for(project, target, [check])
    plan.actions = [a for a in plan.actions if "busy" in a.object_name]
    assert len(plan.actions) == 1
    holder = db.connect(autocommit=False)
    holder.execute("SELECT count(*) FROM busy")  # a lock and a snapshot, then idle in transaction
    waits: list[float] = []
    stop = threading.Event()

    def reader():
        with db.connect() as r:
            while not stop.is_set():
                t0 = time.monotonic()
                r.execute("SELECT count(*) FROM busy")
                waits.append(time.monotonic() - t0)
                time.sleep(0.02)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        started = time.monotonic()
        result = apply_plan(project, target, catalog, plan, open_store(project))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        holder.close()
    [step] = result.steps
    assert step.result == "skipped" and step.detail.startswith("skipped: lock contention") and step.waits == 3
    assert elapsed < 10
    assert max(waits) < 0.2 + 0.5, max(waits)  # nobody queued behind us for longer than the lock_timeout
    with db.connect() as conn:
        leftovers = conn.execute("SELECT relname FROM pg_class WHERE relname LIKE '%ccnew%'").fetchall()
    assert leftovers == []
    assert result.exit_code == 5


def test_two_apply_processes_run_each_step_once(tmp_path, db):
    bloat(db, "one")
    bloat(db, "two")
    project, target = make_project(tmp_path, db.url)
    plan, _ = plan_for(project, target, ["table-dead-tuples"])
    path = tmp_path / "plan.json"
    write_plan(plan, path, project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG", "CI"))}
    cmd = [sys.executable, "-m", "civicq_ops", "--config", str(tmp_path / "civicq-ops.yaml"), "apply", str(path)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    records = open_store(project).audit()
    steps = [(r["plan_id"], r["step"]) for r in records]
    assert len(steps) == len(set(steps)) == len(plan.actions) >= 2
    assert sum(o.count(": done") for o in outputs) == len(plan.actions)
    assert sum(o.count("already taken by another runner") for o in outputs) == len(plan.actions)


def test_stale_expired_and_foreign_plans_are_refused(tmp_path, db, civicq_db):
    bloat(db)
    project, target = make_project(tmp_path, db.url)
    plan, catalog = plan_for(project, target, ["table-dead-tuples"])
    store = open_store(project)
    with pytest.raises(PlanRefused, match="expired"):
        apply_plan(project, target, catalog, plan, store, now=datetime.now(UTC) + timedelta(hours=2))
    foreign = replace(plan, target={**plan.target, "database": civicq_db.name})
    with pytest.raises(PlanRefused, match="made for database"):
        apply_plan(project, target, catalog, foreign, store)
    (tmp_path / "policies" / "maintenance.yaml").write_text(
        (tmp_path / "policies" / "maintenance.yaml").read_text().replace("max_actions_per_run: 5", "max_actions_per_run: 4", 1))
    with pytest.raises(PlanRefused, match="stale"):
        apply_plan(project, target, project_catalog(project).catalog, plan, store)
    assert store.audit() == []


def test_vacuum_by_a_role_without_privilege_is_reported_failed(tmp_path, db):
    bloat(db, "owned")
    role = f"weak_{db.name}"
    with db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'weak-pw'")
        conn.execute(f"GRANT CONNECT ON DATABASE {db.name} TO {role}")
    kw = db.conninfo
    url = f"postgresql://{role}:weak-pw@{kw['host']}:{kw['port']}/{db.name}"
    try:
        project, target = make_project(tmp_path, url)
        plan, catalog = plan_for(project, target, ["table-dead-tuples"])
        finding = dead_tuples_of(project, target, "owned")
        assert finding.status == "critical", (finding.status, finding.reason, finding.value)
        plan.actions = [a for a in plan.actions if a.object_name == "public.owned"]
        [step] = apply_plan(project, target, catalog, plan, open_store(project)).steps
        assert step.result == "failed" and "the server only warned" in step.detail
    finally:
        with db.connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _terminate(db, pid: int, allowlist: list[str]) -> str:
    options = {"allowlist": allowlist, "states": ["idle in transaction"]}
    action = PlannedAction(step=1, policy="p", action="terminate_backend", mode="plan", object={"pid": pid},
                           object_name=f"pid {pid}", sql=[], lock="none", in_transaction=True, options=options,
                           limits={}, finding={"check": "idle-in-transaction"})
    with db.connect() as conn:
        result, detail, _ = _execute(conn, action, build("terminate_backend", {"pid": pid}, options), [], None, None)
    return result


def test_terminate_backend_never_touches_superusers_allowlisted_apps_or_civicq_ops(db):
    role = f"app_{db.name}"
    with db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-pw'")
        conn.execute(f"GRANT CONNECT ON DATABASE {db.name} TO {role}")
    kw = db.conninfo

    def session(app: str, superuser: bool = False) -> psycopg.Connection:
        args = dict(kw) if superuser else {**kw, "user": role, "password": "app-pw"}
        conn = psycopg.connect(autocommit=False, application_name=app, **args)
        conn.execute("SELECT 1")
        return conn

    sessions = {"superuser": session("api", superuser=True), "allowlisted": session("payments-worker"),
                "runner": session("civicq-ops apply"), "victim": session("api")}
    time.sleep(0.2)
    try:
        results = {name: _terminate(db, s.info.backend_pid, ["payments"]) for name, s in sessions.items()}
        assert results == {"superuser": "skipped", "allowlisted": "skipped", "runner": "skipped", "victim": "done"}
        time.sleep(0.2)
        with pytest.raises(psycopg.OperationalError):
            sessions["victim"].execute("SELECT 1")
        sessions["allowlisted"].execute("SELECT 1")  # still alive
    finally:
        for s in sessions.values():
            s.close()
        with db.connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_manual_vacuum_and_vacuum_auto_go_through_apply(tmp_path, db, cli):
    bloat(db, "manual")
    project, _ = make_project(tmp_path, db.url)
    cfg = str(tmp_path / "civicq-ops.yaml")
    candidates = cli("--config", cfg, "vacuum-candidates")
    assert candidates.exit_code == 0 and 'VACUUM (VERBOSE, ANALYZE) "public"."manual"' in candidates.stdout
    auto = cli("--config", cfg, "vacuum-auto", "--yes")
    assert auto.exit_code == 0 and "vacuum public.manual: done" in auto.stdout
    full = cli("--config", cfg, "vacuum", "--table", "public.manual", "--full", "--yes")
    assert full.exit_code == 0 and "vacuum_full public.manual: done" in full.stdout
    refused = cli("--config", cfg, "vacuum", "--full", "--yes")
    assert refused.exit_code == 2 and "VACUUM FULL of a whole database is refused" in refused.stderr
    policies = [r["policy"] for r in open_store(project).audit()]
    assert policies[0] == "manual-request" and policies[1].startswith("builtin-vacuum-")


def test_plan_detailed_exitcode_and_apply_without_plan_in_ci(tmp_path, db, cli):
    bloat(db, "exitcodes")
    make_project(tmp_path, db.url)
    cfg = str(tmp_path / "civicq-ops.yaml")
    planned = cli("--config", cfg, "plan", "-o", str(tmp_path / "p.json"), "--detailed-exitcode")
    assert planned.exit_code == 4 and "vacuum public.exitcodes" in planned.stdout
    ci = cli("--config", cfg, "apply", env={"CI": "true"})
    assert ci.exit_code == 5 and "refused in CI" in ci.stderr


def test_a_postgresql_state_store_is_shared_by_runners(db):
    from civicq_ops.state.store import StateStore

    first, second = StateStore(db.url), StateStore(db.url)  # two runners, one shared store
    assert first.claim("plan1", 1, "t", "p", "vacuum", "public.votes", "VACUUM votes", "SHARE UPDATE EXCLUSIVE", "a")
    assert not second.claim("plan1", 1, "t", "p", "vacuum", "public.votes", "VACUUM votes", "SHARE UPDATE EXCLUSIVE", "b")
    first.finish("plan1", 1, "done", "ok", 0, [], {"status": "critical"}, {"status": "ok"})
    assert second.last_action("t", "p", "public.votes") is not None
    assert [r["runner"] for r in second.audit()] == ["a"]


def test_history_lists_runs_and_a_findings_values_over_time(tmp_path, db, cli):
    bloat(db, "tracked")
    make_project(tmp_path, db.url)
    cfg = str(tmp_path / "civicq-ops.yaml")
    first = cli("--config", cfg, "run", "checks", "--check", "table-dead-tuples", "--format", "json")
    finding = next(f for f in json.loads(first.stdout)["findings"] if f["subject"] and f["subject"]["relname"] == "tracked")
    with db.connect() as conn:
        conn.execute("VACUUM tracked")
    cli("--config", cfg, "run", "checks", "--check", "table-dead-tuples")
    runs = cli("--config", cfg, "history")
    assert runs.exit_code == 0 and len([ln for ln in runs.stdout.splitlines() if " db " in f" {ln} "]) >= 2
    values = cli("--config", cfg, "history", "--finding", finding["id"])
    statuses = [ln.split()[-2] for ln in values.stdout.splitlines()[2:]]
    assert statuses == ["ok", "critical"]  # newest first: the VACUUM cleared it
