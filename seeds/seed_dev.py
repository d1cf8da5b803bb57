"""CivicQ development data: three cities, 32 users in every role, ballots, contests, candidates,
questions with votes, video answers, moderation items, and the four test credentials.

Deterministic and idempotent: every row has a fixed id and is inserted with ON CONFLICT DO NOTHING,
so seeding twice adds nothing. Passwords are stored as scrypt hashes, never as text.

Test credentials:
    admin@civicq.com / admin123            voter1@example.com / password123
    candidate1@example.com / password123   clerk@san-francisco.gov / password123

Run it with `civicq-ops db seed` (or `--scale N` for a large generated data set: see scale.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                            dklen=len(base64.b64decode(digest)))
    return hmac.compare_digest(actual, base64.b64decode(digest))


def seed_salt(email: str) -> bytes:
    """A per-user salt that is stable across runs, so seeding stays deterministic."""
    return hashlib.sha256(b"civicq-dev-seed:" + email.encode()).digest()[:16]


def dev_hash(email: str, password: str) -> str:
    """The user's hash: precomputed for the development users (DEV_HASHES), else computed."""
    return DEV_HASHES.get((email, password)) or hash_password(password, seed_salt(email))


# The development users' hashes, computed once: 32 scrypt hashes cost over a second per `db seed`.
# Regenerate after changing USERS or the scrypt parameters; tests/civicq/test_dev_hashes.py checks
# every entry against hash_password.
DEV_HASHES: dict[tuple[str, str], str] = {
    ('admin@civicq.com', 'admin123'): 'scrypt$16384$8$1$E5dKigZV7Ubn/9lbL110Yg==$nnpKpmHY1P2GwR54+WurLnANPyiG6i0n4B4zDZ0vbQ0=',
    ('clerk@san-francisco.gov', 'password123'): 'scrypt$16384$8$1$lAGqi+q/Z09xyCgBZlc1Gw==$i5oDDEeO0mnZJW18RdgoMZauy1/LFIkQplj3Fwv6mHE=',
    ('clerk@oaklandca.gov', 'password123'): 'scrypt$16384$8$1$4iIubE2W5vGYAy7T7cJNeg==$NDA8pDddn8KqJvwIODSOVWYqn9KttkhRPdmsoqRcEwg=',
    ('clerk@berkeleyca.gov', 'password123'): 'scrypt$16384$8$1$wPtALz6We6QSgYm83PH+3Q==$BSkitOkEmQKpJ/hQdNtKCk2ff2ZegymFlsxuqijrhg8=',
    ('moderator1@civicq.com', 'password123'): 'scrypt$16384$8$1$CgPc7VmNLpEFY9/q//SYSw==$VSuqvV3lz4zV1eHWN3Rfa0LaIEAPiDrC2G/OqgCImfI=',
    ('moderator2@civicq.com', 'password123'): 'scrypt$16384$8$1$9PJuHMyMulkOHAwUE4GctQ==$sOC2FK92yC7dT51b20txJQrLHJnja11ZknHRcTATGHY=',
    ('candidate1@example.com', 'password123'): 'scrypt$16384$8$1$1xeY8jiORmM216FMT63fNQ==$mcIvgGsvPcfQRPKNXSifAaWJNyIXa1i7SQKdtCxzLqc=',
    ('candidate2@example.com', 'password123'): 'scrypt$16384$8$1$PXNf+Quyh9VZDN8OzJvloQ==$Pfs/Dq+u2SEEkIIQGu2jEzWpokw9ZjPXWxg0LP+9kIY=',
    ('candidate3@example.com', 'password123'): 'scrypt$16384$8$1$6Veco3R9LFm10qo7z0jztQ==$vWA/BPJqW8v0IUTkJzn//Ls4nckO34jz2L3Jn7nF3hI=',
    ('candidate4@example.com', 'password123'): 'scrypt$16384$8$1$UYlyF4NJ/U+SiiZ/U2/jSg==$nYfpAZBBQ4lH0L5ivfro7Z5O/wQ1v/8m6slCi/yNV/c=',
    ('candidate5@example.com', 'password123'): 'scrypt$16384$8$1$T/japVoXlwzLYbk3DYRLmQ==$nCt9GLkL9UiXOT3JQ3FOVSI1lffd+kE/se0hVWB6kJ4=',
    ('candidate6@example.com', 'password123'): 'scrypt$16384$8$1$Em5sato+bHMA9lDw+HPqsw==$89m28E+r9YoZ5K3FFQg8oUuqYncxGxrshG9WjGNM2Fg=',
    ('voter1@example.com', 'password123'): 'scrypt$16384$8$1$bP4c4WBLYbL5aZqb8TSmRA==$0XsPR0cxaxlkteECt2/WrJ8emQrr7IdnkS/xGdja66s=',
    ('voter2@example.com', 'password123'): 'scrypt$16384$8$1$Cy/iPzSJsd6CQQ/3W5dEdg==$JAvhAove0te6BZcmWwzI1UFtKV+GtdDCFValpXY3jXE=',
    ('voter3@example.com', 'password123'): 'scrypt$16384$8$1$/oH7f4bw9qcjhifwOwQXZA==$sv7fmrhwmBEBfn21nBae4/+ZEndyLB3WbbBTGciP7wY=',
    ('voter4@example.com', 'password123'): 'scrypt$16384$8$1$iscESpFGsa15kqQFtCbzwQ==$pWk7FF4YBzNWf4y8NhzYw/bnYLF2ngTQ4BeCALi3Brg=',
    ('voter5@example.com', 'password123'): 'scrypt$16384$8$1$2fxu9hlhKWREdiUbt8qa8A==$3SlFf3mQDgQ2xQAc1SJujE+edRiYO8ucw1FwhZPGsCQ=',
    ('voter6@example.com', 'password123'): 'scrypt$16384$8$1$ECypjNSrrVvJ7IJpOfM90g==$IOlaMT3CtFyB9I4Le9BZx+BXBh/7JEsnZtvjOqTHuno=',
    ('voter7@example.com', 'password123'): 'scrypt$16384$8$1$Wt4HA1xkW3jNOacsMqGZFw==$Cqa8vm1lChnDjgHUyY1ohXmcLd3+sRITBDHRWB4Hqbc=',
    ('voter8@example.com', 'password123'): 'scrypt$16384$8$1$rO8pdxtlYEcKLiEY84Tvpg==$KgbPwaLGXC+Je5OvE3p5g4GIJE3IcNmB9ueYp/ykqCs=',
    ('voter9@example.com', 'password123'): 'scrypt$16384$8$1$pb1j7HhQM5kB4UDf9f8B6w==$myGJomKyNTM5WXqjXh7B12ZzjJO6JpMMgPhKN1jfS+k=',
    ('voter10@example.com', 'password123'): 'scrypt$16384$8$1$4NWhdTgOyN0pj7rigqZhwA==$zxs/1FM+JSU33HGFf6BnbmzbZ+SBCT5Bscuyv4AFw6k=',
    ('voter11@example.com', 'password123'): 'scrypt$16384$8$1$Sd6QHmbpL51ZAhQZy6pC/w==$C/4bpSzO82OEGypYxJCYgDuuY8kb0Z3SFHlVZtF1L4k=',
    ('voter12@example.com', 'password123'): 'scrypt$16384$8$1$H/ss6CIHcWv/s+p80pYm9g==$UugIpoQCsT211eu5Y6r/6NnXt/rkStBgDkwQZUU/fwE=',
    ('voter13@example.com', 'password123'): 'scrypt$16384$8$1$j5tm9c6Xg/PdCxpoBizGLw==$t7cUqJ6zkaTbIzRzJWzqa3oCZpQ0lMTYvR6BaiP2K6M=',
    ('voter14@example.com', 'password123'): 'scrypt$16384$8$1$FwendJkIvO29oFIYVlc3tQ==$u467boNjrNtW4h1vSRcUdv91m11Gvc/ft5EeySDMKkI=',
    ('voter15@example.com', 'password123'): 'scrypt$16384$8$1$sCXbrqKw5G7/q9vMe2ewJw==$AOgbpoPYZP4KexTonUEp5yBaWKbkwBdoOwjSy4CvzYY=',
    ('voter16@example.com', 'password123'): 'scrypt$16384$8$1$E6cZujPuSKdcDbhzhRI+iw==$/v/nhip4fjht7G/v5doCkOnkztttxOhWOZL3C2uYqCI=',
    ('voter17@example.com', 'password123'): 'scrypt$16384$8$1$wnfdINX4Miw/egrSsKamCA==$QBNiIMpxbHpqczxW19olKG8S8ccJTrRVZd9FgfZt/yg=',
    ('voter18@example.com', 'password123'): 'scrypt$16384$8$1$oU6Cdnogs7h/CrDG1X2VNg==$bX32PafQ994BxSzXnUh1oyHpzz0TQYqDoxs+UOAbiWA=',
    ('voter19@example.com', 'password123'): 'scrypt$16384$8$1$KcIxeQpCk7Pr6U3FeV1n2Q==$7cFPHuX9agJrkNrHcCrXL11n8j8zqaHU9vbOCo7A9Gg=',
    ('voter20@example.com', 'password123'): 'scrypt$16384$8$1$Zmho/mFySjKIGA5Jwv4zOw==$f6sv+WF6CPi4O01+hNAF9kqWI04DXRu76Ylom9lUCOE=',
}


