"""Indexes and constraints built after a bulk load, as pg_restore does: one sort per index at the
end instead of a B-tree insert per row and index during COPY (votes carries 7 indexes; loading it
with only its primary key and unique constraint in place took 2.6x as long as into a bare heap).

Deferred, on plain tables (not partitions, not partitioned tables):
- indexes that back no constraint, unique or not (recreated from pg_get_indexdef()); with `later`,
  the ones that are not unique are handed over instead, to be built after the commit
  (civicq.pending_indexes: they guard no row, and two sessions build them at once there);
- primary key and unique constraints that no foreign key and nothing else depends on (added again
  from pg_get_constraintdef(), which builds the index and checks every row at once);
- with `foreign_keys=True`, the foreign keys of the loaded tables: added again after the indexes,
  which validates every row in one query per key instead of a trigger call per row and key.
Left in place: anything with a comment or a per-column statistics target, extension members,
indexes marked for CLUSTER or REPLICA IDENTITY, and the keys other tables' foreign keys point to.
Each object comes back under its own name in the same transaction, so the schema afterwards is the
one the migrations made, and a failure anywhere (the load, or a row that breaks a constraint when
it is added again) rolls the whole transaction back with every index and constraint in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import sql

_INDEXES = """
SELECT n.nspname, ic.relname, pg_get_indexdef(i.indexrelid), t.relname, i.indisunique, i.indexprs IS NOT NULL,
       i.indnkeyatts, i.indpred IS NOT NULL
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE t.oid = ANY(%s::regclass[]) AND t.relkind = 'r' AND NOT t.relispartition AND ic.relkind = 'i'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND NOT i.indisexclusion AND NOT i.indisclustered AND NOT i.indisreplident
  AND i.indisvalid AND i.indisready
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = i.indexrelid AND d.deptype = 'e')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass
                  AND d.refobjid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_description c WHERE c.objoid = i.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attstattarget > 0)
ORDER BY ic.oid
"""

# Primary key and unique constraints whose index nothing else depends on (a foreign key pointing at
# the key depends on its index), and foreign keys (contype 'f'); the caller picks by contype.
_CONSTRAINTS = """
SELECT c.contype, n.nspname, t.relname, c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.conrelid = ANY(%s::regclass[]) AND t.relkind = 'r' AND NOT t.relispartition
  AND c.contype = ANY(%s::"char"[]) AND c.conparentid = 0 AND NOT c.coninhcount > 0
  AND NOT EXISTS (SELECT 1 FROM pg_description d WHERE d.objoid IN (c.oid, c.conindid))
  AND (c.contype = 'f' OR NOT EXISTS (
        SELECT 1 FROM pg_index i WHERE i.indexrelid = c.conindid
        AND (i.indisclustered OR i.indisreplident OR NOT i.indisvalid
             OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass
                        AND d.refobjid = i.indexrelid)
             OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attstattarget > 0))))
ORDER BY c.oid
"""


@dataclass(frozen=True)
class PlainIndex:
    """An index that backs no constraint and is not unique: it speeds reads and guards no row."""

    schema: str
    name: str
    table: str
    definition: str  # pg_get_indexdef()
    on_expressions: bool  # ANALYZE gathers statistics for its expressions once it exists
    key_columns: int = 1  # what its build sorts by (the longest builds go first)
    partial: bool = False  # a WHERE clause: it sorts part of the table


# Each build sorts a whole table: in memory rather than in merged runs on disk.
MAINTENANCE_WORK_MEM = ("SELECT set_config('maintenance_work_mem', '256MB', %s) "
                        "WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes('256MB')")


@contextmanager
def indexes_built_after(conn, tables: list[str], *, foreign_keys: bool = False,
                        later: Callable[[list[PlainIndex]], None] | None = None) -> Iterator[int]:
    """Drop the deferrable indexes and constraints of `tables` (their foreign keys too with
    `foreign_keys`), run the block (the COPY), create them again. Call inside a transaction: a
    failure anywhere leaves everything as it was. With `later`, the plain indexes (PlainIndex) are
    handed to it instead of built here: keys, unique indexes and foreign keys are still built in
    the transaction, the plain ones are the caller's to build (civicq.pending_indexes). Yields how
    many objects were deferred."""
    names = list(tables)
    fks = conn.execute(_CONSTRAINTS, (names, ["f"])).fetchall() if foreign_keys else []
    keys = conn.execute(_CONSTRAINTS, (names, ["p", "u"])).fetchall()
    indexes = conn.execute(_INDEXES, (names,)).fetchall()
    for _, schema, table, name, _ in fks + keys:
        conn.execute(sql.SQL("ALTER TABLE {}.{} DROP CONSTRAINT {}").format(
            sql.Identifier(schema), sql.Identifier(table), sql.Identifier(name)))
    for schema, name, *_ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
    yield len(fks) + len(keys) + len(indexes)
    conn.execute(MAINTENANCE_WORK_MEM, (True,))  # for this transaction
    plain = [PlainIndex(schema, name, table, definition, expressions, key_columns, partial)
             for schema, name, definition, table, unique, expressions, key_columns, partial in indexes if not unique]
    if later is not None and plain:
        later(plain)
    for _, _, definition, _, unique, *_ in indexes:
        if unique or later is None:
            conn.execute(definition)
    for _, schema, table, name, definition in keys + fks:  # foreign keys last: validated by the new indexes
        conn.execute(sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} ").format(
            sql.Identifier(schema), sql.Identifier(table), sql.Identifier(name)) + sql.SQL(definition))
