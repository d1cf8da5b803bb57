"""Semantic validation: what a JSON Schema cannot say.

Ids unique, references resolve, templates parse and use only declared params, thresholds make
sense for their unit, waivers are owned and expire soon enough, and every query is ONE read-only
statement (pglast). Each problem carries a stable code and the position of the offending key.
"""

from __future__ import annotations

import difflib
from datetime import date, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateSyntaxError, meta, nodes

from civicq_ops.catalog.model import Check
from civicq_ops.catalog.params import violation
from civicq_ops.catalog.sqlcheck import inspect_query
from civicq_ops.core.capabilities import Capabilities
from civicq_ops.core.diagnostics import Diagnostic
from civicq_ops.core.errors import TemplateError
from civicq_ops.core.units import UnitError, parse_duration, parse_quantity
from civicq_ops.core.version import Version, version_matches
from civicq_ops.templating.render import NullFact, environment, render_query

MAX_WAIVER_DAYS = 180
QUERY_NAMES = {"params", "target", "facts", "run"}
MESSAGE_NAMES = {"params", "target", "facts", "subject", "value", "row", "check", "now"}
ALERT_NAMES = MESSAGE_NAMES | {"labels", "finding", "level"}

_SAMPLES = {"integer": 1, "number": 1.5, "string": "x", "boolean": True, "array": ["x"], "duration": "1s",
            "bytes": "1MB"}


def check_catalog(result, *, notifiers: set[str] | None = None, today: date | None = None,
                  parse_sql: bool = True) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    cat = result.catalog
    known = set(cat.checks) | set(result.unloaded)  # a broken check is reported where it is
    today = today or date.today()
    for check in cat.checks.values():
        out.extend(_check_check(result.documents[check.source.path], check, check.source.index, parse_sql))
    seen: dict[str, object] = {}
    for policy in cat.policies:
        doc, idx = result.documents[policy.source.path], policy.source.index
        if policy.id in seen:
            out.append(doc.diagnostic(("policies", idx, "id"), "duplicate-id", f"policy id '{policy.id}' is defined twice"))
        seen[policy.id] = policy
        if policy.check not in known:
            out.append(doc.diagnostic(("policies", idx, "when", "check"), "unknown-check",
                                      f"policy '{policy.id}' names check '{policy.check}', which does not exist",
                                      hint=_closest(policy.check, cat.checks)))
        if policy.action == "vacuum_full" and policy.window is None:
            out.append(doc.diagnostic(("policies", idx, "action"), "vacuum-full-needs-window",
                                      "vacuum_full takes an ACCESS EXCLUSIVE lock: give the policy a window"))
        if policy.window and policy.window.get("timezone"):
            out.extend(_timezone(doc, ("policies", idx, "window", "timezone"), policy.window["timezone"]))
        for key in ("lock_timeout", "statement_timeout", "cooldown", "max_relation_size"):
            if key in policy.limits:
                problems = _unit(doc, ("policies", idx, "limits", key), policy.limits[key],
                                 "bytes" if key == "max_relation_size" else "seconds")
                out.extend(problems)
                if not problems and key in ("lock_timeout", "statement_timeout") and \
                        parse_duration(policy.limits[key]) <= 0:
                    out.append(doc.diagnostic(("policies", idx, "limits", key), "bad-unit",
                                              f"{key} 0 means no timeout: an action would wait forever"))
    names: set[str] = set()
    for alert in cat.alerts:
        doc, idx = result.documents[alert.source.path], alert.source.index
        if alert.name in names:
            out.append(doc.diagnostic(("alerts", idx, "name"), "duplicate-id", f"alert '{alert.name}' is defined twice"))
        names.add(alert.name)
        if alert.check not in known:
            out.append(doc.diagnostic(("alerts", idx, "when", "check"), "unknown-check",
                                      f"alert '{alert.name}' names check '{alert.check}', which does not exist",
                                      hint=_closest(alert.check, cat.checks)))
        for i, notifier in enumerate(alert.notify):
            if notifiers is not None and notifier not in notifiers:
                out.append(doc.diagnostic(("alerts", idx, "notify", i), "unknown-notifier",
                                          f"alert '{alert.name}' notifies '{notifier}', which is not a notifier in "
                                          f"civicq-ops.yaml ({', '.join(sorted(notifiers)) or 'none defined'})"))
        for key, text in alert.annotations.items():
            out.extend(_template(doc, ("alerts", idx, "annotations", key), text, ALERT_NAMES, None))
        out.extend(_alert_extras(doc, idx, alert, cat.checks.get(alert.check)))
    for waiver in cat.waivers:
        doc, idx = result.documents[waiver.source.path], waiver.source.index
        if waiver.check not in known:
            out.append(doc.diagnostic(("waivers", idx, "check"), "unknown-check",
                                      f"waiver names check '{waiver.check}', which does not exist",
                                      hint=_closest(waiver.check, cat.checks)))
        elif waiver.check in cat.checks and waiver.subject and cat.checks[waiver.check].subject:
            unknown = set(waiver.subject) - set(cat.checks[waiver.check].subject)
            if unknown:
                out.append(doc.diagnostic(("waivers", idx, "subject"), "unknown-subject-key",
                                          f"waiver subject key(s) {', '.join(sorted(unknown))} are not in the subject "
                                          f"of check '{waiver.check}' ({', '.join(cat.checks[waiver.check].subject)})"))
        try:
            expires = date.fromisoformat(waiver.expires)
        except ValueError:
            out.append(doc.diagnostic(("waivers", idx, "expires"), "bad-date", f"'{waiver.expires}' is not a date"))
            continue
        if expires > today + timedelta(days=MAX_WAIVER_DAYS):
            out.append(doc.diagnostic(("waivers", idx, "expires"), "waiver-too-long",
                                      f"waiver expires {expires}, more than {MAX_WAIVER_DAYS} days ahead",
                                      hint=f"choose a date before {today + timedelta(days=MAX_WAIVER_DAYS + 1)}"))
        elif expires < today:
            out.append(doc.diagnostic(("waivers", idx, "expires"), "waiver-expired",
                                      f"waiver for '{waiver.check}' expired on {expires}: it no longer waives",
                                      level="warning", hint="renew it with a new reason, or remove it"))
    return out




