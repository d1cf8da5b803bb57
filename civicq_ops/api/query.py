"""Raw queries and bulk writes, with bound values and quoted names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row


def _table(name: str) -> sql.Composed:
    schema, _, table = name.rpartition(".")
    return sql.SQL("{}.{}").format(sql.Identifier(schema or "public"), sql.Identifier(table))


def execute_raw_query(conn, query: str, params: Sequence | dict | None = None) -> list[dict[str, Any]]:
    """Run one statement with bound parameters; rows as dicts (empty for statements without rows)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def bulk_insert(conn, table: str, rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None) -> int:
    """Insert many rows through COPY (the fastest path); returns how many."""
    rows = list(rows)
    if not rows:
        return 0
    columns = list(columns or rows[0].keys())
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(_table(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur, cur.copy(query) as copy:
        for row in rows:
            copy.write_row([row.get(c) for c in columns])
    return len(rows)


def bulk_update(conn, table: str, rows: Iterable[dict[str, Any]], key: str = "id") -> int:
    """Update many rows in one statement: COPY into a temporary table, then UPDATE ... FROM it."""
    rows = list(rows)
    if not rows:
        return 0
    columns = list(rows[0].keys())
    if key not in columns:
        raise ValueError(f"every row needs the key column {key!r}")
    stage = sql.Identifier("_civicq_bulk_update")
    # Only the given columns, with their types and none of the table's constraints.
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        stage, sql.SQL(", ").join(map(sql.Identifier, columns)), _table(table)))
    bulk_insert(conn, "pg_temp._civicq_bulk_update", rows, columns)
    sets = sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in columns if c != key)
    cur = conn.execute(sql.SQL("UPDATE {} t SET {} FROM {} s WHERE t.{} = s.{}").format(
        _table(table), sets, stage, sql.Identifier(key), sql.Identifier(key)))
    conn.execute(sql.SQL("DROP TABLE {}").format(stage))
    return cur.rowcount
