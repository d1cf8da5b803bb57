"""Alert evaluation over one run's findings, with Prometheus' semantics.

An alert is active where its rule's condition holds for a finding. A new active alert is pending
until it has been active for `for:`, then firing; when it stops being active a pending alert is
dropped and a firing one resolves (after `keep_firing_for:`, if set). Only what was evaluated in
this run can change: an alert whose check did not run (another interval under `watch`), errored,
or whose target was down keeps its state, so a flapping connection never resolves real alerts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from civicq_ops.alerts.model import BUILTIN_RULES, CHECK_FAILING, FIRING, PENDING, RESOLVED, TARGET_DOWN, Alert, iso
from civicq_ops.catalog.model import AlertRule
from civicq_ops.core.errors import TemplateError
from civicq_ops.core.thresholds import SEVERITY, Condition
from civicq_ops.engine.findings import Finding

# Resolved alerts are kept this long (as Prometheus does) so their resolution can still be delivered.
RESOLVED_RETENTION_S = 15 * 60
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


@dataclass
class Observation:
    """What one run saw: findings, which targets were attempted (and why any failed), which checks ran."""

    findings: list[Finding]
    targets: dict[str, str | None]  # target -> error message, or None when reachable
    checks: set[str]  # the checks this run selected
    units: dict[str, str | None] = field(default_factory=dict)  # check -> unit, for `when.value`
    target_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # a fleet's labels (cluster, city, ...)


@dataclass
class Evaluation:
    alerts: dict[str, Alert]  # every alert alive after this evaluation, by fingerprint
    changed: list[Alert] = field(default_factory=list)  # new alerts and state changes
    removed: list[str] = field(default_factory=list)  # fingerprints to forget
    problems: list[str] = field(default_factory=list)  # templates or expressions that failed at run time


def evaluate(rules: Iterable[AlertRule], obs: Observation, now: float, previous: dict[str, Alert]) -> Evaluation:
    """The next alert states from `previous` and what this run observed at `now`."""
    rules = list(rules)
    by_rule = {r.name: r for r in rules} | BUILTIN_RULES
    problems: list[str] = []
    active: dict[str, Alert] = {}
    reachable = {t for t, err in obs.targets.items() if err is None}
    failed_checks = {(f.target, f.check) for f in obs.findings if f.status == "error"}

    for target, error in obs.targets.items():
        if error is not None:
            _activate(active, BUILTIN_RULES[TARGET_DOWN], target, "*", None,
                      {"message": error, "status": "critical"}, None, "critical", now, problems)
    for f in obs.findings:
        if f.target not in reachable or f.waived:
            continue
        if f.status == "error":
            _activate(active, BUILTIN_RULES[CHECK_FAILING], f.target, f.check, {"check": f.check},
                      _finding_ctx(f), None, "warning", now, problems)
            continue
        for rule in rules:
            if rule.check == f.check and _matches(rule, f, obs.units.get(f.check), problems):
                _activate(active, rule, f.target, f.check, f.subject, _finding_ctx(f), f.value, f.status, now, problems)

    for alert in active.values():  # a fleet target's labels, under the alert's own
        for key, value in obs.target_labels.get(alert.target, {}).items():
            alert.labels.setdefault(key, value)

    def in_scope(alert: Alert) -> bool:
        if alert.rule == TARGET_DOWN:
            return alert.target in obs.targets
        if alert.target not in reachable:
            return False
        if alert.rule == CHECK_FAILING:
            return (alert.subject or {}).get("check") in obs.checks
        return alert.check in obs.checks and (alert.target, alert.check) not in failed_checks

    out = Evaluation(alerts={}, problems=problems)
    for fp, new in active.items():
        old = previous.get(fp)
        rule = by_rule[new.rule]
        was = None if old is None or old.state == RESOLVED else old.state
        if was is None or old is None:
            alert = new
        else:
            alert = old
            alert.last_active, alert.value, alert.cleared_at = now, new.value, None
            alert.labels, alert.annotations, alert.notify = new.labels, new.annotations, new.notify
        if alert.state == PENDING and now - alert.active_since >= rule.for_s:
            alert.state, alert.fired_at = FIRING, now
        _stamp(alert, now)
        out.alerts[fp] = alert
        if alert.state != was:
            out.changed.append(alert)
    for fp, old in previous.items():
        if fp in active:
            continue
        known = by_rule.get(old.rule)
        if old.state == RESOLVED:
            if now - (old.resolved_at or now) > RESOLVED_RETENTION_S:
                out.removed.append(fp)
            else:
                out.alerts[fp] = old
            continue
        if not (in_scope(old) or known is None):
            out.alerts[fp] = old
            continue
        if old.state == PENDING:
            out.removed.append(fp)
            continue
        keep = known.keep_firing_for_s if known else 0.0
        if keep:
            # As Prometheus: the keep_firing_for clock starts at the first evaluation that found it clear.
            old.cleared_at = now if old.cleared_at is None else old.cleared_at
            if now - old.cleared_at < keep:
                _stamp(old, now)
                out.alerts[fp] = old
                continue
        old.state, old.resolved_at = RESOLVED, now
        _stamp(old, now)
        out.alerts[fp] = old
        out.changed.append(old)
    return out


def _stamp(alert: Alert, now: float) -> None:
    if alert.last_eval is not None and now > alert.last_eval:
        alert.eval_gap = now - alert.last_eval
    alert.last_eval = now


def _finding_ctx(f: Finding) -> dict:
    return {"message": f.message, "recommendation": f.recommendation, "status": f.status, "unit": f.unit,
            "title": f.title, "id": f.id, "reason": f.reason}


def _matches(rule: AlertRule, f: Finding, unit: str | None, problems: list[str]) -> bool:
    if f.status in ("skipped", "error"):
        return False
    if rule.level is not None:
        if SEVERITY[f.status] < SEVERITY[rule.level]:
            return False
    elif rule.value is None and rule.expr is None and f.status not in ("warning", "critical"):
        return False
    if rule.subject and any(str((f.subject or {}).get(k)) != str(v) for k, v in rule.subject.items()):
        return False
    if rule.value is not None:
        try:
            if f.value is None or not _condition(rule.value, unit).matches(float(f.value)):
                return False
        except (TypeError, ValueError):
            return False
    if rule.expr is not None:
        try:
            return bool(_expression(rule.expr)(**_context(f.target, f.check, f.subject, f.value, f.status,
                                                          _finding_ctx(f), {})))
        except Exception as e:  # noqa: BLE001 - a sandbox or type error in a rule is reported, not raised
            problems.append(f"alert {rule.name}: expr failed: {e}")
            return False
    return True


def _condition(spec: dict, unit: str | None) -> Condition:
    key = (json.dumps(spec, sort_keys=True, default=str), unit)
    if key not in _conditions:
        _conditions[key] = Condition.parse(spec, unit)
    return _conditions[key]


_conditions: dict[tuple[str, str | None], Condition] = {}


@cache
def _expression(text: str):
    from civicq_ops.templating.render import environment

    return environment().compile_expression(text)


def _context(target: str, check: str, subject: dict | None, value: Any, level: str,
             finding: dict, labels: dict) -> dict:
    return {"subject": dict(subject or {}), "value": value, "level": level, "target": target, "check": check,
            "finding": finding, "labels": labels, "params": {}, "row": {}, "now": None}


def _activate(active: dict[str, Alert], rule: AlertRule, target: str, check: str, subject: dict | None,
              finding: dict, value: Any, level: str, now: float, problems: list[str]) -> None:
    from civicq_ops.templating.render import render_text

    ctx = _context(target, check, subject, value, level, finding, {})
    ctx["now"] = iso(now)
    severity = rule.severity or rule.labels.get("severity") or (level if level in ("warning", "critical") else "warning")
    labels = {"alertname": rule.name, "target": target, "severity": severity}
    if check != "*":
        labels["check"] = check
    for key, val in (subject or {}).items():
        name = _LABEL_NAME.sub("_", str(key))
        if name and not name[0].isdigit() and name not in labels:
            labels[name] = str(val)
    for key, text in rule.labels.items():
        labels[key] = _render(render_text, text, ctx, rule.name, f"label {key}", problems)
    ctx["labels"] = labels
    annotations = {k: _render(render_text, t, ctx, rule.name, f"annotation {k}", problems)
                   for k, t in rule.annotations.items()}
    alert = Alert(rule=rule.name, target=target, check=check, subject=subject, state=PENDING, active_since=now,
                  last_active=now, labels=labels, annotations=annotations, value=_plain(value),
                  notify=list(rule.notify))
    # One finding per subject, but a check without a subject on two rows would collide: keep the first.
    active.setdefault(alert.fingerprint, alert)


def _render(render_text, text: str, ctx: dict, rule: str, what: str, problems: list[str]) -> str:
    try:
        return render_text(text, ctx)
    except TemplateError as e:
        problems.append(f"alert {rule}: {what}: {e.message}")
        return text


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
