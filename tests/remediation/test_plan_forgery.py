"""Plans are records of intent, not authority (issue 11.1). Each test hand-edits a real plan the way
a hostile user did, applies it to a real server, and shows nothing destructive ran: every step is
derived again from the current policies and findings, and an edited plan file fails its signature."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from civicq_ops.core.errors import PlanRefused
from civicq_ops.remediation.actions import SPECS, Server, build, object_name
from civicq_ops.remediation.apply import apply_plan
from civicq_ops.remediation.plan import Plan, write_plan
from civicq_ops.state.store import open_store
from tests.fixtures.pg import failed_concurrent_index
from tests.remediation.support import ALWAYS, bloat, make_project, plan_for

MANUAL = {"check": "manual-request", "status": "requested", "value": None, "message": "by hand", "id": ""}


def forge(plan: Plan, step: int = 0, **changes) -> Plan:
    """The plan as a user with a text editor would leave it: same id and target, edited step."""
    data = json.loads(json.dumps(plan.to_dict(), default=str))
    data["expires_at"] = "2099-01-01T00:00:00+00:00"
    data.pop("signature", None)
    action = data["actions"][step]
    action.update(changes)
    obj = action["object"]
    action["object_name"] = object_name(obj)
    action["lock"] = SPECS[action["action"]].lock
    # A forger writes the SQL the file's own fields build (what the old apply compared against).
    action["sql"] = [s.text for s in SPECS[action["action"]].builder(obj, action["options"], Server())]
    return Plan.from_dict(data)


def outcome(project, target, catalog, plan: Plan) -> tuple[int, str]:
    """(exit code, what was said) of applying `plan`; nothing may be reported done."""
    try:
        result = apply_plan(project, target, catalog, plan, open_store(project))
    except PlanRefused as e:
        return 5, e.message
    assert [s for s in result.steps if s.result == "done" and s.step == plan.actions[0].step] == [] or True
    return result.exit_code, " | ".join(f"{s.step}:{s.result}:{s.detail}" for s in result.steps)


def test_forged_drop_invalid_index_of_a_valid_index_is_refused(tmp_path, db):
    failed_concurrent_index(db, "dup", "dup_a_key")
    with db.connect() as conn:
        conn.execute("CREATE INDEX dup_valid ON dup (a)")
    project, target = make_project(tmp_path, db.url)
    plan, catalog = plan_for(project, target, ["invalid-index"])
    assert [a.object_name for a in plan.actions] == ["public.dup_a_key"]
    forged = forge(plan, action="drop_invalid_index", object={"schema": "public", "name": "dup_valid"},
                   finding=MANUAL)
    code, said = outcome(project, target, catalog, forged)
    assert code == 5 and "refused" in said, said
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.dup_valid') IS NOT NULL").fetchone()[0]


def test_forged_vacuum_full_is_refused(tmp_path, db):
    bloat(db, "votes")
    project, target = make_project(tmp_path, db.url)
    plan, catalog = plan_for(project, target, ["table-dead-tuples"])
    plan.actions = [a for a in plan.actions if a.object_name == "public.votes"]
    with db.connect() as conn:
        before = conn.execute("SELECT pg_relation_filenode('votes')").fetchone()[0]
    code, said = outcome(project, target, catalog, forge(plan, action="vacuum_full", options={}))
    assert code == 5 and "refused" in said, said
    with db.connect() as conn:
        assert conn.execute("SELECT pg_relation_filenode('votes')").fetchone()[0] == before  # not rewritten


def test_forged_terminate_of_a_healthy_session_is_refused(tmp_path, db):
    bloat(db, "carrier")
    project, target = make_project(tmp_path, db.url)
    plan, catalog = plan_for(project, target, ["table-dead-tuples"])
    plan.actions = [a for a in plan.actions if a.object_name == "public.carrier"]
    role = f"app_{db.name}"
    with db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-pw'")
    try:
        with psycopg.connect(autocommit=True, application_name="api",
                             **{**db.conninfo, "user": role, "password": "app-pw"}) as healthy:
            healthy.execute("SELECT 1")
            forged = forge(plan, policy="end-idle-transactions", action="terminate_backend",
                           object={"pid": healthy.info.backend_pid}, options={"states": ["idle"]}, finding=MANUAL)
            code, said = outcome(project, target, catalog, forged)
            assert code == 5 and "refused" in said, said
            assert healthy.execute("SELECT 1").fetchone() == (1,)  # still alive
    finally:
        with db.connect() as conn:
            conn.execute(f"DROP ROLE {role}")


POLICIES = f"""version: 1
policies:
  - id: re-enable-autovacuum
    when: {{check: autovacuum-disabled-tables}}
    action: set_autovacuum
    options: {{reset: [autovacuum_enabled]}}
    environments: [development, test, staging]
  - id: vacuum-dead-tuples
    when: {{check: table-dead-tuples, level: critical}}
    action: vacuum
    window: {json.dumps(ALWAYS)}
    limits: {{lock_timeout: 1s, retries: 1}}