# -- the data -----------------------------------------------------------------------------------

CITIES = [
    # id, name, state, slug, population
    (1, "San Francisco", "CA", "san-francisco", 808437),
    (2, "Oakland", "CA", "oakland", 433031),
    (3, "Berkeley", "CA", "berkeley", 120972),
]

# id, email, password, full name, role, city_id
USERS = [
    (1, "admin@civicq.com", "admin123", "CivicQ Admin", "admin", 1),
    (2, "clerk@san-francisco.gov", "password123", "Rosa Delgado", "city_staff", 1),
    (3, "clerk@oaklandca.gov", "password123", "Marcus Bell", "city_staff", 2),
    (4, "clerk@berkeleyca.gov", "password123", "Priya Raman", "city_staff", 3),
    (5, "moderator1@civicq.com", "password123", "Jordan Kim", "moderator", 1),
    (6, "moderator2@civicq.com", "password123", "Alex Moreno", "moderator", 2),
    (7, "candidate1@example.com", "password123", "Helen Park", "candidate", 1),
    (8, "candidate2@example.com", "password123", "David Okafor", "candidate", 1),
    (9, "candidate3@example.com", "password123", "Maria Santos", "candidate", 1),
    (10, "candidate4@example.com", "password123", "James Whitfield", "candidate", 2),
    (11, "candidate5@example.com", "password123", "Aisha Johnson", "candidate", 2),
    (12, "candidate6@example.com", "password123", "Tom Nguyen", "candidate", 3),
] + [
    (12 + i, f"voter{i}@example.com", "password123", name, "voter", 1 + (i - 1) % 3)
    for i, name in enumerate(
        ["Emily Chen", "Carlos Rivera", "Sarah Goldberg", "Kevin O'Brien", "Fatima Hassan", "Liam Murphy",
         "Grace Lee", "Noah Williams", "Olivia Brown", "Ethan Davis", "Sofia Martinez", "Lucas Wilson",
         "Mia Anderson", "Benjamin Thomas", "Chloe Jackson", "Daniel White", "Ava Harris", "Samuel Clark",
         "Isabella Lewis", "Henry Walker"],
        start=1,
    )
]

