"""Offline alert tests, like `promtool test rules`: a sequence of runs (findings at t0, t1, ...) goes
through the real evaluator with an in-memory state, and the rule's alerts after each run are
compared with what the case expects at that time.

Labels are compared as a subset (the case names the labels it cares about); annotations exactly
for each key the case writes; `state: inactive` asserts that the rule has no alert at that time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from civicq_ops.alerts.evaluate import Observation, evaluate
from civicq_ops.alerts.model import BUILTIN_RULES, Alert
from civicq_ops.catalog.model import Catalog
from civicq_ops.core.units import parse_duration
from civicq_ops.engine.findings import Finding

DEFAULT_T0 = "2026-01-01T00:00:00Z"


def run_alert_case(data: dict, case: dict, catalog: Catalog) -> list[str]:
    name = data["alert"]
    rules = [r for r in catalog.alerts if r.name == name]
    if not rules and name not in BUILTIN_RULES:
        return [f"no alert rule '{name}' in the catalog"]
    if not case.get("runs"):
        return ["the case gives no runs: an alert test needs runs at t0, t1, ..."]
    expected = (case.get("expect") or {}).get("alerts")
    if not expected:
        return ["the case states no expect.alerts: it could never fail"]
    rule_check = rules[0].check if rules else None
    t0 = datetime.fromisoformat((case.get("now") or data.get("now") or DEFAULT_T0).replace("Z", "+00:00"))
    t0_epoch = t0.astimezone(UTC).timestamp()
    runs = sorted(case["runs"], key=lambda r: parse_duration(r["at"]))
    want_times = sorted({parse_duration(e["at"]) for e in expected})
    units = {c.id: c.unit for c in catalog.checks.values()}
    state: dict[str, Alert] = {}
    seen: dict[float, list[Alert]] = {}
    failures: list[str] = []
    for run in runs:
        at = parse_duration(run["at"])
        target = run.get("target", "offline")
        findings = []
        for f in run.get("findings", []):
            check = f.get("check") or rule_check or "unknown"
            spec = catalog.checks.get(check)
            findings.append(Finding(check=check, category=spec.category if spec else "x", target=target,
                                    subject=f.get("subject"), status=f.get("status", "critical"), value=f.get("value"),
                                    unit=spec.unit if spec else None, message=f.get("message", ""),
                                    reason=f.get("message")))
        checks = set(run.get("checks") or ([rule_check] if rule_check else [])) | {f.check for f in findings}
        obs = Observation(findings=findings, targets={target: run.get("target_down")}, checks=checks, units=units)
        ev = evaluate(rules, obs, t0_epoch + at, state)
        failures.extend(f"at {run['at']}: {p}" for p in ev.problems)
        state = {fp: Alert.from_dict(a.to_dict()) for fp, a in ev.alerts.items()}
        seen[at] = [Alert.from_dict(a.to_dict()) for a in ev.alerts.values() if a.rule == name]
    for at in want_times:
        if at not in seen:
            failures.append(f"expect.alerts names at {at:g}s, but no run happens then")
            continue
        wanted = [e for e in expected if parse_duration(e["at"]) == at and e["state"] != "inactive"]
        failures.extend(_compare_at(at, wanted, seen[at]))
    return failures


def _compare_at(at: float, wanted: list[dict], actual: list[Alert]) -> list[str]:
    failures = []
    remaining = list(actual)
    for exp in wanted:
        labels = exp.get("labels") or {}
        match = next((a for a in remaining if a.state == exp["state"]
                      and all(a.labels.get(k) == v for k, v in labels.items())), None)
        if match is None:
            failures.append(f"at {at:g}s: expected a {exp['state']} alert with labels {labels}; got {_show(actual)}")
            continue
        remaining.remove(match)
        for key, text in (exp.get("annotations") or {}).items():
            if match.annotations.get(key) != text:
                failures.append(f"at {at:g}s: annotation {key}: expected\n    {text!r}\n  got\n    "
                                f"{match.annotations.get(key)!r}")
        if "value" in exp and exp["value"] != match.value:
            failures.append(f"at {at:g}s: expected value {exp['value']!r}, got {match.value!r}")
    for a in remaining:
        failures.append(f"at {at:g}s: unexpected {a.state} alert {a.labels}")
    return failures


def _show(actual: list[Alert]) -> str:
    return "; ".join(f"{a.state} {a.labels}" for a in actual) or "no alert"
