"""Receivers that are down, slow, failing or answering garbage: bounded retries inside the timeout,
a dead letter in the state store, the run goes on; bad alert YAML is exit 2 with file:line."""

from __future__ import annotations

import json
import time

import jsonschema
import pytest

from civicq_ops.alerts.dispatch import deliver, dispatch
from civicq_ops.alerts.model import FIRING, Alert
from civicq_ops.alerts.notifiers import Notifier, webhook_body
from civicq_ops.catalog.structure import load_schema
from civicq_ops.state.alert_tables import dead_letters, record_dead_letter
from civicq_ops.state.store import StateStore
from tests.alerts.conftest import free_port


def _alert(now: float) -> Alert:
    return Alert(rule="X", target="db", check="c", subject={"pid": 1}, state=FIRING, active_since=now,
                 last_active=now, fired_at=now, labels={"alertname": "X", "severity": "warning"})


@pytest.mark.parametrize("mode", ["500", "garbage-status", "close", "slow", "down"])
def test_a_failing_receiver_is_retried_within_its_timeout_then_dead_lettered(tmp_path, receiver, mode):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    url = receiver.url if mode != "down" else f"http://127.0.0.1:{free_port()}/hook"
    receiver.mode, receiver.delay_s = ("ok", 3.0) if mode == "slow" else (mode, 0.0)
    n = Notifier(name="hook", type="webhook", url=url, timeout_s=1.0, retries=2)
    now = time.time()
    started = time.monotonic()
    result = deliver(n, [_alert(now)], now, dead_letter=lambda *a: record_dead_letter(store, *a))
    elapsed = time.monotonic() - started
    assert not result.ok and result.error
    assert elapsed < 1.6, elapsed  # the timeout bounds the whole delivery, retries included
    if mode in ("500", "garbage-status", "close"):
        assert len(receiver.requests) == result.attempts == 3  # bounded: 1 + retries
    letters = dead_letters(store)
    assert len(letters) == 1 and letters[0]["notifier"] == "hook"
    assert letters[0]["payload"]["alerts"][0]["rule"] == "X"
    assert "Traceback" not in letters[0]["error"]


def test_a_dead_notifier_does_not_hold_up_a_live_one(receiver):
    now = time.time()
    dead = Notifier(name="dead", type="alertmanager", url=f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    live = Notifier(name="live", type="webhook", url=receiver.url, timeout_s=2)
    alert = _alert(now)
    results = {d.notifier: d for d in dispatch([alert], {"dead": dead, "live": live}, now)}
    assert results["live"].ok and not results["dead"].ok
    assert alert.sent == {"live": now}  # the dead one will be tried again at the next run
    assert len(receiver.requests) == 1


def test_webhook_body_follows_its_shipped_schema(receiver):
    now = time.time()
    n = Notifier(name="hook", type="webhook", url=receiver.url)
    body = webhook_body([_alert(now)], now, n)
    jsonschema.validate(body, load_schema("webhook"))
    bad = json.loads(json.dumps(body))
    bad["alerts"][0]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, load_schema("webhook"))


def test_run_checks_goes_on_when_the_receiver_is_down(db, alert_project, cli):
    rule = "  - {name: Always, when: {check: connection-saturation, value: {gte: 0}}}\n"
    config = alert_project(db.url, f"  hook: {{type: webhook, url: \"http://127.0.0.1:{free_port()}/x\", timeout: 1s}}\n",
                           rule)
    started = time.monotonic()
    result = cli("--config", str(config), "run", "checks", "--check", "connection-saturation")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 15
    assert "Traceback" not in result.output
    assert "notifier 'hook' did not accept 1 alert(s)" in result.output
    store = StateStore(f"sqlite:///{config.parent / 'state.db'}")
    assert [d["notifier"] for d in dead_letters(store)] == ["hook"]


@pytest.mark.parametrize(("rule", "line", "message"), [
    ("  - {name: A, when: {check: connection-saturation}, for: soon}\n", 3, "does not match"),
    ("  - {name: A, when: {check: connection-saturation}, notify: [pager]}\n", 3, "notifies 'pager'"),
    ("  - {name: A, when: {check: connection-saturation}, annotations: {s: '{{ value | pct'}}\n", 3, "template"),
    ("  - {name: A, when: {check: connection-saturation}, labels: {s: '{{ nope }}'}}\n", 3, "'nope'"),
    ("  - {name: A, when: {check: connection-saturation}, expr: 'value >'}\n", 3, "expr"),
    ("  - {name: A, when: {check: connection-saturation}, keep_firing_for: 5 minutes}\n", 3, "does not match"),
], ids=["for-not-a-duration", "unknown-notifier", "bad-annotation-template", "unknown-label-variable", "bad-expr",
        "keep-firing-for-not-a-duration"])
def test_bad_alert_rules_are_validate_errors_with_file_and_line(tmp_path, alert_project, cli, rule, line, message):
    config = alert_project("postgresql://x@127.0.0.1/x", "  am: {type: alertmanager, url: \"http://127.0.0.1:9/\"}\n", rule)
    result = cli("--config", str(config), "validate", str(tmp_path / "policies"))
    assert result.exit_code == 2, result.output
    assert f"alerts.yaml:{line}:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_unknown_notifier_type_is_a_config_error_with_line(alert_project, cli):
    config = alert_project("postgresql://x@127.0.0.1/x", "  pager: {type: pagerduty, url: \"http://x\"}\n")
    result = cli("--config", str(config), "validate")
    assert result.exit_code == 2, result.output
    assert "civicq-ops.yaml:8:" in result.output and "pagerduty" in result.output
