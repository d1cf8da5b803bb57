"""What to do first: each warning or critical finding as a recommendation with its exact,
schema-qualified SQL and the lock that SQL takes, ranked by severity, then effort.

SQL comes from the remediation actions (the same statements `plan` would propose) or, for findings
whose fix is not an automatic action (dropping an unused index, widening a key), from statements
built here with psycopg.sql.Identifier. Effort follows the lock: online statements first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import sql

from civicq_ops.catalog.model import Check
from civicq_ops.core.errors import CivicqError
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.findings import Finding
from civicq_ops.remediation.actions import SPECS, build
from civicq_ops.remediation.guards import object_of

EFFORT_BY_LOCK = {"none": "low", "ACCESS SHARE": "low", "SHARE UPDATE EXCLUSIVE": "low", "SHARE": "medium",
                  "EXCLUSIVE": "medium", "ACCESS EXCLUSIVE": "high"}
EFFORT_ORDER = {"low": 0, "medium": 1, "high": 2}


@dataclass
class Recommendation:
    rank: int
    status: str
    effort: str
    check: str
    subject: str
    finding_id: str
    why: str
    what: str
    sql: str | None
    lock: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _drop_index(subject: dict) -> str:
    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{};").format(
        sql.Identifier(subject["schemaname"]), sql.Identifier(subject["indexname"])).as_string(None)


def _widen(schema: str, table: str, column: str) -> str:
    return sql.SQL("ALTER TABLE {}.{} ALTER COLUMN {} TYPE bigint;").format(
        sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column)).as_string(None)


def statement_for(f: Finding, server_major: int = 18, check: Check | None = None) -> tuple[str | None, str | None]:
    """(SQL, lock) that fixes the finding, or (None, None) when the fix needs a person's judgement.
    The object a remediation acts on comes from the check's `object:` declaration, never guessed."""
    subject = f.subject or {}
    if f.remediation in SPECS and f.remediation != "backup":
        spec = SPECS[f.remediation]
        obj, _why_not = object_of(check.object if check else None, f)
        if obj is None:
            return None, None
        try:
            statements = build(f.remediation, obj, {}, server_major=server_major)
        except CivicqError:
            return None, None
        return "\n".join(s.text.rstrip(";") + ";" for s in statements), spec.lock
    if f.remediation == "backup":
        return "civicq-ops backup create  -- a shell command, not SQL", "ACCESS SHARE"
    if f.check in ("unused-indexes", "duplicate-indexes", "redundant-indexes") and "indexname" in subject:
        return _drop_index(subject), "SHARE UPDATE EXCLUSIVE"
    if f.check == "integer-key-capacity" and {"schemaname", "tablename", "column_name"} <= set(subject):
        return (_widen(subject["schemaname"], subject["tablename"], subject["column_name"]),
                "ACCESS EXCLUSIVE (rewrites the table)")
    ev = f.evidence
    if f.check == "sequence-exhaustion" and ev.get("column_type") in ("integer", "smallint") and ev.get("table_name"):
        return _widen(subject.get("schemaname", "public"), ev["table_name"], ev["column_name"]), \
            "ACCESS EXCLUSIVE (rewrites the table)"
    if f.check == "fk-without-index" and ev.get("columns") and ev.get("tablename"):
        table = str(ev["tablename"]).split(".")
        cols = [c.strip() for c in str(ev["columns"]).split(",")]
        name = f"{table[-1]}_{'_'.join(cols)}_idx"[:63]
        text = sql.SQL("CREATE INDEX CONCURRENTLY {} ON {} ({});").format(
            sql.Identifier(name), sql.Identifier(*([subject.get("schemaname", "public")] if len(table) == 1 else [])
                                                 + table),
            sql.SQL(", ").join(sql.Identifier(c) for c in cols)).as_string(None)
        return text, "SHARE UPDATE EXCLUSIVE"
    return None, None


def effort_of(sql_text: str | None, lock: str | None) -> str:
    if sql_text is None or lock is None:
        return "medium"
    return EFFORT_BY_LOCK.get(lock.split(" (")[0], "high")


def recommendations(findings: list[Finding], server_major: int = 18,
                    checks: Mapping[str, Check] | None = None) -> list[Recommendation]:
    """Warning and critical findings that are not waived, worst and cheapest first."""
    out = []
    for f in findings:
        if f.status not in ("warning", "critical") or f.waived:
            continue
        text, lock = statement_for(f, server_major, (checks or {}).get(f.check))
        out.append(Recommendation(0, f.status, effort_of(text, lock), f.check, f.subject_text() if f.subject else f.target,
                                  f.id, f.message, f.recommendation or f.message, text, lock))
    out.sort(key=lambda r: (-SEVERITY[r.status], EFFORT_ORDER[r.effort], r.check, r.subject))
    for i, r in enumerate(out, 1):
        r.rank = i
    return out
