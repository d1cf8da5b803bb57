"""From a check's result rows to findings: subjects, thresholds, NULLs, empty results, messages.

Pure: no database here, so `civicq-ops test` runs the same code on rows written in YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from civicq_ops.catalog.model import Check
from civicq_ops.core.capabilities import Capabilities
from civicq_ops.core.errors import TemplateError
from civicq_ops.core.units import format_value
from civicq_ops.engine.findings import Finding, jsonable
from civicq_ops.templating.render import render_text

LOW_CONFIDENCE_COLUMN = "low_confidence_reason"
# A row with a non-NULL `ok_count` is not a subject: it counts subjects the query judged ok in SQL
# and did not return (a check over thousands of objects returns those near its thresholds, and
# every row when the run lists ok findings: the `run.list_ok` the query sees).
OK_COUNT_COLUMN = "ok_count"


def split_counted(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(the subject rows, how many ok subjects the count rows stand for)."""
    if not rows or OK_COUNT_COLUMN not in rows[0]:
        return rows, 0
    counted = sum(int(r[OK_COUNT_COLUMN]) for r in rows if r.get(OK_COUNT_COLUMN) is not None)
    return [r for r in rows if r.get(OK_COUNT_COLUMN) is None], counted


def evaluate_counted(
    check: Check, rows: list[dict[str, Any]], params: dict[str, Any], caps: Capabilities,
    now: datetime | None = None, facts: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[Finding], int]:
    """evaluate_rows over the subject rows, and how many ok subjects the query counted instead."""
    rows, counted = split_counted(rows)
    findings = evaluate_rows(check, rows, params, caps, now, facts)
    if counted and not rows:
        findings[0].message = (f"{check.title}: {counted:,} ok, none near the thresholds (counted, not listed: "
                               "--verbose lists them)")
    return findings, counted


def evaluate_rows(
    check: Check, rows: list[dict[str, Any]], params: dict[str, Any], caps: Capabilities,
    now: datetime | None = None, facts: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """One finding per row (per subject), or one for the whole check when it has no subject.
    Messages see the same `facts` as the query (only those the check declares)."""
    scope = {"params": params, "target": caps.to_context(),
             "facts": {n: facts[n] for n in check.facts if facts and n in facts},
             "check": {"id": check.id, "title": check.title, "unit": check.unit},
             "now": (now.isoformat() if now else None)}
    if not rows:
        status = check.on_empty
        f = Finding(check=check.id, category=check.category, target=caps.name, subject=None, status=status,
                    title=check.title, unit=check.unit, threshold=_threshold(check), remediation=check.remediation,
                    message=f"{check.title}: nothing found")
        if status == "skipped":
            f.reason = "the query returned no rows"
        elif status in ("warning", "critical"):
            f.message = f"{check.title}: the query returned no rows"
            f.recommendation = _render(check.recommendation, scope, None, None, {})
        return [f]
    findings = []
    for row in rows if check.subject else rows[:1]:
        row = {k: jsonable(v) for k, v in row.items()}
        missing = [c for c in [*check.subject, *([check.value] if check.value else [])] if c not in row]
        if missing:
            return [Finding(check=check.id, category=check.category, target=caps.name, subject=None, status="error",
                            title=check.title, reason=f"the query returned no column {', '.join(missing)}",
                            message=f"{check.title}: the query returned no column {', '.join(missing)}")]
        subject = {c: row[c] for c in check.subject} or None
        value = row.get(check.value) if check.value else None
        status, reason = _status(check, value)
        low = row.get(LOW_CONFIDENCE_COLUMN)
        evidence = {k: v for k, v in row.items()
                    if k not in check.subject and k != check.value and k not in (LOW_CONFIDENCE_COLUMN, OK_COUNT_COLUMN)}
        f = Finding(check=check.id, category=check.category, target=caps.name, subject=subject, status=status,
                    title=check.title, value=value, unit=check.unit, threshold=_threshold(check),
                    confidence="low" if low else "high", confidence_reason=low or None,
                    remediation=check.remediation, evidence=evidence, reason=reason)
        # Rendered when first read (findings.LazyText): most findings are ok and never shown.
        f.message = partial(_message, check, f, scope, row)
        if status in ("warning", "critical"):
            f.recommendation = partial(_render, check.recommendation, scope, subject, value, row)
        findings.append(f)
    return findings


def _status(check: Check, value: Any) -> tuple[str, str | None]:
    if check.level:
        return check.level, None
    if check.thresholds is None:
        return "ok", None
    if value is None:
        return check.on_null, "the value is NULL" if check.on_null == "skipped" else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "error", f"value {value!r} of column {check.value} is not a number"
    return check.thresholds.level_for(number), None


def _threshold(check: Check) -> dict | None:
    return check.thresholds.raw if check.thresholds else None


def _render(template: str | None, scope: dict, subject, value, row) -> str | None:
    """`scope` holds what every template of the check sees (params, target, facts, check, now)."""
    if not template:
        return None
    try:
        return render_text(template, {**scope, "subject": subject or {}, "value": value, "row": row or {}})
    except TemplateError as e:
        return f"(recommendation could not be rendered: {e.message})"


def _message(check: Check, f: Finding, scope: dict, row) -> str:
    if check.message:
        rendered = _render(check.message, scope, f.subject, f.value, row)
        if rendered:
            return rendered
    text = check.title
    if f.subject:
        text += f": {f.subject_text()}"
    if check.value:
        text += f" {format_value(f.value, check.unit)}"
    return text