VOTER_IDS = [u[0] for u in USERS if u[4] == "voter"]

# id, city_id, name, election_date, status
BALLOTS = [
    (1, 1, "November 2026 General Election", "2026-11-03", "published"),
    (2, 2, "November 2026 General Election", "2026-11-03", "published"),
    (3, 3, "November 2026 General Election", "2026-11-03", "published"),
    (4, 1, "June 2026 Primary Election", "2026-06-02", "archived"),
]

# id, ballot_id, title, type, seats, position
CONTESTS = [
    (1, 1, "Mayor of San Francisco", "office", 1, 1),
    (2, 1, "Board of Supervisors, District 5", "office", 1, 2),
    (3, 1, "Proposition A: Affordable Housing Bond", "measure", 1, 3),
    (4, 2, "Mayor of Oakland", "office", 1, 1),
    (5, 2, "Measure Q: Parks and Libraries Tax", "measure", 1, 2),
    (6, 3, "Berkeley City Council, District 4", "office", 1, 1),
    (7, 3, "Measure L: Transit Improvements", "measure", 1, 2),
]

# id, contest_id, user_id, name, party, status
CANDIDATES = [
    (1, 1, 7, "Helen Park", "Democratic", "verified"),
    (2, 1, 8, "David Okafor", "Independent", "verified"),
    (3, 1, 9, "Maria Santos", "Green", "verified"),
    (4, 2, None, "Dean Preston-Hall", "Democratic", "verified"),
    (5, 2, None, "Lena Fischer", "Republican", "pending"),
    (6, 4, 10, "James Whitfield", "Democratic", "verified"),
    (7, 4, 11, "Aisha Johnson", "Independent", "verified"),
    (8, 4, None, "Robert Tran", "Libertarian", "withdrawn"),
    (9, 6, 12, "Tom Nguyen", "Democratic", "verified"),
    (10, 6, None, "Kate Sullivan", "Independent", "verified"),
]

