"""What the planner asks the database before proposing or running an action.

The guards stay pure: they read facts through this small interface. `DatabaseFacts` asks a live
server (at plan time and again just before a step runs); `StaticFacts` is what offline tests and
`civicq-ops test` pass in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class TableActivity:
    dead_tuples: int
    vacuumed_before: bool


class Facts(Protocol):
    def old_snapshots(self, older_than_s: float) -> list[str]:
        """Sessions and prepared transactions holding a snapshot older than `older_than_s` (descriptions)."""

    def table_activity(self, schema: str, name: str) -> TableActivity | None:
        """Dead tuples and whether the table was ever vacuumed (None when unknown)."""

    def can_refresh_concurrently(self, schema: str, name: str) -> bool:
        """A populated materialized view with a plain unique index over columns (REFRESH ... CONCURRENTLY)."""

    def current_database(self) -> str | None:
        """The database the actions run in."""


@dataclass
class StaticFacts:
    """Facts given up front (offline tests): by default a quiet server that allows everything."""

    snapshots: list[str] = field(default_factory=list)
    tables: dict[tuple[str, str], TableActivity] = field(default_factory=dict)
    concurrent_matviews: set[tuple[str, str]] | None = None  # None: every view allows CONCURRENTLY
    database: str | None = None

    def old_snapshots(self, older_than_s: float) -> list[str]:
        return list(self.snapshots)

    def table_activity(self, schema: str, name: str) -> TableActivity | None:
        return self.tables.get((schema, name))

    def can_refresh_concurrently(self, schema: str, name: str) -> bool:
        return self.concurrent_matviews is None or (schema, name) in self.concurrent_matviews

    def current_database(self) -> str | None:
        return self.database


_SNAPSHOTS = """
SELECT format('pid %%s (%%s, %%s, %%s) has held a snapshot for %%ss', pid, usename, coalesce(nullif(application_name, ''), '-'),
              state, round(extract(epoch FROM clock_timestamp() - xact_start)::numeric, 1))
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL
  AND backend_type = 'client backend' AND xact_start < clock_timestamp() - make_interval(secs => %s)
UNION ALL
SELECT format('prepared transaction %%L (owner %%s) since %%s', gid, owner, prepared::timestamptz(0))
FROM pg_prepared_xacts WHERE database = current_database()
"""

_TABLE = """
SELECT n_dead_tup, (coalesce(vacuum_count, 0) + coalesce(autovacuum_count, 0)) > 0
FROM pg_stat_all_tables WHERE schemaname = %s AND relname = %s
"""

# CONCURRENTLY needs a populated view and a UNIQUE index that uses only column names and covers every row.
_CONCURRENT = """
SELECT c.relispopulated AND EXISTS (
         SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
           AND i.indpred IS NULL AND i.indexprs IS NULL)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind = 'm'
"""


class DatabaseFacts:
    """Facts asked of a live server over one autocommit connection (the caller owns it)."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def old_snapshots(self, older_than_s: float) -> list[str]:
        return [r[0] for r in self.conn.execute(_SNAPSHOTS, (older_than_s,)).fetchall()]

    def table_activity(self, schema: str, name: str) -> TableActivity | None:
        row = self.conn.execute(_TABLE, (schema, name)).fetchone()
        return TableActivity(int(row[0] or 0), bool(row[1])) if row else None

    def can_refresh_concurrently(self, schema: str, name: str) -> bool:
        row = self.conn.execute(_CONCURRENT, (schema, name)).fetchone()
        return bool(row and row[0])

    def current_database(self) -> str | None:
        return self.conn.execute("SELECT current_database()").fetchone()[0]
