"""What the live database says about the tables a migration touches: size, rows, write rate, the
views a column type change breaks, the sessions that would block the lock right now, and how fast
this server scans a table (for the estimate of how long a rewrite holds its lock).

Every query reads the catalogue or statistics views in a READ ONLY transaction with short
timeouts; the scan-rate probe reads at most SCAN_PROBE_ROWS rows of one table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from psycopg import sql

SCAN_PROBE_ROWS = 100_000
LONG_TRANSACTION_S = 5.0


@dataclass
class TableInfo:
    """A table (or view) as it is now; oid None: it does not exist (yet)."""

    schema: str | None
    name: str
    oid: int | None = None
    kind: str | None = None          # pg_class.relkind
    heap_bytes: int = 0
    total_bytes: int = 0
    index_bytes: int = 0
    rows: int = 0
    writes_per_s: float | None = None  # inserts + updates + deletes since statistics were reset, per second
    columns: dict[str, str] = field(default_factory=dict)          # name -> format_type
    not_null_checks: set[str] = field(default_factory=set)        # columns with a valid CHECK (col IS NOT NULL)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass
class Blocker:
    """A session that holds a lock the statement would wait for, or an old transaction a
    concurrent index build waits for."""

    pid: int
    user: str | None
    application: str | None
    state: str | None
    mode: str | None
    xact_age_s: float | None
    query: str

    def describe(self) -> str:
        age = f", transaction open {self.xact_age_s:.0f} s" if self.xact_age_s is not None else ""
        held = f"holds {self.mode}" if self.mode else "old transaction"
        return f"pid {self.pid} ({self.user or '?'}, {self.state or '?'}{age}) {held}: {self.query}"


_TABLES = """
WITH req AS (
  SELECT u.i, u.s, u.n,
         to_regclass(CASE WHEN u.s IS NULL THEN quote_ident(u.n) ELSE quote_ident(u.s) || '.' || quote_ident(u.n) END) AS oid
  FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(s, n, i)
)
SELECT req.i, c.oid::int8, ns.nspname, c.relname, c.relkind::text,
       pg_relation_size(c.oid), pg_total_relation_size(c.oid), pg_indexes_size(c.oid),
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8 ELSE coalesce(st.n_live_tup, 0) END,
       st.n_tup_ins + st.n_tup_upd + st.n_tup_del,
       extract(epoch FROM now() - coalesce(pg_stat_get_db_stat_reset_time(d.oid), pg_postmaster_start_time()))::float8
FROM req
LEFT JOIN pg_class c ON c.oid = req.oid
LEFT JOIN pg_namespace ns ON ns.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables st ON st.relid = c.oid
CROSS JOIN pg_database d
WHERE d.datname = current_database()
ORDER BY req.i
"""

_COLUMNS = """
SELECT a.attrelid::int8, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
"""

_NOT_NULL_CHECKS = """
SELECT conrelid::int8, pg_get_constraintdef(oid) FROM pg_constraint
WHERE contype = 'c' AND convalidated AND conrelid = ANY(%s::oid[])
"""

_DEPENDENT_VIEWS = """
SELECT DISTINCT v.oid::regclass::text, v.relkind::text
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %s AND a.attname = %s AND v.oid <> d.refobjid
ORDER BY 1
"""

_LOCK_HOLDERS = """
SELECT l.relation::int8, l.mode, a.pid, a.usename, a.application_name, a.state,
       extract(epoch FROM now() - a.xact_start)::float8,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.relation = ANY(%s::oid[]) AND l.pid <> pg_backend_pid()
ORDER BY a.xact_start NULLS LAST
"""

_OLD_TRANSACTIONS = """
SELECT a.pid, a.usename, a.application_name, a.state, extract(epoch FROM now() - a.xact_start)::float8,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120)
FROM pg_stat_activity a
WHERE a.xact_start < now() - make_interval(secs => %s) AND a.pid <> pg_backend_pid()
  AND (a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL)
ORDER BY a.xact_start
"""

_VOLATILE = "SELECT proname, bool_or(provolatile = 'v') FROM pg_proc WHERE proname = ANY(%s) GROUP BY proname"


def read_tables(conn, names: list[tuple[str | None, str]]) -> dict[tuple[str | None, str], TableInfo]:
    """The tables by (schema as written, name); one that does not exist has oid None."""
    out: dict[tuple[str | None, str], TableInfo] = {}
    if not names:
        return out
    rows = conn.execute(_TABLES, ([s for s, _ in names], [n for _, n in names])).fetchall()
    for i, oid, schema, relname, kind, heap, total, idx, rows_, writes, since in rows:
        key = names[i - 1]
        info = TableInfo(key[0], key[1])
        if oid is not None:
            rate = (writes / since) if writes is not None and since and since > 0 else None
            info = TableInfo(schema, relname, oid, kind, heap, total, idx, max(rows_, 0), rate)
        out[key] = info
    oids = [t.oid for t in out.values() if t.oid is not None]
    if oids:
        by_oid = {t.oid: t for t in out.values() if t.oid is not None}
        for relid, att, typ in conn.execute(_COLUMNS, (oids,)):
            by_oid[relid].columns[att] = typ
        for relid, definition in conn.execute(_NOT_NULL_CHECKS, (oids,)):
            col = _not_null_column(definition)
            if col:
                by_oid[relid].not_null_checks.add(col)
    return out


def _not_null_column(definition: str) -> str | None:
    """`CHECK ((note IS NOT NULL))` -> note."""
    import re

    m = re.fullmatch(r'CHECK \(+"?([^"() ]+)"? IS NOT NULL\)+( NOT VALID)?', definition.strip())
    return m.group(1) if m and not m.group(2) else None


def dependent_views(conn, oid: int, column: str) -> list[str]:
    """Views and materialized views that read the column (a type change is refused while they exist)."""
    return [f"{name} ({'materialized view' if kind == 'm' else 'view'})"
            for name, kind in conn.execute(_DEPENDENT_VIEWS, (oid, column))]


def lock_holders(conn, oids: list[int]) -> dict[int, list[Blocker]]:
    out: dict[int, list[Blocker]] = {}
    if not oids:
        return out
    for relid, mode, pid, user, app, state, age, query in conn.execute(_LOCK_HOLDERS, (oids,)):
        out.setdefault(relid, []).append(Blocker(pid, user, app, state, mode, age, query))
    return out


def old_transactions(conn, older_than_s: float = LONG_TRANSACTION_S) -> list[Blocker]:
    return [Blocker(pid, user, app, state, None, age, query)
            for pid, user, app, state, age, query in conn.execute(_OLD_TRANSACTIONS, (older_than_s,))]


def volatile_functions(conn, names: list[str]) -> dict[str, bool]:
    if not names:
        return {}
    return {name: bool(v) for name, v in conn.execute(_VOLATILE, (sorted(set(names)),))}


def scan_rate(conn, table: TableInfo) -> float | None:
    """Bytes per second this server reads of the table, from a bounded sequential read of at most
    SCAN_PROBE_ROWS rows. None when the table is empty."""
    if table.oid is None or table.heap_bytes <= 0 or table.rows <= 0:
        return None
    probe = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {}.{} LIMIT %s) s").format(
        sql.Identifier(table.schema or "public"), sql.Identifier(table.name))
    started = time.perf_counter()
    read = conn.execute(probe, (SCAN_PROBE_ROWS,)).fetchone()[0]
    elapsed = max(time.perf_counter() - started, 1e-4)
    bytes_read = read * table.heap_bytes / max(table.rows, read, 1)
    return bytes_read / elapsed if bytes_read > 0 else None