def _alert_extras(doc, idx: int, alert, check: Check | None) -> list[Diagnostic]:
    """Label templates, the `expr` expression, the value condition and subject keys of an alert rule."""
    from jinja2 import TemplateSyntaxError

    from civicq_ops.core.thresholds import Condition
    from civicq_ops.templating.render import environment

    out: list[Diagnostic] = []
    for key, text in alert.labels.items():
        out.extend(_template(doc, ("alerts", idx, "labels", key), text, ALERT_NAMES - {"labels"}, None))
    if alert.expr is not None:
        try:
            environment().compile_expression(alert.expr)
        except TemplateSyntaxError as e:
            out.append(doc.diagnostic(("alerts", idx, "expr"), "template-syntax", f"expr is not an expression: {e.message}"))
    if alert.value is not None:
        try:
            Condition.parse(alert.value, check.unit if check else None)
        except (ValueError, TypeError) as e:
            out.append(doc.diagnostic(("alerts", idx, "when", "value"), "bad-unit", f"when.value: {e}"))
    if check is not None and alert.subject:
        unknown = set(alert.subject) - set(check.subject)
        if unknown:
            out.append(doc.diagnostic(("alerts", idx, "when", "subject"), "unknown-subject-key",
                                      f"subject key(s) {', '.join(sorted(unknown))} are not in the subject of check "
                                      f"'{check.id}' ({', '.join(check.subject) or 'none'})"))
    return out


