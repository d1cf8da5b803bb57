"""Email over SMTP (a local aiosmtpd server requiring STARTTLS and auth, password from ${ENV}) and
a Slack-compatible incoming webhook, through `run checks`."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from tests.alerts.conftest import free_port

aiosmtpd = pytest.importorskip("aiosmtpd", reason="aiosmtpd is a dev dependency: pip install -e '.[dev]'")

RULE = ("  - {name: AlwaysOn, when: {check: connection-saturation, value: {gte: 0}},\n"
        "     annotations: {summary: 'usage {{ value | pct }}'}}\n")


@pytest.fixture
def smtp_server(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            received.append({"from": envelope.mail_from, "to": envelope.rcpt_tos, "data": envelope.content.decode(),
                             "login": session.login_data, "tls": session.ssl is not None})
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"ops" and auth_data.password == b"smtp-pw-42"
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        yield port, cert, received
    finally:
        controller.stop()


def test_email_goes_out_over_starttls_with_auth_from_env(db, alert_project, cli, smtp_server):
    port, cert, received = smtp_server
    notifiers = (f"  mail: {{type: email, url: \"smtp://127.0.0.1:{port}\", from: civicq@example.org, "
                 f"to: [dba@example.org], username: ops, password: \"${{SMTP_PASSWORD}}\", cafile: \"{cert}\"}}\n")
    config = alert_project(db.url, notifiers, RULE)
    result = cli("--config", str(config), "run", "checks", "--check", "connection-saturation",
                 env={"SMTP_PASSWORD": "smtp-pw-42"})
    assert result.exit_code == 0, result.output
    assert len(received) == 1, result.output
    mail = received[0]
    assert mail["tls"] and mail["to"] == ["dba@example.org"]
    assert "[civicq-ops] 1 firing, 0 resolved: AlwaysOn" in mail["data"]
    assert "[FIRING] AlwaysOn on db" in mail["data"]


def test_a_wrong_smtp_password_is_a_redacted_dead_letter(db, alert_project, cli, smtp_server):
    port, cert, received = smtp_server
    notifiers = (f"  mail: {{type: email, url: \"smtp://127.0.0.1:{port}\", from: a@example.org, to: [b@example.org], "
                 f"username: ops, password: \"${{SMTP_PASSWORD}}\", cafile: \"{cert}\", timeout: 3s, retries: 1}}\n")
    config = alert_project(db.url, notifiers, RULE)
    result = cli("--config", str(config), "run", "checks", "--check", "connection-saturation",
                 env={"SMTP_PASSWORD": "not-the-password"})
    assert result.exit_code == 0, result.output
    assert received == []
    assert "notifier 'mail' did not accept 1 alert(s)" in result.output, result.output
    assert "not-the-password" not in result.output and "Traceback" not in result.output


def test_slack_webhook_gets_a_text_line(db, alert_project, cli, receiver):
    config = alert_project(db.url, f"  slack: {{type: slack, url: \"{receiver.url}\"}}\n", RULE)
    result = cli("--config", str(config), "run", "checks", "--check", "connection-saturation")
    assert result.exit_code == 0, result.output
    (body,) = receiver.bodies()
    assert set(body) == {"text"}
    assert body["text"].startswith("[FIRING] AlwaysOn on db (")
    assert "usage " in body["text"]