# id, contest_id, author_id (a voter), title, status, tags, hours ago, deleted
QUESTIONS = [
    (1, 1, 13, "How will you address the housing affordability crisis?", "answered", ["housing"], 72, False),
    (2, 1, 14, "What is your plan to reduce homelessness downtown?", "answered", ["housing", "public-safety"], 60, False),
    (3, 1, 15, "How will you improve Muni reliability?", "approved", ["transportation"], 30, False),
    (4, 1, 16, "Will you support more bike lanes on Market Street?", "approved", ["transportation"], 20, False),
    (5, 1, 17, "How will you balance the city budget?", "pending", ["budget"], 5, False),
    (6, 2, 18, "What would you do about Haight Street small businesses?", "approved", ["economy"], 48, False),
    (7, 2, 19, "How will you keep Golden Gate Park car-free?", "answered", ["environment"], 40, False),
    (8, 3, 20, "Who pays for the housing bond over 30 years?", "approved", ["housing", "budget"], 26, False),
    (9, 4, 14, "How will you reduce response times for 911 calls?", "answered", ["public-safety"], 50, False),
    (10, 4, 17, "What is your plan for the Oakland Coliseum site?", "approved", ["economy"], 10, False),
    (11, 4, 20, "How will you fund public schools in Oakland?", "approved", ["education"], 8, False),
    (12, 5, 23, "How much will Measure Q cost a typical homeowner?", "approved", ["budget"], 12, False),
    (13, 6, 15, "Where do you stand on the Ashby BART housing project?", "answered", ["housing", "transportation"], 36, False),
    (14, 6, 18, "How will you make Telegraph Avenue safer at night?", "approved", ["public-safety"], 3, False),
    (15, 7, 21, "Which bus lines will Measure L improve first?", "approved", ["transportation"], 18, False),
    (16, 1, 22, "Spam question please ignore this one", "rejected", [], 90, True),
    (17, 2, 24, "Will you support rent control expansion?", "pending", ["housing"], 2, False),
    (18, 4, 25, "How will you make Lake Merritt cleaner?", "approved", ["environment"], 15, False),
]


