"""Offline alert evaluation and `civicq-ops test` for alert rules (no database)."""

from __future__ import annotations

from civicq_ops.alerts.evaluate import Observation, evaluate
from civicq_ops.alerts.model import Alert, fingerprint
from civicq_ops.catalog.model import AlertRule, Source
from civicq_ops.engine.findings import Finding

SRC = Source("x.yaml", 1)


def _finding(status="warning", value=100.0, subject=None, check="idle-in-transaction", target="db"):
    return Finding(check=check, category="connections", target=target, subject=subject or {"pid": 1}, status=status,
                   value=value)


def _eval(rules, findings, now, previous, checks=("idle-in-transaction",), targets=None):
    obs = Observation(findings=findings, targets=targets or {"db": None}, checks=set(checks),
                      units={"idle-in-transaction": "seconds"})
    return evaluate(rules, obs, now, previous)


def test_fingerprint_is_stable_per_rule_target_subject_and_ignores_value_and_labels():
    rule = AlertRule(name="Idle", check="idle-in-transaction", source=SRC, labels={"v": "{{ value }}"})
    first = _eval([rule], [_finding(value=100)], 0, {}).alerts
    second = _eval([rule], [_finding(value=900)], 10, {}).alerts
    assert list(first) == list(second) == [fingerprint("Idle", "db", {"pid": 1})]
    assert first[next(iter(first))].labels["v"] != second[next(iter(second))].labels["v"]
    assert fingerprint("Idle", "db", {"pid": 1}) != fingerprint("Idle", "other", {"pid": 1})


def test_expr_value_and_subject_conditions_select_findings():
    rule = AlertRule(name="Big", check="idle-in-transaction", source=SRC, value={"gte": "5min"},
                     subject={"app": "api"}, expr="level == 'warning' and subject.pid > 10")
    findings = [_finding(value=400, subject={"pid": 11, "app": "api"}),  # all hold
                _finding(value=200, subject={"pid": 12, "app": "api"}),  # value below 5min
                _finding(value=400, subject={"pid": 13, "app": "web"}),  # other subject
                _finding(value=400, subject={"pid": 5, "app": "api"})]  # expr false
    alerts = _eval([rule], findings, 0, {}).alerts
    assert [a.subject["pid"] for a in alerts.values()] == [11]


def test_an_expr_that_fails_at_run_time_is_a_problem_not_a_crash():
    rule = AlertRule(name="Bad", check="idle-in-transaction", source=SRC, expr="value > 'x'")
    ev = _eval([rule], [_finding()], 0, {})
    assert ev.alerts == {} and "expr failed" in ev.problems[0]


def test_state_survives_a_json_round_trip_like_the_store():
    rule = AlertRule(name="Idle", check="idle-in-transaction", source=SRC, for_s=60)
    ev = _eval([rule], [_finding()], 0, {})
    stored = {fp: Alert.from_dict(a.to_dict()) for fp, a in ev.alerts.items()}
    later = _eval([rule], [_finding()], 61, stored)
    assert [a.state for a in later.alerts.values()] == ["firing"]
    assert next(iter(later.alerts.values())).active_since == 0


def test_alert_tests_run_through_the_cli_and_a_wrong_expectation_fails(tmp_path, cli):
    from tests.alerts.conftest import REPO

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.yaml").write_text(
        "version: 1\nalerts:\n  - {name: Idle, when: {check: idle-in-transaction}, for: 1m}\n"
        "  - {name: Untested, when: {check: idle-in-transaction}}\n")
    (tmp_path / "p" / "tests").mkdir()
    (tmp_path / "p" / "tests" / "idle.yaml").write_text(
        "version: 1\nalert: Idle\ncases:\n  fires-too-early:\n    runs:\n"
        "      - {at: 0s, findings: [{subject: {pid: 1}, status: warning}]}\n"
        "    expect:\n      alerts: [{at: 0s, state: firing}]\n")
    result = cli("test", str(REPO / "checks"), str(tmp_path / "p"))
    assert result.exit_code == 1, result.output
    assert "at 0s: expected a firing alert with labels {}; got pending" in result.output
    coverage = next(line for line in result.output.splitlines() if "alert rule(s) without a test" in line)
    assert "Untested" in coverage and "Idle" not in coverage
