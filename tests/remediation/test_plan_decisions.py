"""The planner's rules with an injected clock: windows (with time zones and overnight spans),
cooldowns, environments, waivers, modes."""

from __future__ import annotations

from datetime import UTC, datetime

from civicq_ops.catalog.model import Policy, Source
from civicq_ops.config import Target
from civicq_ops.engine.findings import Finding
from civicq_ops.remediation.plan import decide, in_window
from tests.fixtures.pg import shipped_catalog

LA = "America/Los_Angeles"
CATALOG = shipped_catalog()  # the checks declare the objects their remediations act on


def test_window_uses_its_time_zone_and_days():
    window = {"days": ["sat", "sun"], "start": "02:00", "end": "05:00", "timezone": LA}
    assert in_window(window, datetime(2026, 11, 28, 11, 0, tzinfo=UTC))  # Saturday 03:00 in Los Angeles
    assert not in_window(window, datetime(2026, 11, 28, 14, 0, tzinfo=UTC))  # Saturday 06:00 there
    assert not in_window(window, datetime(2026, 11, 27, 11, 0, tzinfo=UTC))  # Friday 03:00 there


def test_overnight_window_belongs_to_the_day_it_starts():
    window = {"days": ["fri"], "start": "22:00", "end": "04:00", "timezone": "UTC"}
    assert in_window(window, datetime(2026, 11, 27, 23, 0, tzinfo=UTC))  # Friday 23:00
    assert in_window(window, datetime(2026, 11, 28, 3, 0, tzinfo=UTC))  # Saturday 03:00, Friday's window
    assert not in_window(window, datetime(2026, 11, 29, 3, 0, tzinfo=UTC))  # Sunday 03:00


def _plan(policy: Policy, finding: Finding, now: datetime, environment: str = "production", last=None, unattended=False):
    target = Target(name="t", url="x", environment=environment)
    return decide([finding], [policy], CATALOG, target, now, last, unattended)


def _finding(**kw) -> Finding:
    return Finding(**{"check": "table-bloat", "category": "bloat", "target": "t",
                      "subject": {"schemaname": "public", "relname": "votes"}, "status": "critical", "value": 0.7,
                      "message": "m", **kw})


POLICY = Policy(id="full", check="table-bloat", action="vacuum_full", source=Source("p.yaml", 1), level="critical",
                window={"days": ["sun"], "start": "02:00", "end": "05:00", "timezone": LA},
                limits={"cooldown": "7d"})


def test_outside_the_window_nothing_is_planned_and_the_reason_says_so():
    actions, blocked = _plan(POLICY, _finding(), datetime(2026, 11, 25, 20, 0, tzinfo=UTC))
    assert actions == [] and "outside the window sun 02:00-05:00 America/Los_Angeles" in blocked[0].reason


def test_inside_the_window_the_action_is_planned_with_its_lock():
    actions, _ = _plan(POLICY, _finding(), datetime(2026, 11, 29, 11, 0, tzinfo=UTC))
    assert [(a.action, a.object_name, a.lock) for a in actions] == [("vacuum_full", "public.votes", "ACCESS EXCLUSIVE")]
    assert actions[0].sql == ['VACUUM (FULL, ANALYZE) "public"."votes"']


def test_cooldown_blocks_a_repeat():
    last = lambda policy, obj: "2026-11-25T00:00:00+00:00"  # noqa: E731
    actions, blocked = _plan(POLICY, _finding(), datetime(2026, 11, 29, 11, 0, tzinfo=UTC), last=last)
    assert actions == [] and blocked[0].reason.startswith("cooldown")


def test_waived_finding_is_not_acted_on():
    f = _finding(waiver={"reason": "archived", "owner": "dba", "expires": "2027-01-01"})
    _, blocked = _plan(POLICY, f, datetime(2026, 11, 29, 11, 0, tzinfo=UTC))
    assert blocked[0].reason.startswith("waived: archived")


def test_plan_mode_policies_do_not_run_unattended():
    policy = Policy(id="v", check="table-bloat", action="vacuum", source=Source("p.yaml", 1))
    actions, blocked = _plan(policy, _finding(), datetime(2026, 11, 29, 11, 0, tzinfo=UTC), unattended=True)
    assert actions == [] and blocked[0].reason.startswith("mode: plan")
    actions, _ = _plan(policy, _finding(), datetime(2026, 11, 29, 11, 0, tzinfo=UTC))
    assert len(actions) == 1


def test_reindex_concurrently_is_refused_on_14_0_to_14_3():
    policy = Policy(id="r", check="index-bloat", action="reindex", source=Source("p.yaml", 1))
    f = _finding(check="index-bloat", subject={"schemaname": "public", "indexname": "votes_pkey"})
    target = Target(name="t", url="x")
    actions, blocked = decide([f], [policy], CATALOG, target, datetime.now(UTC), server_version=(14, 2))
    assert actions == [] and "14.0 to 14.3" in blocked[0].reason
    actions, _ = decide([f], [policy], CATALOG, target, datetime.now(UTC), server_version=(14, 4))
    assert actions[0].sql == ['REINDEX INDEX CONCURRENTLY "public"."votes_pkey"']
