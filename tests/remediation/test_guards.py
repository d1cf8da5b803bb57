"""Each planner guard alone, offline: a proposal in, None or the reason out (issue 10.6)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from civicq_ops.catalog.model import Policy, Source
from civicq_ops.config import Target
from civicq_ops.engine.findings import Finding
from civicq_ops.remediation import guards
from civicq_ops.remediation.facts import StaticFacts, TableActivity
from civicq_ops.remediation.guards import GUARDS, Proposal, object_of
from tests.fixtures.pg import shipped_catalog

CATALOG = shipped_catalog()
NOW = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)  # a Sunday


def proposal(action: str = "vacuum", check: str = "table-dead-tuples", subject=None, evidence=None, facts=None,
             environment: str = "staging", **policy) -> Proposal:
    subject = subject if subject is not None else {"schemaname": "public", "relname": "votes"}
    f = Finding(check=check, category="x", target="t", subject=subject, status="critical", value=0.5,
                evidence=evidence or {})
    pol = Policy(id="p", check=check, action=action, source=Source("p.yaml", 1), **policy)
    c = CATALOG.checks[check]
    obj, why = object_of(c.object, f)
    return Proposal(finding=f, policy=pol, check=c, target=Target(name="t", url="x", environment=environment), now=NOW,
                    obj=obj, object_error=why, facts=facts or StaticFacts())


def test_every_guard_lets_a_plain_proposal_through():
    p = proposal()
    assert [g.__name__ for g in GUARDS if g(p)] == []


def test_object_names_come_from_the_checks_declaration():
    assert proposal().obj == {"schema": "public", "name": "votes"}
    p = proposal("terminate_backend", "blocking-sessions", {"blocked_pid": 7}, {"head_pid": 42})
    assert p.obj == {"pid": 42}  # the head of the chain, as declared: never the blocked session
    assert proposal("vacuum", "database-xid-age", {"datname": "civicq"}).obj == {"database": "civicq"}
    missing = proposal("terminate_backend", "blocking-sessions", {"blocked_pid": 7}, {})
    assert "no backend pid in column head_pid" in guards.guard_object(missing)


def test_guard_object_refuses_an_action_on_the_wrong_kind():
    assert "reindex works on index, not on a table" in guards.guard_object(proposal("reindex"))
    no_decl = proposal()
    no_decl.check = None
    no_decl.obj, no_decl.object_error = object_of(None, no_decl.finding)
    assert "declares no object" in guards.guard_object(no_decl)


def test_guard_waiver():
    p = proposal()
    p.finding.waiver = {"reason": "archived", "owner": "dba", "expires": "2027-01-01"}
    assert guards.guard_waiver(p).startswith("waived: archived")


def test_guard_environment():
    assert guards.guard_environment(proposal(environments=["development"])) == \
        "environment staging is not in development"
    assert guards.guard_environment(proposal(environments=["staging"])) is None


def test_guard_mode():
    p = proposal()
    p.unattended = True
    assert guards.guard_mode(p).startswith("mode: plan")
    assert guards.guard_mode(proposal(mode="enforce")) is None


def test_guard_window():
    assert guards.guard_window(proposal(window={"days": ["sun"], "start": "10:00", "end": "12:00"})) is None
    assert "outside the window" in guards.guard_window(proposal(window={"days": ["mon"], "start": "10:00", "end": "12:00"}))


def test_guard_cooldown():
    p = proposal(limits={"cooldown": "7d"})
    p.last_action = lambda policy, obj: "2026-11-25T00:00:00+00:00"
    assert guards.guard_cooldown(p).startswith("cooldown: p acted on public.votes")
    p.last_action = lambda policy, obj: "2026-11-01T00:00:00+00:00"
    assert guards.guard_cooldown(p) is None


def test_guard_size_reads_the_declared_size_column():
    big = proposal(evidence={"total_bytes": 10 * 2**30}, limits={"max_relation_size": "1GB"})
    assert "larger than max_relation_size 1GB" in guards.guard_size(big)
    # real_size is not table-dead-tuples' size column: no guessing among similar names
    assert guards.guard_size(proposal(evidence={"real_size": 10 * 2**30}, limits={"max_relation_size": "1GB"})) is None


def test_guard_per_run():
    p = proposal(limits={"max_actions_per_run": 2})
    p.planned_for_policy = 2
    assert guards.guard_per_run(p) == "max_actions_per_run 2 reached for p"


def test_guard_options():
    assert "has no option sql" in guards.guard_options(proposal(options={"sql": "DROP TABLE users"}))


def test_guard_same_database():
    p = proposal("vacuum", "database-xid-age", {"datname": "other"}, facts=StaticFacts(database="civicq"))
    assert "runs in the connected database civicq, not other" in guards.guard_same_database(p)


def test_guard_old_snapshots():
    facts = StaticFacts(snapshots=["pid 7 (app, api, idle in transaction) has held a snapshot for 40s"])
    p = proposal("reindex", "invalid-index", {"schemaname": "public", "indexname": "i"}, facts=facts)
    assert "waits for every older snapshot, and pid 7" in guards.guard_old_snapshots(p)
    assert guards.guard_old_snapshots(proposal("reindex", "invalid-index", {"schemaname": "public", "indexname": "i"},
                                               facts=facts, options={"concurrently": False})) is None
    assert guards.guard_old_snapshots(proposal(facts=facts)) is None  # VACUUM is not a concurrent build


@pytest.mark.parametrize(("activity", "options", "blocked"), [
    (TableActivity(0, True), {}, True),  # nothing VACUUM can remove
    (TableActivity(5, True), {}, False),
    (TableActivity(0, False), {}, False),  # never vacuumed: VACUUM sets the visibility map
    (TableActivity(0, True), {"freeze": True}, False),  # FREEZE has work to do
])
def test_guard_vacuum_can_help(activity, options, blocked):
    facts = StaticFacts(tables={("public", "votes"): activity})
    reason = guards.guard_vacuum_can_help(proposal(check="table-bloat", facts=facts, options=options))
    assert (reason is not None) == blocked and (not blocked or "VACUUM cannot fix this" in reason)
