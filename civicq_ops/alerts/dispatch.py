"""Delivery: which alerts each notifier is due to receive, and sending them with a bounded budget.

A firing alert is sent when it starts firing and again every `resend_interval` while it fires (as
Prometheus re-sends to Alertmanager); a resolution is sent once to each notifier that was told it
fired. Each notifier's delivery, retries with backoff included, ends within its `timeout`; the
notifiers run in parallel, so a dead receiver delays a run by at most the longest timeout. When
every attempt fails the payload becomes a dead letter in the state store, and the next run tries again.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from civicq_ops.alerts.model import FIRING, RESOLVED, Alert
from civicq_ops.alerts.notifiers import DeliveryError, Notifier

BACKOFF_S = 0.2


@dataclass
class Delivery:
    notifier: str
    alerts: int
    ok: bool
    attempts: int
    duration_s: float
    error: str | None = None


def due(alerts: list[Alert], notifiers: dict[str, Notifier], now: float) -> dict[str, list[Alert]]:
    """Per notifier, the alerts to send now."""
    out: dict[str, list[Alert]] = {}
    for a in alerts:
        for name in a.notify or list(notifiers):
            n = notifiers.get(name)
            if n is None:
                continue
            last = a.sent.get(name)
            if a.state == FIRING and (last is None or now - last >= n.resend_s - 0.001):
                out.setdefault(name, []).append(a)
            elif a.state == RESOLVED and last is not None and a.resolved_at is not None and last < a.resolved_at:
                out.setdefault(name, []).append(a)
    return out


DeadLetter = Callable[[str, int, str, object], None]


def deliver(notifier: Notifier, batch: list[Alert], now: float, dead_letter: DeadLetter | None = None) -> Delivery:
    """Send one batch with bounded retries inside the notifier's timeout; never raises."""
    start = time.monotonic()
    deadline = start + notifier.timeout_s
    payload = notifier.payload(batch, now)
    attempts, error = 0, None
    while attempts <= notifier.retries:
        attempts += 1
        left = deadline - time.monotonic()
        if left <= 0.01:
            error = error or f"no time left within the {notifier.timeout_s:g}s timeout"
            break
        try:
            notifier.send(payload, left)
            return Delivery(notifier.name, len(batch), True, attempts, round(time.monotonic() - start, 3))
        except DeliveryError as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - a notifier bug must never fail the check run
            error = f"{type(e).__name__}: {e}"
        pause = BACKOFF_S * 2 ** (attempts - 1) * (0.5 + random.random())  # noqa: S311 - jitter, not crypto
        if attempts > notifier.retries or time.monotonic() + pause >= deadline:
            break
        time.sleep(pause)
    if dead_letter is not None:
        try:
            dead_letter(notifier.name, attempts, error or "failed", payload)
        except Exception:  # noqa: BLE001, S110 - a store that cannot record must not fail the run either
            pass
    return Delivery(notifier.name, len(batch), False, attempts, round(time.monotonic() - start, 3), error)


def dispatch(alerts: list[Alert], notifiers: dict[str, Notifier], now: float,
             dead_letter: DeadLetter | None = None) -> list[Delivery]:
    """Send what is due to every notifier in parallel; mark delivered alerts as sent."""
    batches = due(alerts, notifiers, now)
    results: dict[str, Delivery] = {}

    def run(name: str) -> None:
        results[name] = deliver(notifiers[name], batches[name], now, dead_letter)

    threads = [threading.Thread(target=run, args=(name,), daemon=True, name=f"notify-{name}") for name in batches]
    for t in threads:
        t.start()
    limit = time.monotonic() + max((notifiers[n].timeout_s for n in batches), default=0) + 1.0
    for t in threads:
        t.join(max(0.0, limit - time.monotonic()))
    out = []
    for name in batches:
        d = results.get(name) or Delivery(name, len(batches[name]), False, 0, notifiers[name].timeout_s,
                                          "did not finish within its timeout")
        if d.ok:
            for a in batches[name]:
                a.sent[name] = now
        out.append(d)
    return out
