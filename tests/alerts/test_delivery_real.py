"""`run checks` with alert rules and notifiers, against real PostgreSQL, a real Alertmanager and
an HTTP receiver: an idle-in-transaction session goes pending, firing, resolved, across separate
`run checks` processes (the alert state lives in the state store)."""

from __future__ import annotations

import hashlib
import hmac
import time

RULE = """\
  - name: TestIdleInTransaction
    when: {check: idle-in-transaction, value: {gte: 0s}}
    for: 2s
    labels: {team: db}
    annotations: {summary: "pid {{ subject.pid }} idle in transaction on {{ target }}"}
"""
RUN = ["run", "checks", "--check", "idle-in-transaction", "--param", "idle-in-transaction.min_idle=0s"]


def _am_alerts(am, name: str) -> list[dict]:
    return [a for a in am.alerts() if a["labels"].get("alertname") == name]


def test_idle_session_goes_pending_firing_resolved_in_alertmanager_and_webhook(
        db, alertmanager, receiver, alert_project, cli):
    notifiers = (f"  am: {{type: alertmanager, url: \"{alertmanager.url}\"}}\n"
                 f"  hook: {{type: webhook, url: \"{receiver.url}\", secret: \"${{HOOK_SECRET}}\"}}\n")
    config = alert_project(db.url, notifiers, RULE)
    env = {"HOOK_SECRET": "s3cret-hmac-key"}
    with db.connect(autocommit=False) as idle:
        idle.execute("SELECT 1")  # opens a transaction and leaves it idle
        pid = idle.info.backend_pid

        first = cli("--config", str(config), *RUN, env=env)
        assert first.exit_code == 0, first.output
        assert _am_alerts(alertmanager, "TestIdleInTransaction") == []  # pending: not sent
        assert receiver.requests == []

        time.sleep(2.2)
        second = cli("--config", str(config), *RUN, env=env)
        assert second.exit_code == 0, second.output
        firing = _am_alerts(alertmanager, "TestIdleInTransaction")
        assert len(firing) == 1, alertmanager.alerts()
        labels = firing[0]["labels"]
        assert labels["pid"] == str(pid) and labels["team"] == "db" and labels["target"] == "db"
        assert labels["check"] == "idle-in-transaction"
        assert firing[0]["annotations"]["summary"] == f"pid {pid} idle in transaction on db"
        assert firing[0]["status"]["state"] == "active"
        assert firing[0]["generatorURL"].endswith("/TestIdleInTransaction?target=db")

        # The webhook got the same alert, signed with HMAC-SHA256 over the body.
        assert len(receiver.requests) == 1
        request = receiver.requests[0]
        expected = "sha256=" + hmac.new(b"s3cret-hmac-key", request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Civicq-Signature"] == expected
        body = receiver.bodies()[0]
        assert [a["status"] for a in body["alerts"]] == ["firing"]
        assert body["alerts"][0]["labels"]["pid"] == str(pid)
        idle.rollback()

    third = cli("--config", str(config), *RUN, env=env)
    assert third.exit_code == 0, third.output
    # Resolved: Alertmanager's API lists only alerts whose endsAt is in the future.
    assert _am_alerts(alertmanager, "TestIdleInTransaction") == []
    assert [a["status"] for a in receiver.bodies()[-1]["alerts"]] == ["resolved"]
    assert receiver.bodies()[-1]["alerts"][0]["ends_at"] is not None
    # The secret never reaches the output.
    assert "s3cret-hmac-key" not in first.output + second.output + third.output
