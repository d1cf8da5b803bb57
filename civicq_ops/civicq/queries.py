"""The CivicQ application's common queries, written the way its indexes expect them.

One place for the patterns the index migration (0002) was built for, used by bench/indexes.py to
measure them and quoted in docs/OPTIMIZATION_GUIDE.md. Each is one statement with named bind
parameters. The login looks a user up by `lower(email)`, because the only index on email is the
unique one on `lower(email)` (0001): `WHERE email = %(email)s` cannot use it and reads the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    name: str
    why: str
    sql: str
    index: str  # the index it is meant to use (from 0001 or 0002)


PATTERNS: list[Pattern] = [
    Pattern("login-by-email", "log a user in by email, whatever its case",
            "SELECT id, password_hash, role FROM users WHERE lower(email) = lower(%(email)s)",
            "users_email_lower_key"),
    Pattern("questions-by-city-status", "a city's questions in one status, newest first",
            "SELECT q.id, q.title, q.created_at FROM questions q "
            "JOIN contests c ON c.id = q.contest_id JOIN ballots b ON b.id = c.ballot_id "
            "WHERE b.city_id = %(city_id)s AND q.status = %(status)s AND q.deleted_at IS NULL "
            "ORDER BY q.created_at DESC LIMIT 20",
            "questions_status_created_idx"),
    Pattern("contest-top-questions", "a contest's questions by score",
            "SELECT id, title, vote_score FROM questions WHERE contest_id = %(contest_id)s AND deleted_at IS NULL "
            "ORDER BY vote_score DESC LIMIT 20",
            "questions_contest_score_idx"),
    Pattern("trending", "questions by votes in the last 24 hours",
            "SELECT question_id, count(*) AS votes FROM votes WHERE created_at > now() - interval '24 hours' "
            "GROUP BY question_id ORDER BY votes DESC LIMIT 20",
            "votes_created_at_idx"),
    Pattern("votes-by-user", "a user's latest votes",
            "SELECT question_id, value, created_at FROM votes WHERE user_id = %(user_id)s "
            "ORDER BY created_at DESC LIMIT 50",
            "votes_user_created_idx"),
    Pattern("full-text-search", "questions matching words",
            "SELECT id, title FROM questions WHERE search_vector @@ websearch_to_tsquery('english', %(words)s) LIMIT 20",
            "questions_search_gin"),
    Pattern("moderation-queue", "questions awaiting approval, oldest first",
            "SELECT id, title, created_at FROM questions WHERE status = 'pending' AND deleted_at IS NULL "
            "ORDER BY created_at LIMIT 50",
            "questions_pending_idx"),
    Pattern("open-reports", "open reports, oldest first",
            "SELECT id, target_type, target_id FROM reports WHERE status IN ('pending', 'reviewing') "
            "ORDER BY created_at LIMIT 50",
            "reports_open_idx"),
    Pattern("unread-notifications", "a user's unread notifications",
            "SELECT id, kind FROM notifications WHERE user_id = %(user_id)s AND read_at IS NULL",
            "notifications_unread_idx"),
    Pattern("candidate-followers", "who follows a candidate",
            "SELECT follower_id FROM follows WHERE followee_type = 'candidate' AND followee_id = %(candidate_id)s",
            "follows_candidates_idx"),
]

# The form the issue found: exact email, which no index serves (kept to measure it, never to use).
LOGIN_EXACT_EMAIL = "SELECT id, password_hash, role FROM users WHERE email = %(email)s"