def vote_rows() -> list[tuple[int, int, int, int, int]]:
    """(id, question_id, user_id, value, hours_ago): a fixed pattern, recomputable by tests."""
    rows = []
    next_id = 1
    for qid, _contest, _author, _title, _status, _tags, _hours, deleted in QUESTIONS:
        if deleted:
            continue  # a soft-deleted question keeps no votes
        for uid in VOTER_IDS:
            if (qid * 7 + uid * 3) % 5 < 3 and uid != QUESTIONS[qid - 1][2]:
                value = -1 if (qid + uid) % 4 == 0 else 1
                hours_ago = (qid * 5 + uid) % 48  # half within the last day
                rows.append((next_id, qid, uid, value, hours_ago))
                next_id += 1
    return rows


# videos: id, uploader_id, storage_key, duration, status
VIDEOS = [
    (1, 7, "videos/2026/q1-park.mp4", 184, "ready"),
    (2, 8, "videos/2026/q1-okafor.mp4", 151, "ready"),
    (3, 7, "videos/2026/q2-park.mp4", 203, "ready"),
    (4, 9, "videos/2026/q2-santos.mp4", 177, "ready"),
    (5, None, "videos/2026/q7-preston-hall.mp4", 122, "ready"),
    (6, 10, "videos/2026/q9-whitfield.mp4", 165, "ready"),
    (7, 11, "videos/2026/q9-johnson.mp4", 140, "ready"),
    (8, 12, "videos/2026/q13-nguyen.mp4", 198, "ready"),
    (9, None, "videos/2026/q13-sullivan.mp4", 131, "processing"),
]

# video answers: id, question_id, candidate_id, video_id, transcript (None: not transcribed), status
VIDEO_ANSWERS = [
    (1, 1, 1, 1, "We will build twenty thousand homes near transit and speed up permits.", "published"),
    (2, 1, 2, 2, "Housing costs are driven by supply; I will streamline approvals.", "published"),
    (3, 2, 1, 3, "Supportive housing with services, and outreach teams in every district.", "published"),
    (4, 2, 3, 4, "Housing first works: we fund it and measure outcomes publicly.", "published"),
    (5, 7, 4, 5, "The park stays car-free; we add shuttles for access.", "published"),
    (6, 9, 6, 6, "We will hire dispatchers and fund a civilian crisis response team.", "published"),
    (7, 9, 7, 7, "Response times improve with staffing and better call triage.", "published"),
    (8, 13, 9, 8, "I support the Ashby project with strong affordability requirements.", "published"),
    (9, 13, 10, 9, None, "draft"),
]

REBUTTALS = [
    (1, 1, 2, "Permits alone will not do it without infrastructure funding."),
    (2, 6, 7, "Civilian teams need years to scale; we need staffing now."),
]

# claims: id, video_answer_id, text, verdict, reviewed_by
CLAIMS = [
    (1, 1, "Twenty thousand homes near transit by 2030", "unverified", None),
    (2, 6, "Dispatch staffing is 30 percent below target", "mostly_true", 5),
    (3, 8, "The Ashby project includes 35 percent affordable units", "true", 5),
]

# reports: id, reporter_id, target_type, target_id, reason, status, hours ago
REPORTS = [
    (1, 14, "question", 16, "spam", "resolved", 80),
    (2, 15, "video_answer", 2, "misinformation", "pending", 6),
    (3, 16, "question", 10, "off_topic", "pending", 4),
    (4, 17, "question", 10, "off_topic", "dismissed", 9),
]

# moderation actions: id, moderator_id, report_id, target_type, target_id, action, reason
MODERATION_ACTIONS = [
    (1, 5, 1, "question", 16, "reject", "Spam"),
    (2, 6, 4, "question", 10, "approve", "On topic for the mayoral race"),
]

TOPICS = [
    (1, "Housing", "housing"), (2, "Transportation", "transportation"), (3, "Public Safety", "public-safety"),
    (4, "Education", "education"), (5, "Environment", "environment"), (6, "Budget", "budget"),
    (7, "Economy", "economy"),
]