def _check_check(doc, check: Check, idx: int, parse_sql: bool = True) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    base = ("checks", idx)
    if check.thresholds is not None:
        if not check.value:
            out.append(doc.diagnostic(base + ("thresholds",), "thresholds-need-value",
                                      "thresholds compare the 'value' column: name it with value:"))
        if not check.thresholds.critical_inside_warning():
            out.append(doc.diagnostic(base + ("thresholds",), "critical-outside-warning",
                                      "the critical zone must lie inside the warning zone (were the levels swapped?)"))
    if check.recommendation is None and (check.thresholds or check.level):
        out.append(doc.diagnostic(base + ("id",), "no-recommendation",
                                  f"check '{check.id}' has no recommendation: say what to do about it",
                                  level="warning"))
    for name, param in check.params.items():
        if param.default is not None and not _fits(param.type, param.default):
            out.append(doc.diagnostic(base + ("params", name, "default"), "bad-default",
                                      f"param '{name}' default {param.default!r} is not a {param.type}"))
        elif param.default is not None and violation(param, param.default):
            out.append(doc.diagnostic(base + ("params", name, "default"), "bad-default",
                                      f"param '{name}' default: {violation(param, param.default)}"))
    declared = set(check.params)
    facts = set(check.facts)
    out.extend(_delta(doc, base, check))
    queries: list[tuple[tuple[str | int, ...], str, dict | None]] = [(base + ("query",), check.query, None)]
    for j, variant in enumerate(check.variants):
        queries.append((base + ("variants", j, "query"), variant.query, variant.when))
        spec = variant.when.get("server_version")
        if spec:
            try:
                version_matches(spec, Version(18, 0))
            except ValueError as e:
                out.append(doc.diagnostic(base + ("variants", j, "when"), "bad-version", str(e)))
    for jpath, text, _when in queries:
        problems = _template(doc, jpath, text, QUERY_NAMES, declared, facts) + _unsafe_params(doc, jpath, text, check)
        out.extend(problems)
        if any(p.level == "error" for p in problems) or not parse_sql:
            continue
        out.extend(_sql(doc, jpath, check, text))
    for key in ("message", "recommendation"):
        text = getattr(check, key)
        if text:
            out.extend(_template(doc, base + (key,), text, MESSAGE_NAMES, declared, facts))
    return out


def _delta(doc, base, check: Check) -> list[Diagnostic]:
    """A delta names a declared param as its minimum and one of its counters as the ratio's numerator."""
    spec = check.delta
    if spec is None:
        return []
    out = []
    if spec.min_total and spec.min_total not in check.params:
        out.append(doc.diagnostic(base + ("delta", "min_total"), "unknown-param",
                                  f"delta.min_total names no param of check '{check.id}': declare '{spec.min_total}'"))
    if spec.ratio_of and spec.ratio_of not in spec.counters:
        out.append(doc.diagnostic(base + ("delta", "ratio_of"), "not-a-counter",
                                  f"delta.ratio_of '{spec.ratio_of}' is not one of delta.counters"))
    if spec.ratio_of and not check.value:
        out.append(doc.diagnostic(base + ("delta", "ratio_of"), "thresholds-need-value",
                                  "delta.ratio_of writes the check's value column: name it with value:"))
    if not check.subject:
        out.append(doc.diagnostic(base + ("delta",), "delta-needs-subject",
                                  "delta keeps counters per subject: the check needs subject:"))
    return out


def _template(doc, jpath, text: str, allowed: set[str], declared: set[str] | None,
              facts: set[str] | None = None) -> list[Diagnostic]:
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError as e:
        return [doc.diagnostic(jpath, "template-syntax", f"template syntax error (line {e.lineno} of the template): "
                                                         f"{e.message}")]
    out = []
    for name in sorted(meta.find_undeclared_variables(tree) - allowed):
        out.append(doc.diagnostic(jpath, "unknown-variable",
                                  f"template uses '{name}', which is not one of {', '.join(sorted(allowed))}"))
    if declared is not None:
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            if isinstance(node.node, nodes.Name) and node.node.name == "params":
                attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
                if isinstance(attr, str) and attr not in declared:
                    out.append(doc.diagnostic(jpath, "undeclared-param",
                                              f"template uses params.{attr}, which is not declared under params:",
                                              hint=_closest(attr, declared)))
            if facts is not None and isinstance(node.node, nodes.Name) and node.node.name == "facts":
                attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
                if isinstance(attr, str) and attr not in facts:
                    out.append(doc.diagnostic(jpath, "undeclared-fact",
                                              f"template uses facts.{attr}, which is not declared under facts:",
                                              hint=f"add `facts: [{attr}]` to the check"))
    if "sql_unsafe" in text:
        out.append(doc.diagnostic(jpath, "sql-unsafe", "this template writes raw text into SQL with | sql_unsafe: "
                                                       "review where that value comes from", level="notice"))
    return out


