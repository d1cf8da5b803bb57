"""Duplicate finding ids never lose a report (issue 11 point 10), on real PostgreSQL 15 and 18:
pg_stat_statements keeps a row per (role, database, queryid, level), and the engine turns any
check whose subject does not identify a row into an error finding naming the check."""

from __future__ import annotations

import json

from psycopg import sql

from civicq_ops.catalog.model import Catalog, Check, Source
from tests.fixtures.pg import REPO, run_on


def same_statement_as_two_roles(db) -> list[str]:
    """Each role runs the same SELECT (and RESET ROLE, which pg_stat_statements also records as that
    role: the test looks only at the SELECT's rows)."""
    roles = [f"{db.name}_a", f"{db.name}_b"]
    with db.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for role in roles:
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(role)))
        for role in roles:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            for _ in range(3):
                conn.execute("SELECT count(*) FROM pg_class WHERE relpages >= 0")
            conn.execute("RESET ROLE")
    return roles


def test_two_roles_running_the_same_statement_keep_the_report(cli, db):
    roles = same_statement_as_two_roles(db)
    try:
        result = cli("--config", str(REPO / "civicq-ops.yaml"), "run", "checks", "--format", "json",
                     "--check", "slow-queries,top-queries-by-total-time",
                     "--param", "slow-queries.min_calls=1", "--param", "top-queries-by-total-time.min_total=0s",
                     env={"CIVICQ_DATABASE_URL": db.url})
        assert result.exit_code in (0, 1), result.output
        doc = json.loads(result.stdout)
        for check in ("slow-queries", "top-queries-by-total-time"):
            mine = [f for f in doc["findings"] if f["check"] == check
                    and (f["subject"] or {}).get("username") in roles and "relpages >=" in f["message"]]
            # one finding per (queryid, role, toplevel): a role may also have a nested (toplevel false) row
            assert sorted({f["subject"]["username"] for f in mine}) == roles, (check, mine)
            assert len({(f["subject"]["username"], f["subject"]["toplevel"]) for f in mine}) == len(mine)
            assert len({f["subject"]["queryid"] for f in mine}) == 1
        assert not [f for f in doc["findings"] if f["status"] == "error"]
        assert "UNIQUE" not in result.output
    finally:
        with db.connect() as conn:
            for role in roles:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_subject_that_does_not_identify_a_row_is_an_error_naming_the_check(db):
    check = Check.from_dict({"id": "loose", "title": "Loose", "category": "t", "value": "v",
                             "query": "SELECT 'x' AS k, g AS v FROM generate_series(1, 3) g", "subject": ["k"],
                             "thresholds": {"warning": {"gt": 100}}}, Source("loose.yaml", 1))
    result = run_on(db, catalog=Catalog(checks={"loose": check}))
    [finding] = result.findings
    assert finding.status == "error" and result.exit_code == 3
    assert "check 'loose' returned 3 rows for the subject x" in finding.reason and "(k)" in finding.reason


def test_the_same_target_twice_runs_once(cli, db):
    result = cli("--config", str(REPO / "civicq-ops.yaml"), "--target", "env,env", "run", "checks",
                 "--check", "invalid-index", "--format", "json", env={"CIVICQ_DATABASE_URL": db.url})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["findings"]) == 1
