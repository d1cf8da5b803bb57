"""Recommendations are advice a tired DBA pastes: every SQL statement in them must be valid
PostgreSQL for any object name, with every relation schema-qualified.

The convention (docs/checks.md, README): SQL a DBA may paste is written between backticks and ends
with `;`; anything else in backticks (a shell command) does not end with `;`. This test renders every
shipped recommendation with hostile names (comma, space, %, quotes, unicode, upper case) in place of
the names in the check's offline test rows, and parses each SQL segment with pglast.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pglast.parser
import pytest
import yaml

from civicq_ops.core.capabilities import Capabilities
from civicq_ops.engine.evaluate import OK_COUNT_COLUMN
from civicq_ops.templating.render import render_text
from tests.fixtures.pg import REPO, shipped_catalog

HOSTILE = 'Wéird,Name 100% "q" it\'s'
# Columns holding object names: these get the hostile name. Others keep the test's value (they
# drive branches such as `subject.holder == 'replication slot'` or are SQL PostgreSQL wrote).
NAME_COLUMNS = {
    "schemaname", "relname", "indexname", "tablename", "table_name", "table_schema", "column_name", "constraint_name",
    "trigger_name", "matviewname", "sequencename", "function_name", "slot_name", "gid", "datname", "duplicate_of",
    "covered_by", "references", "name",
}
LIST_NAME_COLUMNS = {"column_names"}
SQL_VERBS = r"\b(ALTER|VACUUM|REINDEX|DROP|CREATE|ANALYZE|REFRESH|REVOKE|GRANT|COMMIT PREPARED|ROLLBACK PREPARED|DELETE)\b"


def _hostile(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key in NAME_COLUMNS and isinstance(value, str):
            out[key] = HOSTILE
        elif key in LIST_NAME_COLUMNS and isinstance(value, list):
            out[key] = [HOSTILE, "Other Col"]
        else:
            out[key] = value
    return out


catalog = cache(shipped_catalog)


def _rendered(check_id: str) -> list[str]:
    """The check's recommendation rendered for every row of its offline tests, names made hostile."""
    check = catalog().checks[check_id]
    path = REPO / "checks" / "tests" / f"{check_id}.yaml"
    rows = []
    if path.exists():
        for case in (yaml.safe_load(path.read_text()).get("cases") or {}).values():
            rows.extend(case.get("rows") or [])
    out = []
    for row in rows:
        if row.get(OK_COUNT_COLUMN) is not None:
            continue  # a count of ok subjects the query did not list: no subject, no recommendation
        row = _hostile(row)
        subject = {k: row.get(k) for k in check.subject}
        context = {"params": check.default_params(), "target": Capabilities(name="prod").to_context(),
                   "subject": subject, "value": row.get(check.value) if check.value else None, "row": row,
                   "check": {"id": check.id, "title": check.title, "unit": check.unit}, "now": None}
        out.append(render_text(check.recommendation or "", context))
    return out


def _sql_segments(text: str) -> list[str]:
    return [s for s in re.findall(r"`([^`]*)`", text) if s.rstrip().endswith(";")]


def _walk(node, found: dict) -> None:
    if isinstance(node, dict):
        if "relname" in node and "relpersistence" in node:  # a RangeVar
            found["relations"].append(node)
        for key, value in node.items():
            if key == "DropStmt":
                found["drops"].extend(value.get("objects", []))
            if isinstance(value, str):
                found["strings"].add(value)
            _walk(value, found)
    elif isinstance(node, list):
        for item in node:
            _walk(item, found)


def _check_ids_with_recommendations() -> list[str]:
    return sorted(c.id for c in catalog().checks.values() if c.recommendation)


@pytest.mark.parametrize("check_id", _check_ids_with_recommendations())
def test_recommendation_sql_parses_and_quotes_hostile_names(check_id):
    for text in _rendered(check_id):
        outside = re.sub(r"`[^`]*`", "``", text)
        assert not re.search(SQL_VERBS + r"[^.;]*" + re.escape(HOSTILE), outside), \
            f"SQL naming an object outside backticks (write it as `...;`): {text}"
        for segment in _sql_segments(text):
            try:
                tree = json.loads(pglast.parser.parse_sql_json(segment))
            except pglast.parser.ParseError as e:
                pytest.fail(f"{check_id}: does not parse ({e}): {segment}")
            found: dict = {"relations": [], "drops": [], "strings": set()}
            _walk(tree, found)
            unqualified = [r["relname"] for r in found["relations"] if not r.get("schemaname")]
            assert not unqualified, f"{check_id}: not schema-qualified: {unqualified} in {segment}"
            for obj in found["drops"]:
                parts = obj.get("List", {}).get("items", [])
                assert len(parts) >= 2, f"{check_id}: DROP of an unqualified name: {segment}"
            if '"' + HOSTILE.replace('"', '""') + '"' in segment:
                assert HOSTILE in found["strings"], f"{check_id}: the name was mangled: {segment}"
            assert HOSTILE.replace('"', "") not in segment.replace('"' + HOSTILE.replace('"', '""') + '"', "") \
                .replace("'" + HOSTILE.replace("'", "''") + "'", "").replace('"', ""), \
                f"{check_id}: the name appears unquoted: {segment}"


def test_recommendations_with_sql_name_the_object_they_act_on():
    """The checks that act on one object give SQL that names it (quoted, qualified), hostile or not."""
    missing = []
    for check in catalog().checks.values():
        if check.remediation and check.subject and check.recommendation:
            texts = _rendered(check.id)
            if texts and not any(_sql_segments(t) for t in texts):
                missing.append(check.id)
    assert missing == []


def test_qident_quotes_exactly_as_postgresql_reads_it():
    ctx = {"subject": {"schemaname": 'My "Schema"', "relname": "weird,name 100%"}, "row": {"t": "a.b"}}
    assert render_text("{{ subject | qident('schemaname', 'relname') }}", ctx) == '"My ""Schema"""."weird,name 100%"'
    assert render_text("{{ row.t | qident }}", ctx) == '"a.b"'  # one name, never split on dots
    assert render_text("{{ ['s', 'T'] | qident }}", ctx) == '"s"."T"'
    assert render_text("{{ \"it's\" | qliteral }}", ctx) == "'it''s'"
    tree = json.loads(pglast.parser.parse_sql_json(
        "VACUUM " + render_text("{{ subject | qident('schemaname', 'relname') }}", ctx) + ";"))
    relation = tree["stmts"][0]["stmt"]["VacuumStmt"]["rels"][0]["VacuumRelation"]["relation"]
    assert (relation["schemaname"], relation["relname"]) == ('My "Schema"', "weird,name 100%")


def test_recommendation_convention_is_documented():
    assert "between backticks" in Path(REPO / "docs" / "checks.md").read_text()
