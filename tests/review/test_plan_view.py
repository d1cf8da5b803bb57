"""Plans a reviewer can read and keep: `plan --format markdown`, `plan show FILE` (signature and
expiry said), `schema plan`, and `plan --ttl` (a plan made on a pull request, applied after merge)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from civicq_ops.catalog.structure import load_schema
from civicq_ops.config import Target, load_project
from civicq_ops.core.errors import ExitCode, InputError, PlanRefused
from civicq_ops.remediation.plan import MAX_PLAN_TTL, PLAN_TTL, Plan, PlannedAction, parse_ttl, write_plan
from civicq_ops.report.plan_view import render_markdown, show_plan
from tests.review.test_diff import CHECKS, POLICIES

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def a_plan(lifetime: timedelta = PLAN_TTL) -> Plan:
    action = PlannedAction(step=1, policy="analyze-rows-high", action="analyze", mode="plan",
                           object={"schema": "public", "name": "b"}, object_name="public.b",
                           sql=['ANALYZE "public"."b"'], lock="SHARE UPDATE EXCLUSIVE", in_transaction=False,
                           options={}, limits={}, finding={"check": "rows-high", "status": "critical",
                                                           "message": "b | 7"})
    return Plan(id="abc123", created_at=NOW.isoformat(), expires_at=(NOW + lifetime).isoformat(),
                target={"name": "env", "system_identifier": "1", "database": "civicq", "server_version": "18.1"},
                config_digest="sha256:x", actions=[action])


@pytest.fixture
def project(tmp_path: Path):
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\n")
    return load_project(tmp_path / "civicq-ops.yaml", env={})


def test_markdown_lists_each_action_with_its_sql_lock_and_reason():
    text = render_markdown(a_plan())
    assert "| 1 | analyze | `public.b` | analyze-rows-high (plan) | SHARE UPDATE EXCLUSIVE (outside a transaction) " \
           "| `rows-high` is critical | `ANALYZE \"public\".\"b\";` |" in text
    assert "valid until 2026-12-01T13:00:00 UTC" in text


def test_show_says_the_signature_holds_and_when_it_expires(project, tmp_path):
    write_plan(a_plan(), tmp_path / "plan.json", project)
    shown = show_plan(tmp_path / "plan.json", project, now=NOW + timedelta(minutes=30))
    assert shown.exit_code == ExitCode.OK
    assert shown.text.splitlines()[:2] == ["signature: valid (signed with this project's plan key)",
                                           "expiry: valid until 2026-12-01T13:00:00+00:00 (0h 30m left)"]
    assert "1. analyze public.b" in shown.text


def test_show_refuses_an_edited_plan_and_an_expired_one(project, tmp_path):
    path = tmp_path / "plan.json"
    write_plan(a_plan(), path, project)
    assert show_plan(path, project, now=NOW + timedelta(hours=2)).text.splitlines()[1].startswith(
        "expiry: EXPIRED at 2026-12-01T13:00:00+00:00")
    assert show_plan(path, project, now=NOW + timedelta(hours=2)).exit_code == ExitCode.APPLY_REFUSED
    data = json.loads(path.read_text())
    data["actions"][0]["sql"] = ["DROP TABLE users"]
    path.write_text(json.dumps(data))
    shown = show_plan(path, project, now=NOW)
    assert shown.exit_code == ExitCode.APPLY_REFUSED
    assert shown.text.startswith("signature: INVALID: ")


def test_show_of_something_else_is_invalid_input(project, tmp_path):
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(InputError, match="not a JSON object"):
        show_plan(tmp_path / "x.json", project)


def test_written_plans_follow_the_shipped_plan_schema(project, tmp_path):
    write_plan(a_plan(), tmp_path / "plan.json", project)
    schema = load_schema("plan")
    jsonschema.Draft202012Validator(schema).validate(json.loads((tmp_path / "plan.json").read_text()))
    assert schema["$defs"] == load_schema("policies")["$defs"]  # limits and actions declared once


@pytest.mark.parametrize(("text", "expected"), [(None, PLAN_TTL), ("3d", timedelta(days=3)), ("30d", MAX_PLAN_TTL),
                                                ("90min", timedelta(minutes=90))])
def test_ttl_accepts_up_to_thirty_days(text, expected):
    assert parse_ttl(text) == expected


@pytest.mark.parametrize(("text", "message"), [("0s", "must be a positive duration"), ("31d", "longer than a plan may live"),
                                               ("soon", "--ttl")])
def test_ttl_refuses_zero_too_long_and_nonsense(text, message):
    with pytest.raises(InputError, match=message):
        parse_ttl(text)


def test_apply_refuses_a_plan_that_claims_more_than_thirty_days(project):
    from civicq_ops.catalog.model import Catalog
    from civicq_ops.remediation.apply import check_plan

    plan = a_plan(MAX_PLAN_TTL + timedelta(days=1))
    with pytest.raises(PlanRefused, match="longer than a plan may live"):
        check_plan(project, Target(name="env", url="postgresql://x@127.0.0.1:1/x"), Catalog(), plan, now=NOW)


def test_a_three_day_plan_made_today_is_applied_and_shown(db, cli, tmp_path):
    with db.connect() as conn:
        conn.execute("CREATE TABLE counts (name text, n int)")
        conn.execute("INSERT INTO counts VALUES ('b', 12)")
        conn.execute("CREATE TABLE b (x int)")
    (tmp_path / "checks").mkdir()
    (tmp_path / "policies").mkdir()
    (tmp_path / "checks" / "rows.yaml").write_text(CHECKS.format(critical=10))
    (tmp_path / "policies" / "p.yaml").write_text(POLICIES)
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\npaths: {checks: [checks], policies: [policies]}\n")
    env = {"CIVICQ_DATABASE_URL": db.url}
    made = cli("plan", "-o", "plan.json", "--ttl", "3d", "--format", "markdown", env=env)
    assert made.exit_code == 0, made.output
    assert "| 1 | analyze | `public.b` |" in made.stdout
    plan = json.loads((tmp_path / "plan.json").read_text())
    lifetime = datetime.fromisoformat(plan["expires_at"]) - datetime.fromisoformat(plan["created_at"])
    assert lifetime == timedelta(days=3)
    shown = cli("plan", "show", "plan.json", env=env)
    assert shown.exit_code == 0 and "signature: valid" in shown.stdout and "(2d 23h left)" in shown.stdout
    applied = cli("apply", "plan.json", env=env)
    assert applied.exit_code == 0, applied.output
    assert "1. analyze public.b: " in applied.stdout
