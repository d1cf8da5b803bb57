"""One evaluation round against the state store: load the alert states, evaluate what a run saw,
deliver what is due, save. Used by `run checks` (cron) and `watch` alike, so `for:` counts the
same way across separate processes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

from civicq_ops.alerts.dispatch import Delivery, dispatch
from civicq_ops.alerts.evaluate import Observation, evaluate
from civicq_ops.alerts.model import RESOLVED, Alert
from civicq_ops.alerts.notifiers import Notifier
from civicq_ops.catalog.model import AlertRule, Catalog
from civicq_ops.state.alert_tables import load_alerts, record_dead_letter, save_alerts
from civicq_ops.state.store import StateStore


@dataclass
class AlertOutcome:
    alerts: list[Alert] = field(default_factory=list)  # every alert alive after this round
    changed: list[Alert] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def notices(self) -> list[dict]:
        """Failed deliveries and rule problems as run notices (shown, never failing the run)."""
        out = [{"code": "alert-delivery", "path": "-", "line": 0,
                "message": f"notifier '{d.notifier}' did not accept {d.alerts} alert(s) after {d.attempts} "
                           f"attempt(s): {d.error} (kept as a dead letter)"} for d in self.deliveries if not d.ok]
        out += [{"code": "alert-rule", "path": "-", "line": 0, "message": p} for p in self.problems]
        return out


def observation_of(result, catalog: Catalog) -> Observation:
    """What an engine RunResult saw, as the evaluator reads it."""
    return Observation(findings=list(result.findings), targets={t.name: t.error for t in result.targets},
                       checks=set(result.checks), units={c.id: c.unit for c in catalog.checks.values()})


def process_observation(rules: list[AlertRule], obs: Observation, store: StateStore,
                        notifiers: dict[str, Notifier], now: float | None = None) -> AlertOutcome:
    now = time.time() if now is None else now
    previous = {fp: Alert.from_dict(d) for fp, d in load_alerts(store).items()}
    ev = evaluate(rules, obs, now, previous)
    alive = list(ev.alerts.values())
    deliveries = dispatch(alive, notifiers, now, dead_letter=partial(record_dead_letter, store))
    removed = list(ev.removed)
    keep = []
    for a in alive:
        if a.state == RESOLVED and a.sent and all(t >= (a.resolved_at or 0) for t in a.sent.values()):
            removed.append(a.fingerprint)  # every notifier that heard it fire has heard it resolve
        else:
            keep.append(a)
    save_alerts(store, [a.to_dict() for a in keep], removed)
    return AlertOutcome(alerts=keep, changed=ev.changed, deliveries=deliveries, problems=ev.problems)


def process_run(result, catalog: Catalog, store: StateStore, notifiers: dict[str, Notifier],
                now: float | None = None, target_labels: dict[str, dict[str, str]] | None = None) -> AlertOutcome:
    """Evaluate the catalogue's alert rules over an engine run and notify (a fleet passes its
    targets' labels, which its alerts then carry)."""
    obs = observation_of(result, catalog)
    obs.target_labels = target_labels or {}
    return process_observation(catalog.alerts, obs, store, notifiers, now)


def load_alerting(project) -> dict[str, Notifier] | None:
    """The project's notifiers, read before a run so a bad one stops it (exit 2); None without any."""
    from civicq_ops.alerts.notifiers import load_notifiers

    return load_notifiers(project) if project.section("notifiers") else None


def notify_run(project, catalog: Catalog, result, notifiers: dict[str, Notifier],
               store: StateStore | None = None) -> AlertOutcome:
    """`run checks`' alert round, on the run's store when the caller has one open; a state store that
    cannot be opened becomes a notice, not a failure."""
    from civicq_ops.core.errors import CivicqError
    from civicq_ops.state.store import open_store

    if store is not None:
        return process_run(result, catalog, store, notifiers)
    try:
        store = open_store(project)
    except (CivicqError, OSError) as e:
        return AlertOutcome(problems=[f"alerts were not evaluated: the state store cannot be opened: {e}"])
    try:
        return process_run(result, catalog, store, notifiers)
    finally:
        store.close()
