"""A fleet target's labels (cluster, city, environment) are carried by its alerts and findings."""

from __future__ import annotations

from civicq_ops.alerts.evaluate import Observation, evaluate
from civicq_ops.alerts.model import FIRING
from civicq_ops.engine.findings import Finding
from civicq_ops.fleet.run import FleetResult, TargetOutcome, down_finding

LABELS = {"cluster": "east", "city": "oakland", "environment": "production"}


def test_alerts_of_a_fleet_target_carry_its_labels():
    obs = Observation(findings=[], targets={"east/oakland": "cannot connect"}, checks=set(),
                      target_labels={"east/oakland": LABELS})
    [alert] = evaluate([], obs, now=1000.0, previous={}).alerts.values()
    assert alert.state == FIRING and alert.labels["alertname"] == "CivicqTargetDown"
    assert {k: alert.labels[k] for k in LABELS} == LABELS


def test_a_label_never_overrides_the_alert_s_own():
    obs = Observation(findings=[], targets={"t": "down"}, checks=set(), target_labels={"t": {"target": "x", "city": "c"}})
    [alert] = evaluate([], obs, now=1000.0, previous={}).alerts.values()
    assert alert.labels["target"] == "t" and alert.labels["city"] == "c"


def test_findings_of_a_fleet_run_carry_their_target_s_labels():
    from datetime import UTC, datetime

    finding = Finding(check="database-size", category="space", target="east/oakland", subject=None, status="warning")
    result = FleetResult("r", datetime.now(UTC), 1.0, "critical",
                         [TargetOutcome("east/oakland", LABELS, [finding]),
                          TargetOutcome("east/fresno", {**LABELS, "city": "fresno"}, [down_finding("east/fresno", "gone")])])
    doc = result.to_dict()
    assert [(f["target"], f["labels"]["city"]) for f in doc["findings"]] == [("east/oakland", "oakland"),
                                                                             ("east/fresno", "fresno")]
    assert doc["worst"] == ["east/fresno", "east/oakland"]
