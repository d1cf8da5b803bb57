"""Secondary indexes built after a bulk load, as pg_restore does: one sort per index at the end
instead of a B-tree insert per row and index during COPY (votes carries 7 indexes).

Only what COPY does not need is deferred: non-unique indexes that back no constraint, on plain
tables (not partitions, not partitioned tables). Primary keys, unique indexes and constraints stay,
so every row is still checked as it arrives. Each index is recreated from pg_get_indexdef() in the
same transaction, under its own name, so the schema afterwards is the one the migrations made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import sql

_SECONDARY = """
SELECT n.nspname, ic.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE t.oid = ANY(%s::regclass[]) AND t.relkind = 'r' AND NOT t.relispartition AND ic.relkind = 'i'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion AND NOT i.indisclustered
  AND i.indisvalid AND i.indisready
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = i.indexrelid AND d.deptype = 'e')
  AND NOT EXISTS (SELECT 1 FROM pg_description c WHERE c.objoid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attstattarget > 0)
ORDER BY ic.oid
"""


@contextmanager
def indexes_built_after(conn, tables: list[str]) -> Iterator[int]:
    """Drop the deferrable secondary indexes of `tables`, run the block (the COPY), create them
    again. Call inside a transaction: a failure anywhere leaves the indexes as they were.
    Yields how many were deferred."""
    rows = conn.execute(_SECONDARY, (list(tables),)).fetchall()
    for schema, name, _ in rows:
        conn.execute(sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
    yield len(rows)
    for _, _, definition in rows:
        conn.execute(definition)
