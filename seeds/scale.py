"""A large, realistic CivicQ data set for load tests and benchmarks, loaded through COPY.

One scale unit is a synthetic city with 200 users, 2 contests, 50 questions, 10,000 votes,
20 video answers and 200 audit events; `--scale 100` makes a million votes. Units are numbered
and a unit already present is skipped, so repeating a run adds nothing. A unit's rows come from
random.Random(unit): the same unit is the same data in any database (only ids and the clock move).

Speed (issue 14): values are drawn in bulk (random.choices for the few per unit, Random.randbytes
for the 20,000 vote values and times), votes are built at C level (_put_column) and sent one unit per
COPY chunk while the server parses the previous one (and, when no foreign key trigger checks them,
before the other tables, while their rows are drawn), in COPY's binary format (no text to parse:
a million text timestamps alone cost the server 0.2 s), and the first load truncates votes
(keeping the rows it had) to load it with COPY FREEZE. civicq_ops/civicq/seeding.py builds the
indexes after.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import sys
from array import array
from datetime import UTC, datetime, timedelta

USERS_PER_UNIT = 200
QUESTIONS_PER_UNIT = 50
AUDIT_PER_UNIT = 200
# The tables seed_scale loads: on a first load civicq-ops builds their secondary indexes after COPY.
TABLES = ("cities", "users", "ballots", "contests", "candidates", "questions", "votes", "videos", "video_answers",
          "audit_logs")


def shared_hash() -> str:
    """One scrypt hash of "password123" that generated users share (hashing 20,000 is wasted time):
    SHARED_HASH, computed."""
    salt = b"load-seed-salt16"
    digest = hashlib.scrypt(b"password123", salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


# shared_hash(), computed once: it cost 0.08 s per scaled seed. tests/civicq/test_dev_hashes.py checks it.
SHARED_HASH = "scrypt$16384$8$1$bG9hZC1zZWVkLXNhbHQxNg==$7fUL23aYqqjw+yffclX+4d+FcZy3BKEllJ6b133ADVc="


def _timestamps(now: datetime, max_hours: int) -> list[str]:
    """'now minus h hours' as COPY text for every h: formatting once beats once per row."""
    return [(now - timedelta(hours=h)).isoformat() for h in range(max_hours + 1)]


# COPY's binary format (the COPY page of the PostgreSQL manual): a signature, 32 bits of flags and
# the length of a header extension (none) first, -1 as a field count last; a row is its field count
# (int16) and each field as its length (int32) and its value, big-endian. A vote: id, question_id and
# user_id (bigint), value (smallint), created_at (timestamptz: microseconds since 2000-01-01 UTC).
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
# A vote row with its field count and field lengths and every value zero: 56 bytes, each value at
# its offset below. A unit's rows are this repeated, then each column written into them by C-level
# strided slice assignments (no Python object per row or value: building votes one tuple per row
# cost more client time than the server's COPY of them).
_VOTE_SKELETON = struct.pack(">hi8xi8xi8xi2xi8x", 5, 8, 8, 8, 2, 8)
_VOTE_ID, _VOTE_QUESTION, _VOTE_USER, _VOTE_VALUE, _VOTE_CREATED = 6, 18, 30, 42, 48
_VOTE_COLUMNS = "id, question_id, user_id, value, created_at"
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _binary_timestamps(now: datetime, max_hours: int) -> list[int]:
    """The instants of _timestamps() as timestamptz values of COPY's binary format."""
    return [(now - timedelta(hours=h) - _POSTGRES_EPOCH) // timedelta(microseconds=1) for h in range(max_hours + 1)]


def units_present(conn) -> set[int]:
    rows = conn.execute("SELECT slug FROM cities WHERE slug LIKE 'loadtown-%'").fetchall()
    return {int(r[0].rsplit("-", 1)[1]) for r in rows}


def _reserve(conn, table: str, count: int) -> int:
    """Take `count` ids from the table's identity sequence in one call; returns the first."""
    seq = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
    last = conn.execute(
        "SELECT setval(%s::regclass, greatest(nextval(%s::regclass), (SELECT coalesce(max(id), 0) + 1 FROM "
        + table + ")) + %s - 1)",
        (seq, seq, count),
    ).fetchone()[0]
    return last - count + 1


def _copy(conn, table: str, columns: str, chunks, freeze: bool = False) -> int:
    """COPY the text `chunks` (strings of whole lines) into `table`; returns the rows sent. Chunks
    are written as they are made, so the server parses one while Python builds the next."""
    rows = 0
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN" + (" (FREEZE)" if freeze else "")) as copy:
        for chunk in chunks:
            copy.write(chunk)
            rows += chunk.count("\n")
    return rows


def _truncate_keeping_rows(conn, table: str, columns: str) -> bytes | None:
    """Empty `table` in this (sub)transaction so COPY FREEZE may load it, as pgbench -i does: rows
    arrive frozen and all-visible, so index-only scans (the view refresh after the load) skip a
    heap fetch per row, and VACUUM has nothing to freeze later. Returns the rows it held, in COPY's
    binary format without header and trailer, to load again, or None (nothing done) when a foreign
    key points at the table. The usual TRUNCATE caveat applies: a transaction whose snapshot
    predates the commit sees it empty."""
    if conn.execute("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = %s::regclass)",
                    (table,)).fetchone()[0]:
        return None
    with conn.cursor().copy(f"COPY (SELECT {columns} FROM {table} ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
        kept = b"".join(copy)
    conn.execute(f"TRUNCATE {table}")
    extension = int.from_bytes(kept[15:19], "big")  # after the signature (11 bytes) and the flags (4)
    return kept[19 + extension:-len(_BINARY_TRAILER)]


# A vote is up with probability 179/256 (0.70): drawn as random bytes (Random.randbytes, one C call
# for a unit), a byte below 179 is an up vote. _UP maps a byte to 1 (up) or 0 (down); the value's
# two bytes (smallint 1 or -1, big-endian) are the up/down codes mapped again.
_UP = bytes(1 if b < 179 else 0 for b in range(256))
_VALUE_HIGH = bytes([0xFF, 0x00]) + bytes(254)
_VALUE_LOW = bytes([0xFF, 0x01]) + bytes(254)


def _big_endian(values: array) -> bytes:
    """The 8-byte integers of `values` (array 'q') as COPY's binary format has them."""
    if sys.byteorder == "little":
        values.byteswap()
    return values.tobytes()


def _put_column(rows: bytearray, offset: int, width: int, data: bytes) -> None:
    """Write `data` (one `width`-byte value per row) into each row of `rows` at `offset`: one strided
    slice assignment per byte of the width."""
    size = len(_VOTE_SKELETON)
    for k in range(width):
        rows[offset + k::size] = data[k::width]


def seed_scale(conn, scale: int, progress=None) -> dict[str, int]:
    """Add scale units 1..`scale` that are not there yet. Returns rows added per table."""
    added = {"cities": 0, "users": 0, "ballots": 0, "contests": 0, "questions": 0, "votes": 0,
             "videos": 0, "video_answers": 0, "candidates": 0, "audit_logs": 0}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('civicq-ops:seed'))")
        present = units_present(conn)
        missing = [u for u in range(1, scale + 1) if u not in present]
        if not missing:
            return added
        n = len(missing)
        city0 = _reserve(conn, "cities", n)
        user0 = _reserve(conn, "users", n * USERS_PER_UNIT)
        ballot0 = _reserve(conn, "ballots", n)
        contest0 = _reserve(conn, "contests", 2 * n)
        cand0 = _reserve(conn, "candidates", 4 * n)
        q0 = _reserve(conn, "questions", n * QUESTIONS_PER_UNIT)
        vote0 = _reserve(conn, "votes", n * USERS_PER_UNIT * QUESTIONS_PER_UNIT)
        video0 = _reserve(conn, "videos", 20 * n)
        va0 = _reserve(conn, "video_answers", 20 * n)
        audit0 = _reserve(conn, "audit_logs", n * AUDIT_PER_UNIT)

        # Generated rows reference only rows generated here, so foreign key checks (one trigger call
        # per row and key) are skipped for superusers, as pg_restore --disable-triggers does.
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        if superuser:
            conn.execute("SET LOCAL session_replication_role = replica")
        pw_hash = SHARED_HASH
        now = datetime.now(UTC).replace(microsecond=0)
        ts = _timestamps(now, 24 * 60)
        vote_ts = _binary_timestamps(now, 24 * 60)
        audit_ts = ts[: 24 * 30 + 1]
        cities, users, ballots, contests, cands, questions = [], [], [], [], [], []
        videos, answers, audits = [], [], []

        def draw_units():
            """Each unit's rows into the lists above; yields (k, its votes' up codes (1 up, 0 down) question by
            question, its generator) once the unit's other rows are drawn (the timestamps come last)."""
            for k, unit in enumerate(missing):
                yield k, *draw_unit(k, unit)

        def draw_unit(k: int, unit: int):
            rng = random.Random(unit)
            city = city0 + k
            cities.append(f"{city}\tLoadtown {unit}\tCA\tloadtown-{unit}\t{rng.randint(10_000, 900_000)}\n")
            base_u = user0 + k * USERS_PER_UNIT
            for i in range(USERS_PER_UNIT):
                role = "voter" if i >= 10 else ("candidate" if i < 4 else "moderator" if i < 6 else "city_staff")
                users.append(f"{base_u + i}\tload-u{unit}-{i}@example.test\t{pw_hash}\tLoad User {unit}-{i}"
                             f"\t{role}\t{city}\t{'t' if i % 5 else 'f'}\n")
            ballot = ballot0 + k
            ballots.append(f"{ballot}\t{city}\tGeneral Election {unit}\t2026-11-03\tpublished\n")
            for c in range(2):
                contests.append(f"{contest0 + 2 * k + c}\t{ballot}\tContest {unit}-{c}\toffice\t1\t{c}\n")
            for c in range(4):
                cands.append(f"{cand0 + 4 * k + c}\t{contest0 + 2 * k + c // 2}\t{base_u + c}\tCandidate {unit}-{c}"
                             f"\tverified\n")
            # Every user votes on every question of the unit, once: drawn first, so each question's
            # vote_score goes into its own row (no UPDATE of the questions after the votes).
            ups = rng.randbytes(USERS_PER_UNIT * QUESTIONS_PER_UNIT).translate(_UP)  # 1 up, 0 down
            base_q = q0 + k * QUESTIONS_PER_UNIT
            authors = rng.choices(range(base_u + 10, base_u + USERS_PER_UNIT), k=QUESTIONS_PER_UNIT)
            asked = rng.choices(ts[1:], k=QUESTIONS_PER_UNIT)
            for j in range(QUESTIONS_PER_UNIT):
                up = ups.count(1, j * USERS_PER_UNIT, (j + 1) * USERS_PER_UNIT)
                status = "answered" if j < 10 else "approved" if j < 45 else "pending"
                questions.append(f"{base_q + j}\t{contest0 + 2 * k + j % 2}\t{authors[j]}\tLoad question {unit}-{j} "
                                 f"about city services\tGenerated for load testing.\t{status}"
                                 f"\t{{}}\t{asked[j]}\t{2 * up - USERS_PER_UNIT}\n")
            for a in range(20):
                v = video0 + 20 * k + a
                videos.append(f"{v}\t{base_u + a % 4}\tload/{unit}/{a}.mp4\t{rng.randint(60, 300)}\tready\n")
                transcript = "\\N" if a == 19 else f"Answer {unit}-{a} about city services and budgets."
                answers.append(f"{va0 + 20 * k + a}\t{base_q + a // 2}\t{cand0 + 4 * k + (a % 2) + 2 * ((a // 2) % 2)}"
                               f"\t{v}\t{transcript}\tpublished\t{rng.randint(0, 5000)}\n")
            actors = rng.choices(range(base_u, base_u + USERS_PER_UNIT), k=AUDIT_PER_UNIT)
            entities = rng.choices(range(base_q, base_q + QUESTIONS_PER_UNIT), k=AUDIT_PER_UNIT)
            when = rng.choices(audit_ts, k=AUDIT_PER_UNIT)
            first = audit0 + k * AUDIT_PER_UNIT
            audits.extend(f"{first + a}\t{actor}\tquestion.vote\tquestion\t{entity}\t{{}}\t{at}\n"
                          for a, actor, entity, at in zip(range(AUDIT_PER_UNIT), actors, entities, when, strict=True))
            return ups, rng

        per_unit = USERS_PER_UNIT * QUESTIONS_PER_UNIT
        # A vote's created_at: one of vote_ts, picked by two random bytes (65,536 entries, each
        # timestamp as often as any other give or take one).
        by_pick = [vote_ts[i * len(vote_ts) >> 16] for i in range(1 << 16)].__getitem__

        def vote_chunks(units):
            """The votes of one unit per chunk (10,000 rows), built while the server takes the last."""
            for k, ups, rng in units:
                rows = bytearray(_VOTE_SKELETON * per_unit)
                base_u, base_q = user0 + k * USERS_PER_UNIT, q0 + k * QUESTIONS_PER_UNIT
                first = vote0 + k * per_unit
                _put_column(rows, _VOTE_ID, 8, _big_endian(array("q", range(first, first + per_unit))))
                _put_column(rows, _VOTE_QUESTION, 8, b"".join(
                    (base_q + j).to_bytes(8, "big") * USERS_PER_UNIT for j in range(QUESTIONS_PER_UNIT)))
                _put_column(rows, _VOTE_USER, 8,
                            _big_endian(array("q", range(base_u, base_u + USERS_PER_UNIT))) * QUESTIONS_PER_UNIT)
                rows[_VOTE_VALUE::len(_VOTE_SKELETON)] = ups.translate(_VALUE_HIGH)
                rows[_VOTE_VALUE + 1::len(_VOTE_SKELETON)] = ups.translate(_VALUE_LOW)
                picks = array("H", rng.randbytes(2 * per_unit))
                _put_column(rows, _VOTE_CREATED, 8, _big_endian(array("q", map(by_pick, picks))))
                yield rows

        def whole(lines: list[str]):
            yield from ("".join(lines[i:i + 20000]) for i in range(0, len(lines), 20000))

        def parents():
            added["cities"] = _copy(conn, "cities", "id, name, state, slug, population", whole(cities))
            added["users"] = _copy(conn, "users", "id, email, password_hash, full_name, role, city_id, is_verified",
                                   whole(users))
            added["ballots"] = _copy(conn, "ballots", "id, city_id, name, election_date, status", whole(ballots))
            added["contests"] = _copy(conn, "contests", "id, ballot_id, title, contest_type, seats, position",
                                      whole(contests))
            added["candidates"] = _copy(conn, "candidates", "id, contest_id, user_id, name, status", whole(cands))
            added["questions"] = _copy(conn, "questions",
                                       "id, contest_id, author_id, title, body, status, tags, created_at, vote_score",
                                       whole(questions))

        # Parents before children while a foreign key trigger would look for a vote's question and
        # user. Without one (a superuser's load; votes' keys deferred to after the load, seeding.py),
        # votes go first and stream while the rest is drawn: the server parses one unit's votes
        # while Python draws the next unit, instead of waiting for every unit to be drawn.
        votes_first = superuser or not conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'votes'::regclass AND contype = 'f')"
        ).fetchone()[0]
        units = draw_units() if votes_first else list(draw_units())
        if not votes_first:
            parents()
        # The first load (votes holds at most the development set) goes in frozen; a later one appends.
        kept = None if present else _truncate_keeping_rows(conn, "votes", _VOTE_COLUMNS)
        with conn.cursor().copy(f"COPY votes ({_VOTE_COLUMNS}) FROM STDIN (FORMAT binary"
                                + (", FREEZE)" if kept is not None else ")")) as copy:
            copy.write(_BINARY_HEADER + (kept or b""))
            for chunk in vote_chunks(units):
                copy.write(chunk)
            copy.write(_BINARY_TRAILER)
        added["votes"] = per_unit * len(missing)
        if votes_first:
            parents()
        added["videos"] = _copy(conn, "videos", "id, uploader_id, storage_key, duration_seconds, status",
                                whole(videos))
        added["video_answers"] = _copy(conn, "video_answers",
                                       "id, question_id, candidate_id, video_id, transcript, status, view_count",
                                       whole(answers))
        added["audit_logs"] = _copy(conn, "audit_logs",
                                    "id, actor_id, action, entity_type, entity_id, changes, created_at", whole(audits))
    return added
