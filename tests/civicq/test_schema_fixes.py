"""Schema details found while measuring the seed's claims: the moderation queue and the login query."""

from __future__ import annotations

import json

from civicq_ops.civicq.migrations import migrate, rollback
from civicq_ops.civicq.queries import LOGIN_EXACT_EMAIL, PATTERNS


def test_moderation_queue_lists_questions_pending_moderation_and_open_reports(civicq_db):
    with civicq_db.connect() as conn:
        pending = {r[0] for r in conn.execute(
            "SELECT id FROM questions WHERE status = 'pending' AND deleted_at IS NULL")}
        open_reports = {r[0] for r in conn.execute("SELECT id FROM reports WHERE status IN ('pending', 'reviewing')")}
        rows = conn.execute("SELECT item, report_id, target_type, target_id, created_at FROM moderation_queue").fetchall()
    assert pending and open_reports
    assert {r[3] for r in rows if r[0] == "question"} == pending
    assert all(r[1] is None and r[2] == "question" for r in rows if r[0] == "question")
    assert {r[1] for r in rows if r[0] == "report"} == open_reports
    assert [r[4] for r in rows] == sorted(r[4] for r in rows)


def test_downgrade_restores_the_reports_only_view(civicq_db):
    project, target = civicq_db.project()
    assert rollback(project, target, 1).after == "0003"
    with civicq_db.connect() as conn:
        columns = [d.name for d in conn.execute("SELECT * FROM moderation_queue LIMIT 0").description]
    assert "item" not in columns and columns[0] == "report_id"
    migrate(project, target)
    with civicq_db.connect() as conn:
        columns = [d.name for d in conn.execute("SELECT * FROM moderation_queue LIMIT 0").description]
    assert columns[-1] == "item"


def _plan(conn, sql: str, params: dict) -> str:
    conn.execute("SET enable_seqscan = off")  # tiny seed tables: ask whether an index CAN serve the query
    return json.dumps(conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0])


def test_login_query_and_email_index_agree(civicq_db):
    with civicq_db.connect() as conn:
        login = next(p for p in PATTERNS if p.name == "login-by-email")
        assert "users_email_lower_key" in _plan(conn, login.sql, {"email": "Voter1@Example.com"})
        assert conn.execute(login.sql, {"email": "Voter1@Example.com"}).fetchone() is not None
        # The exact form reads the whole table: no index serves it.
        exact = _plan(conn, LOGIN_EXACT_EMAIL, {"email": "voter1@example.com"})
        assert "Seq Scan" in exact and "users_email_lower_key" not in exact


def test_every_common_pattern_can_be_served_by_an_index(civicq_db):
    """On the tiny seed the planner may pick a sibling index; what matters is that none reads a whole table."""
    params = {"email": "a@b.c", "city_id": 1, "status": "approved", "contest_id": 1, "user_id": 1,
              "words": "housing", "candidate_id": 1}
    with civicq_db.connect() as conn:
        for pattern in PATTERNS:
            assert "Seq Scan" not in _plan(conn, pattern.sql, params), pattern.name