ENDORSEMENTS = [
    (1, 1, "San Francisco Chronicle", "newspaper"),
    (2, 1, "SF Tenants Union", "organization"),
    (3, 2, "Small Business Coalition", "organization"),
    (4, 6, "Oakland Firefighters Local 55", "organization"),
    (5, 9, "Berkeley Democratic Club", "party"),
]


def _ago(hours: float) -> str:
    return f"now() - interval '{float(hours)} hours'"


def seed(conn) -> dict[str, int]:
    """Insert the development data; returns how many rows each table received (0 on a re-run)."""
    inserted: dict[str, int] = {}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('civicq-ops:seed'))")

        def put(table: str, columns: list[str], rows: list[tuple], exprs: dict[str, str] | None = None) -> None:
            """Insert rows; `exprs` maps a column to SQL using the value as parameter (e.g. an interval)."""
            exprs = exprs or {}
            placeholders = ", ".join(exprs.get(c, "%s") for c in columns)
            cols = ", ".join(columns)
            count = 0
            if rows:  # one pipelined batch per table: no round trip per row (a re-run inserts nothing)
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({placeholders}) ON CONFLICT DO NOTHING", rows)
                    count = cur.rowcount
            inserted[table] = inserted.get(table, 0) + count

        ago = "now() - make_interval(hours => %s)"
        put("cities", ["id", "name", "state", "slug", "population"], CITIES)
        existing = {r[0] for r in conn.execute("SELECT lower(email) FROM users")}
        users = [
            (uid, email, dev_hash(email, pw), name, role, city, role != "voter" or uid % 4 != 0,
             _interests(uid))
            for uid, email, pw, name, role, city in USERS
            if email.lower() not in existing
        ]
        put("users", ["id", "email", "password_hash", "full_name", "role", "city_id", "is_verified", "interests"],
            users)
        put("ballots", ["id", "city_id", "name", "election_date", "status"], BALLOTS)
        put("contests", ["id", "ballot_id", "title", "contest_type", "seats", "position"], CONTESTS)
        put("candidates", ["id", "contest_id", "user_id", "name", "party", "status"], CANDIDATES)
        put("questions", ["id", "contest_id", "author_id", "title", "body", "status", "tags", "created_at",
                          "deleted_at"],
            [(q, c, a, t, f"{t} Asked by a voter in the district.", st, tags, h, h if deleted else None)
             for q, c, a, t, st, tags, h, deleted in QUESTIONS],
            {"created_at": ago, "deleted_at": "now() - make_interval(hours => %s::int - 1)"})
        put("votes", ["id", "question_id", "user_id", "value", "created_at"], vote_rows(), {"created_at": ago})
        conn.execute(
            "UPDATE questions q SET vote_score = s.score FROM "
            "(SELECT question_id, sum(value)::int AS score FROM votes GROUP BY question_id) s "
            "WHERE s.question_id = q.id AND q.vote_score IS DISTINCT FROM s.score"
        )
        put("videos", ["id", "uploader_id", "storage_key", "duration_seconds", "status"], VIDEOS)
        put("video_answers", ["id", "question_id", "candidate_id", "video_id", "transcript", "status",
                              "view_count", "published_at"],
            [(i, q, c, v, t, st, 40 * i + 7, st == "published") for i, q, c, v, t, st in VIDEO_ANSWERS],
            {"published_at": "CASE WHEN %s THEN now() - interval '1 day' END"})
        put("rebuttals", ["id", "video_answer_id", "candidate_id", "body"], REBUTTALS)
        put("claims", ["id", "video_answer_id", "claim_text", "verdict", "reviewed_by", "reviewed_at"],
            [(i, va, t, v, r, r is not None) for i, va, t, v, r in CLAIMS],
            {"reviewed_at": "CASE WHEN %s THEN now() END"})
        put("reports", ["id", "reporter_id", "target_type", "target_id", "reason", "status", "created_at",
                        "resolved_at"],
            [(i, rep, tt, tid, reason, st, h, st in ("resolved", "dismissed"))
             for i, rep, tt, tid, reason, st, h in REPORTS],
            {"created_at": ago, "resolved_at": "CASE WHEN %s THEN now() END"})
        put("moderation_actions", ["id", "moderator_id", "report_id", "target_type", "target_id", "action", "reason"],
            MODERATION_ACTIONS)
        put("topics", ["id", "name", "slug"], TOPICS)
        slugs = {slug: tid for tid, _n, slug in TOPICS}
        put("question_topics", ["question_id", "topic_id"],
            [(q, slugs[tag]) for q, _c, _a, _t, _s, tags, _h, _d in QUESTIONS for tag in tags])
        put("endorsements", ["id", "candidate_id", "endorser_name", "endorser_type"], ENDORSEMENTS)
        put("follows", ["id", "follower_id", "followee_type", "followee_id"],
            [(i + 1, uid, "candidate", 1 + (uid % 10)) for i, uid in enumerate(VOTER_IDS)])
        put("comments", ["id", "question_id", "author_id", "parent_id", "body"],
            [(1, 1, 18, None, "Thanks for asking this."), (2, 1, 19, 1, "Agreed, it matters most."),
             (3, 3, 20, None, "The N line is always late."), (4, 9, 21, None, "Response times are too slow."),
             (5, 13, 22, None, "Ashby needs more affordable units.")])
        put("video_views", ["id", "video_answer_id", "user_id", "watched_seconds", "completed"],
            [(i + 1, 1 + i % 8, VOTER_IDS[i % len(VOTER_IDS)], 30 + (i * 37) % 170, i % 3 == 0) for i in range(24)])
        put("audit_logs", ["id", "actor_id", "action", "entity_type", "entity_id", "changes", "ip_address",
                           "created_at"],
            [(1, 1, "ballot.publish", "ballot", 1, json.dumps({"status": ["draft", "published"]}), "10.0.0.5", 100),
             (2, 2, "contest.create", "contest", 2, json.dumps({"title": "Board of Supervisors, District 5"}),
              "10.0.0.6", 90),
             (3, 5, "question.reject", "question", 16, json.dumps({"status": ["pending", "rejected"]}),
              "10.0.0.7", 80),
             (4, 6, "report.dismiss", "report", 4, json.dumps({"status": ["pending", "dismissed"]}), "10.0.0.8", 9),
             (5, 7, "video_answer.publish", "video_answer", 1, "{}", None, 30),
             (6, 1, "user.verify", "user", 13, json.dumps({"is_verified": [False, True]}), "10.0.0.5", 20),
             (7, 3, "ballot.publish", "ballot", 2, json.dumps({"status": ["draft", "published"]}), "10.0.0.9", 200),
             (8, 1, "settings.update", "city", 1, json.dumps({"timezone": "America/Los_Angeles"}), "10.0.0.5", 1)],
            {"created_at": ago})
        put("notifications", ["id", "user_id", "kind", "payload"],
            [(i + 1, uid, "answer.published", json.dumps({"question_id": 1})) for i, uid in enumerate(VOTER_IDS[:8])])
        put("sessions", ["id", "user_id", "token_hash", "expires_at"],
            [(i, uid, hashlib.sha256(f"dev-session-{uid}".encode()).hexdigest(), "2099-01-01T00:00:00Z")
             for i, uid in enumerate([1, 2, 7, 13], start=1)])
        for table in ("cities", "users", "ballots", "contests", "candidates", "questions", "votes", "videos",
                      "video_answers", "rebuttals", "claims", "reports", "moderation_actions", "topics",
                      "endorsements", "follows", "comments", "video_views", "audit_logs", "notifications",
                      "sessions"):
            # Fixed ids leave the identity sequence behind; move it past them so the app can insert.
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"greatest((SELECT max(id) FROM {table}), 1))"
            )
    return inserted


def _interests(uid: int) -> list[str]:
    slugs = [t[2] for t in TOPICS]
    return [slugs[uid % len(slugs)], slugs[(uid * 3) % len(slugs)]]
