"""Notifiers: Alertmanager (API v2), a generic JSON webhook (HMAC-signed), Slack-compatible
incoming webhooks, and email over SMTP. Each turns a batch of alerts into one delivery attempt;
retries, timeouts and dead letters are dispatch.py's job.

Configuration comes from `notifiers:` in civicq-ops.yaml; secrets (URLs, `secret`, `password`)
only through `${ENV}`, registered for redaction as they are read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from civicq_ops.alerts.model import FIRING, RESOLVED, Alert, iso
from civicq_ops.core.errors import ConfigError
from civicq_ops.core.redaction import redact, register_secret, register_url_secrets
from civicq_ops.core.units import parse_duration

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 2
DEFAULT_RESEND_S = 60.0
SIGNATURE_HEADER = "X-Civicq-Signature"
WEBHOOK_SCHEMA_VERSION = "1"


class DeliveryError(Exception):
    """One attempt failed; the message is already redacted."""


@dataclass
class Notifier:
    name: str
    type: str
    url: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    resend_s: float = DEFAULT_RESEND_S
    secret: str | None = None
    generator_url: str | None = None
    options: dict = field(default_factory=dict)

    def payload(self, alerts: list[Alert], now: float) -> object:
        """What one delivery sends (kept as the dead letter when every attempt fails)."""
        if self.type == "alertmanager":
            return [self._am_alert(a, now) for a in alerts]
        if self.type == "slack":
            return {"text": "\n".join(_one_line(a) for a in alerts)}
        if self.type == "email":
            return {"subject": _email_subject(alerts), "body": "\n".join(_one_line(a) for a in alerts)}
        return webhook_body(alerts, now, self)

    def send(self, payload: object, timeout: float) -> None:
        if self.type == "email":
            assert isinstance(payload, dict)  # email_payload() gives a dict
            _send_email(self, payload, timeout)
            return
        url = self.url.rstrip("/") + "/api/v2/alerts" if self.type == "alertmanager" else self.url
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "civicq-ops"}
        if self.secret:
            headers[SIGNATURE_HEADER] = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        _post(url, body, headers, timeout)

    def generator(self, alert: Alert) -> str:
        base = self.generator_url or f"civicq-ops://{socket.gethostname()}/alerts"
        return f"{base.rstrip('/')}/{quote(alert.rule)}?target={quote(alert.target)}"

    def _am_alert(self, a: Alert, now: float) -> dict:
        if a.state == RESOLVED:
            ends = a.resolved_at
        else:
            # As Prometheus does: valid for 4 evaluation or resend intervals, so Alertmanager resolves
            # the alert on its own if civicq-ops stops sending it.
            ends = now + 4 * max(self.resend_s, a.eval_gap)
        return {"labels": a.labels, "annotations": a.annotations, "startsAt": iso(a.fired_at or a.active_since),
                "endsAt": iso(ends), "generatorURL": self.generator(a)}


def webhook_body(alerts: list[Alert], now: float, notifier: Notifier) -> dict:
    """The generic webhook's JSON body; civicq_ops/schemas/webhook.schema.json documents it."""
    return {
        "version": WEBHOOK_SCHEMA_VERSION, "source": "civicq-ops", "sent_at": iso(now),
        "alerts": [{"fingerprint": a.fingerprint, "status": FIRING if a.state == FIRING else RESOLVED,
                    "rule": a.rule, "target": a.target, "check": None if a.check == "*" else a.check,
                    "subject": a.subject, "value": a.value, "labels": a.labels, "annotations": a.annotations,
                    "starts_at": iso(a.fired_at or a.active_since), "ends_at": iso(a.resolved_at),
                    "generator_url": notifier.generator(a)} for a in alerts],
    }


def _one_line(a: Alert) -> str:
    status = "FIRING" if a.state == FIRING else "RESOLVED"
    summary = a.annotations.get("summary") or a.annotations.get("description") or ""
    return f"[{status}] {a.rule} on {a.target} ({a.labels.get('severity', '')}): {summary}".rstrip(": ")


def _email_subject(alerts: list[Alert]) -> str:
    firing = sum(1 for a in alerts if a.state == FIRING)
    names = ", ".join(sorted({a.rule for a in alerts}))
    return f"[civicq-ops] {firing} firing, {len(alerts) - firing} resolved: {names}"


def _post(url: str, body: bytes, headers: dict, timeout: float) -> None:
    # Imported here: urllib.request brings http.client, ssl and email (~60 ms) into every
    # `run checks`, which sends nothing unless an alert fires.
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=max(0.05, timeout)) as response:  # noqa: S310 - http(s) only, checked at load
            response.read(65536)
    except urllib.error.HTTPError as e:
        detail = e.read(300).decode("utf-8", "replace").strip() if e.fp else ""
        raise DeliveryError(redact(f"HTTP {e.code} from {_host(url)}" + (f": {detail}" if detail else ""))) from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise DeliveryError(redact(f"{_host(url)}: {reason}")) from None


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"


def _send_email(n: Notifier, payload: dict, timeout: float) -> None:
    import smtplib
    import ssl
    from email.message import EmailMessage

    parts = urlsplit(n.url)
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = payload["subject"], n.options["from"], ", ".join(n.options["to"])
    msg.set_content(payload["body"])
    try:
        with smtplib.SMTP(parts.hostname or "localhost", parts.port or 25, timeout=max(0.05, timeout)) as smtp:
            if n.options.get("starttls", True):
                context = ssl.create_default_context()
                if n.options.get("cafile"):
                    context.load_verify_locations(n.options["cafile"])
                smtp.starttls(context=context)
            if n.options.get("username"):
                smtp.login(n.options["username"], n.options.get("password") or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
        raise DeliveryError(redact(f"smtp://{parts.hostname}:{parts.port or 25}: {e}")) from None


def load_notifiers(project) -> dict[str, Notifier]:
    """The project's notifiers, with ${ENV} interpolated and secrets registered for redaction."""
    out = {}
    for name, spec in project.section("notifiers").items():
        def val(key: str, name=name, spec=spec):
            raw = spec.get(key)
            return project.interpolate(raw, ("notifiers", name, key)) if isinstance(raw, str) else raw

        url = val("url")
        register_url_secrets(url)
        kind = spec["type"]
        scheme = urlsplit(url).scheme
        wanted = ("smtp",) if kind == "email" else ("http", "https")
        if scheme not in wanted:
            line, col = project.document.position(("notifiers", name, "url"))
            raise ConfigError(f"{project.path}:{line}:{col}: notifier '{name}' ({kind}) needs a "
                              f"{' or '.join(s + '://' for s in wanted)} URL, not {redact(url)!r}")
        if kind == "email" and not (spec.get("from") and spec.get("to")):
            line, col = project.document.position(("notifiers", name))
            raise ConfigError(f"{project.path}:{line}:{col}: email notifier '{name}' needs from: and to:")
        secret, password = val("secret"), val("password")
        register_secret(secret)
        register_secret(password)
        out[name] = Notifier(
            name=name, type=kind, url=url, secret=secret, generator_url=val("generator_url"),
            timeout_s=parse_duration(spec["timeout"]) if "timeout" in spec else DEFAULT_TIMEOUT_S,
            retries=int(spec.get("retries", DEFAULT_RETRIES)),
            resend_s=parse_duration(spec["resend_interval"]) if "resend_interval" in spec else DEFAULT_RESEND_S,
            options={"from": val("from"), "to": spec.get("to") or [], "starttls": spec.get("starttls", True),
                     "username": val("username"), "password": password, "cafile": val("cafile")})
    return out