def _unsafe_params(doc, jpath, text: str, check: Check) -> list[Diagnostic]:
    """A param that reaches `| sql_unsafe` must declare an enum or a pattern: its value becomes SQL
    text, and `--param` can set it (issue 12 point 8)."""
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError:
        return []  # reported by _template
    out = []
    for flt in tree.find_all(nodes.Filter):
        if flt.name != "sql_unsafe" or flt.node is None:
            continue
        names = [n.name for n in [flt.node, *flt.node.find_all(nodes.Name)] if isinstance(n, nodes.Name)]
        if any(name != "params" for name in names):
            out.append(doc.diagnostic(jpath, "unsafe-param-unbounded",
                                      "| sql_unsafe applies only to constants and declared params with an enum "
                                      f"or pattern, not to {', '.join(sorted(set(names) - {'params'}))}"))
        for node in [flt.node, *flt.node.find_all((nodes.Getattr, nodes.Getitem))]:
            if not isinstance(node, (nodes.Getattr, nodes.Getitem)) or not isinstance(node.node, nodes.Name) \
                    or node.node.name != "params":
                continue
            name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
            param = check.params.get(name) if isinstance(name, str) else None
            if param is not None and param.enum is None and param.pattern is None:
                out.append(doc.diagnostic(jpath, "unsafe-param-unbounded",
                                          f"params.{name} reaches | sql_unsafe but declares no enum or pattern: "
                                          "any --param value would become SQL text"))
    return out


def _sql(doc, jpath, check: Check, text: str) -> list[Diagnostic]:
    out = []
    caps = Capabilities()
    samples = [check.default_params(),
               {n: (p.default if p.default not in (None, [], "") else _SAMPLES[p.type]) for n, p in check.params.items()}]
    seen_problems = set()
    # A query that reads `run.list_ok` is judged both ways: counting ok subjects and listing them.
    runs = [{"list_ok": False}, {"list_ok": True}] if "run." in text else [{"list_ok": False}]
    for params, run in [(p, r) for p in samples for r in runs]:
        try:
            rendered = render_query(text, {"params": params, "target": caps.to_context(),
                                           "facts": {name: NullFact() for name in check.facts}, "run": run})
        except TemplateError as e:
            out.append(doc.diagnostic(jpath, "template-render", e.message))
            return out
        verdict = inspect_query(rendered.numbered())
        if verdict.problem and verdict.problem not in seen_problems:
            seen_problems.add(verdict.problem)
            code = "not-read-only" if "read-only" in verdict.problem or "must be a SELECT" in verdict.problem \
                else "sql-syntax" if "parse" in verdict.problem else "not-one-statement"
            out.append(doc.diagnostic(jpath, code, verdict.problem))
        elif verdict.columns is not None:
            computed = check.value if check.delta and check.delta.ratio_of else None  # the engine writes it
            wanted = [*check.subject, *([check.value] if check.value and check.value != computed else []),
                      *(check.object.columns() if check.object else [])]
            wanted += check.delta.counters if check.delta else []
            missing = [c for c in wanted if c not in verdict.columns]
            if missing and "missing" not in seen_problems:
                seen_problems.add("missing")
                out.append(doc.diagnostic(jpath, "missing-column",
                                          f"the query returns no column {', '.join(missing)} "
                                          f"(it returns {', '.join(verdict.columns)})"))
    return out


def _fits(kind: str, value) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind in ("duration", "bytes"):
        try:
            parse_quantity(value, "seconds" if kind == "duration" else "bytes")
            return True
        except UnitError:
            return False
    return isinstance(value, str)


def _unit(doc, jpath, value, unit: str) -> list[Diagnostic]:
    try:
        parse_quantity(value, unit)
    except UnitError as e:
        return [doc.diagnostic(jpath, "bad-unit", str(e))]
    return []


def _timezone(doc, jpath, name: str) -> list[Diagnostic]:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return [doc.diagnostic(jpath, "bad-timezone", f"'{name}' is not an IANA time zone (e.g. America/Los_Angeles)")]
    return []


def _closest(name: str, candidates) -> str | None:
    match = difflib.get_close_matches(name, list(candidates), n=1)
    return f"did you mean '{match[0]}'?" if match else None
