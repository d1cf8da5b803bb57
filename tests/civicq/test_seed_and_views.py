"""Seed data (deterministic, idempotent, hashed passwords) and the nine views, checked against
numbers computed independently from the seed's own data."""

from __future__ import annotations

from collections import Counter

import pytest

from civicq_ops.civicq.seeding import load_seed_module, reset, seed
from civicq_ops.core.errors import InputError
from tests.fixtures.pg import project_for


@pytest.fixture(scope="module")
def data():
    project, _ = project_for("postgresql://unused@127.0.0.1:1/x")
    return load_seed_module(project, "seed_dev")


def test_seed_has_three_cities_and_users_in_every_role(civicq_db):
    with civicq_db.connect() as conn:
        cities = [r[0] for r in conn.execute("SELECT name FROM cities ORDER BY id")]
        roles = dict(conn.execute("SELECT role, count(*) FROM users GROUP BY role").fetchall())
    assert cities == ["San Francisco", "Oakland", "Berkeley"]
    assert set(roles) == {"admin", "voter", "candidate", "city_staff", "moderator"}
    assert sum(roles.values()) >= 30


@pytest.mark.parametrize("email, password", [
    ("admin@civicq.com", "admin123"),
    ("voter1@example.com", "password123"),
    ("candidate1@example.com", "password123"),
    ("clerk@san-francisco.gov", "password123"),
])
def test_test_credentials_are_stored_as_scrypt_hashes(civicq_db, data, email, password):
    with civicq_db.connect() as conn:
        stored = conn.execute("SELECT password_hash FROM users WHERE email = %s", (email,)).fetchone()[0]
    assert stored.startswith("scrypt$") and password not in stored
    assert data.verify_password(password, stored)
    assert not data.verify_password("wrong", stored)


def test_seeding_twice_adds_nothing(civicq_db):
    project, target = civicq_db.project()
    with civicq_db.connect() as conn:
        before = conn.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM votes)").fetchone()
    result = seed(project, target)
    assert result.total == 0
    with civicq_db.connect() as conn:
        after = conn.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM votes)").fetchone()
    assert before == after


def test_seed_leaves_sequences_ready_for_new_rows(civicq_db):
    with civicq_db.connect() as conn:
        new_id = conn.execute("INSERT INTO cities (name, state, slug) VALUES ('Alameda', 'CA', 'alameda') "
                              "RETURNING id").fetchone()[0]
    assert new_id == 4


def test_scale_adds_units_of_ten_thousand_votes_once(civicq_db):
    project, target = civicq_db.project()
    result = seed(project, target, scale=1)
    assert result.rows["votes"] == 10_000 and result.rows["users"] == 200
    assert seed(project, target, scale=1).total == 0
    with civicq_db.connect() as conn:
        score_ok = conn.execute("SELECT bool_and(q.vote_score = (SELECT coalesce(sum(value), 0) FROM votes v "
                                "WHERE v.question_id = q.id)) FROM questions q").fetchone()[0]
    assert score_ok


def test_popular_questions_match_the_seeded_votes(civicq_db, data):
    votes = data.vote_rows()
    expected = {}
    for qid, _contest, _a, _t, status, _tags, _h, deleted in data.QUESTIONS:
        if deleted or status not in ("approved", "answered"):
            continue
        vs = [v for v in votes if v[1] == qid]
        expected[qid] = (sum(1 for v in vs if v[3] == 1), sum(1 for v in vs if v[3] == -1), sum(v[3] for v in vs))
    with civicq_db.connect() as conn:
        rows = conn.execute("SELECT question_id, upvotes, downvotes, score FROM popular_questions").fetchall()
    assert {r[0]: tuple(r[1:]) for r in rows} == expected
    # Hand-checked spot value: question 1 (SF mayor, housing).
    assert expected[1] == (8, 3, 5)  # voters 15, 23 and 31 vote down; 8 others up


def test_contest_summary_counts(civicq_db, data):
    with civicq_db.connect() as conn:
        row = conn.execute("SELECT candidate_count, question_count, published_answer_count, vote_count "
                           "FROM contest_summary WHERE contest_id = 1").fetchone()
    live_q1 = [q[0] for q in data.QUESTIONS if q[1] == 1 and not q[7]]
    votes = sum(1 for v in data.vote_rows() if v[1] in live_q1)
    answers = sum(1 for a in data.VIDEO_ANSWERS if a[1] in live_q1 and a[5] == "published")
    assert row == (3, len(live_q1), answers, votes)
    assert row[:3] == (3, 5, 4)