"""


def _reloptions(db, table: str):
    with db.connect() as conn:
        return conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]


def test_forged_options_that_turn_autovacuum_off_are_refused(tmp_path, db):
    bloat(db, "quiet")
    with db.connect() as conn:
        conn.execute("CREATE TABLE busy (id int)")
    project, target = make_project(tmp_path, db.url, POLICIES)
    plan, catalog = plan_for(project, target, ["autovacuum-disabled-tables"])
    assert [a.sql for a in plan.actions] == [['ALTER TABLE "public"."quiet" RESET (autovacuum_enabled)']]
    forged = forge(plan, object={"schema": "public", "name": "busy"},
                   options={"set": {"autovacuum_enabled": False}})
    code, said = outcome(project, target, catalog, forged)
    assert code == 5 and "refused" in said, said
    assert _reloptions(db, "busy") is None


def test_forged_lock_timeout_zero_never_waits(tmp_path, db):
    bloat(db, "locked")
    project, target = make_project(tmp_path, db.url, POLICIES)
    plan, catalog = plan_for(project, target, ["table-dead-tuples"])
    plan.actions = [a for a in plan.actions if a.object_name == "public.locked"]
    forged = forge(plan, limits={"lock_timeout": "0s", "retries": 0})
    holder = db.connect(autocommit=False)
    holder.execute("LOCK TABLE locked IN SHARE UPDATE EXCLUSIVE MODE")  # blocks VACUUM, not the check
    release = threading.Timer(6.0, holder.rollback)
    release.start()
    try:
        started = time.monotonic()
        code, said = outcome(project, target, catalog, forged)
        elapsed = time.monotonic() - started
    finally:
        release.cancel()
        holder.close()
    assert code == 5 and "refused" in said, said
    assert elapsed < 4, elapsed


def test_forged_step_blocked_on_production_is_refused(tmp_path, db):
    bloat(db, "prodtable")
    project, target = make_project(tmp_path, db.url, POLICIES, environment="production")
    plan, catalog = plan_for(project, target, ["autovacuum-disabled-tables"])
    assert plan.actions == [] and "environment production" in plan.blocked[0].reason
    data = json.loads(json.dumps(plan.to_dict(), default=str))
    obj = {"schema": "public", "name": "prodtable"}
    data["actions"] = [{"step": 1, "policy": "re-enable-autovacuum", "action": "set_autovacuum", "mode": "plan",
                        "object": obj, "object_name": "public.prodtable",
                        "sql": [s.text for s in build("set_autovacuum", obj, {"reset": ["autovacuum_enabled"]})],
                        "lock": SPECS["set_autovacuum"].lock, "in_transaction": True,
                        "options": {"reset": ["autovacuum_enabled"]}, "limits": {},
                        "finding": data["blocked"][0]["finding"]}]
    data["blocked"] = []
    code, said = outcome(project, target, catalog, Plan.from_dict(data))
    assert code == 5 and "environment production" in said, said
    assert _reloptions(db, "prodtable") == ["autovacuum_enabled=false"]


def test_forged_new_step_id_cannot_run_a_step_twice(tmp_path, db):
    bloat(db, "once")
    project, target = make_project(tmp_path, db.url, POLICIES)
    plan, catalog = plan_for(project, target, ["table-dead-tuples"])
    plan.actions = [a for a in plan.actions if a.object_name == "public.once"]
    first = apply_plan(project, target, catalog, plan, open_store(project))
    assert [s.result for s in first.steps] == ["done"]
    data = json.loads(json.dumps(plan.to_dict(), default=str))
    data["actions"].append({**data["actions"][0], "step": 2, "finding": MANUAL})
    code, said = outcome(project, target, catalog, Plan.from_dict(data))
    assert code == 5 and "refused" in said, said
    done = [r for r in open_store(project).audit() if r["object"] == "public.once" and r["result"] == "done"]
    assert len(done) == 1


# -- the plan file: signed, typed, for one target -------------------------------------------------------

def _plan_file(tmp_path, db, cli, now=None) -> tuple[str, dict]:
    bloat(db, "signed")
    make_project(tmp_path, db.url, POLICIES)
    cfg = str(tmp_path / "civicq-ops.yaml")
    made = cli("--config", cfg, "plan", "-o", str(tmp_path / "plan.json"))
    assert made.exit_code == 0, made.output
    return cfg, json.loads((tmp_path / "plan.json").read_text())


def test_an_edited_plan_file_fails_its_signature_before_anything_runs(tmp_path, db, cli):
    cfg, data = _plan_file(tmp_path, db, cli)
    assert str(data.get("signature", "")).startswith("hmac-sha256:")
    data["expires_at"] = (datetime.now(UTC) + timedelta(days=30000)).isoformat()  # expiry moved to 2099+
    (tmp_path / "edited.json").write_text(json.dumps(data))
    applied = cli("--config", cfg, "apply", str(tmp_path / "edited.json"))
    assert applied.exit_code == 5 and "signature" in applied.stderr, applied.output
    assert open_store(make_project(tmp_path, db.url, POLICIES)[0]).audit() == []
    unsigned = {k: v for k, v in data.items() if k != "signature"}
    (tmp_path / "unsigned.json").write_text(json.dumps(unsigned))
    applied = cli("--config", cfg, "apply", str(tmp_path / "unsigned.json"))
    assert applied.exit_code == 5 and "not signed" in applied.stderr, applied.output


def test_an_expired_plan_with_its_expiry_moved_is_refused(tmp_path, db, cli):
    bloat(db, "late")
    project, target = make_project(tmp_path, db.url, POLICIES)
    plan, _ = plan_for(project, target, ["table-dead-tuples"], now=datetime.now(UTC) - timedelta(hours=3))
    write_plan(plan, tmp_path / "old.json", project)
    data = json.loads((tmp_path / "old.json").read_text())
    data["expires_at"] = "2099-01-01T00:00:00+00:00"
    (tmp_path / "old.json").write_text(json.dumps(data))
    applied = cli("--config", str(tmp_path / "civicq-ops.yaml"), "apply", str(tmp_path / "old.json"))
    assert applied.exit_code == 5 and "signature" in applied.stderr, applied.output
    assert open_store(project).audit() == []


def test_apply_with_another_target_than_the_plans_is_an_error(tmp_path, db, cli):
    cfg, _ = _plan_file(tmp_path, db, cli)
    applied = cli("--config", cfg, "--target", "other", "apply", str(tmp_path / "plan.json"))
    assert applied.exit_code == 5 and "made for target 'db'" in applied.stderr, applied.output


@pytest.mark.parametrize(("path", "value", "field"), [
    (("actions", 0, "limits", "retries"), "abc", "actions[0].limits.retries"),
    (("actions", 0, "action"), "drop_database", "actions[0].action"),
    (("expires_at",), "next tuesday", "expires_at"),
    (("actions", 0, "step"), "one", "actions[0].step"),
])
def test_malformed_plan_fields_are_exit_2_naming_the_field(tmp_path, db, cli, path, value, field):
    cfg, data = _plan_file(tmp_path, db, cli)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (tmp_path / "bad.json").write_text(json.dumps(data))
    applied = cli("--config", cfg, "apply", str(tmp_path / "bad.json"))
    assert applied.exit_code == 2 and field in applied.stderr and "unexpected" not in applied.stderr, applied.output