def test_city_dashboard_counts(civicq_db, data):
    with civicq_db.connect() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT slug, user_count, ballot_count, contest_count, candidate_count FROM city_dashboard")}
    users = Counter(u[5] for u in data.USERS)
    assert rows["san-francisco"] == (users[1], 2, 3, 5)
    assert rows["oakland"] == (users[2], 1, 2, 3)
    assert rows["berkeley"] == (users[3], 1, 2, 2)


def test_candidate_profiles(civicq_db):
    with civicq_db.connect() as conn:
        row = conn.execute("SELECT answer_count, rebuttal_count, endorsement_count, account_email "
                           "FROM candidate_profiles WHERE candidate_id = 1").fetchone()
    # Helen Park: two published answers (questions 1 and 2), no rebuttal, two endorsements.
    assert row == (2, 0, 2, "candidate1@example.com")


def test_user_activity_summary(civicq_db, data):
    uid = 13  # voter1
    asked = sum(1 for q in data.QUESTIONS if q[2] == uid and not q[7])
    cast = sum(1 for v in data.vote_rows() if v[2] == uid)
    with civicq_db.connect() as conn:
        row = conn.execute("SELECT questions_asked, votes_cast FROM user_activity_summary WHERE user_id = %s",
                           (uid,)).fetchone()
    assert row == (asked, cast)


def test_video_answer_stats(civicq_db):
    with civicq_db.connect() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT video_answer_id, tracked_views, has_transcript, rebuttal_count, claim_count "
            "FROM video_answer_stats")}
    # 24 views spread over answers 1..8 (three each); answer 9 has none and no transcript.
    assert rows[1] == (3, True, 1, 1)
    assert rows[9] == (0, False, 0, 0)


def test_moderation_queue_holds_open_reports_oldest_first(civicq_db):
    with civicq_db.connect() as conn:
        rows = conn.execute("SELECT report_id, reports_on_target FROM moderation_queue WHERE item = 'report'").fetchall()
    assert rows == [(2, 1), (3, 1)]


def test_trending_questions_count_only_the_last_day(civicq_db, data):
    expected = Counter()
    for _id, qid, _uid, _value, hours in data.vote_rows():
        q = data.QUESTIONS[qid - 1]
        if hours < 24 and q[4] in ("approved", "answered") and not q[7]:
            expected[qid] += 1
    with civicq_db.connect() as conn:
        rows = dict(conn.execute("SELECT question_id, votes_24h FROM trending_questions").fetchall())
    assert rows == dict(expected)


def test_recent_audit_trail_shows_the_last_seven_days(civicq_db):
    with civicq_db.connect() as conn:
        rows = conn.execute("SELECT id, actor_email FROM recent_audit_trail").fetchall()
    # Event 7 (200 hours ago) is older than seven days; the newest comes first.
    assert [r[0] for r in rows] == [8, 4, 6, 5, 3, 2, 1] and rows[0][1] == "admin@civicq.com"


def test_refresh_all_materialized_views_refreshes_concurrently(civicq_db):
    with civicq_db.connect() as conn:
        conn.execute("INSERT INTO votes (question_id, user_id, value) SELECT 3, id, 1 FROM users WHERE role = 'voter' "
                     "AND id NOT IN (SELECT user_id FROM votes WHERE question_id = 3) ORDER BY id LIMIT 1")
        rows = conn.execute("SELECT view_name, refreshed_concurrently FROM refresh_all_materialized_views()")
        assert dict(rows.fetchall()) == {"city_dashboard": True, "contest_summary": True,
                                         "popular_questions": True, "user_activity_summary": True}
        upvotes = conn.execute("SELECT upvotes FROM popular_questions WHERE question_id = 3").fetchone()[0]
        direct = conn.execute("SELECT count(*) FROM votes WHERE question_id = 3 AND value = 1").fetchone()[0]
    assert upvotes == direct


def test_reset_is_refused_on_a_production_target(civicq_db):
    project, target = civicq_db.project()  # CIVICQ_DATABASE_URL targets count as production
    with pytest.raises(InputError, match="refusing to reset target 'env'"):
        reset(project, target)


def test_seed_without_schema_says_to_migrate(db):
    project, target = db.project()
    with pytest.raises(InputError, match="civicq-ops db migrate"):
        seed(project, target)
