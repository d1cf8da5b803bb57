"""The plain indexes of a first scaled load, built after its commit over two sessions, as pg_restore -j does.

Inside the load's transaction only one statement runs at a time, and a parallel B-tree build
still merges and writes the index in its leader alone: at --scale 100 on 2 cores the 7 builds over
a million votes left the second core half idle. So the load's transaction builds what guards the
data (keys, unique indexes, foreign keys: they and the rows commit together or not at all) and
hands the plain indexes (not unique, backing no constraint: they only speed reads) to after the
commit, where two sessions build them while the materialized views are refreshed
(civicq.view_refresh). The loaded tables' ANALYZE goes there too, first (Builds): a view waits for
the statistics and builds of the tables it reads.

Crash-safe bookkeeping: the load's transaction records each such index in the table
civicq_ops_pending_indexes (its schema, table, name and pg_get_indexdef()), which commits with
the rows. A build claims its row (DELETE ... RETURNING: a second claimant waits for the first
and then finds it gone, or finds it again if the first rolled back) and creates the index in the
same transaction, so the row goes exactly when the index exists. A failure, a Ctrl-C or a lost
connection leaves the rows of what was not built, and the next `civicq-ops db seed` or
`db migrate` builds them first. The table is dropped once empty.

The table holds SQL that a later run executes: it is created by the seeding role, with no
privilege for anyone else (the grants of default privileges revoked), and a run refuses a table
owned by another role or granted to one beyond SELECT, and a definition that is not one CREATE
INDEX of its index on its table.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
import psycopg.errors
from psycopg import sql

from civicq_ops.civicq.deferred_indexes import MAINTENANCE_WORK_MEM, PlainIndex
from civicq_ops.core.errors import QueryFailed, first_line
from civicq_ops.postgres.connect import one_row
from civicq_ops.postgres.session_jobs import Job, analyze_job

TABLE = "civicq_ops_pending_indexes"

_CREATE = """
CREATE TABLE {} (
    index_schema    text NOT NULL,
    index_name      text NOT NULL,
    table_schema    text NOT NULL,
    table_name      text NOT NULL,
    definition      text NOT NULL,
    on_expressions  boolean NOT NULL,
    key_columns     integer NOT NULL,
    partial         boolean NOT NULL,
    PRIMARY KEY (index_schema, index_name)
)
"""

# Where the table is (the first schema of search_path that has it), and whether it can be trusted:
# owned by the current role, and no other role granted more than SELECT on it or on any of its
# columns (INSERT or UPDATE could plant SQL, DELETE or TRUNCATE drop an index from the list
# unseen, TRIGGER run code of theirs in our session).
_FOUND = """
SELECT n.nspname, c.relname,
       c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
       AND NOT EXISTS (SELECT 1 FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                       WHERE a.grantee <> c.relowner AND a.privilege_type <> 'SELECT')
       AND NOT EXISTS (SELECT 1 FROM pg_attribute col, aclexplode(col.attacl) a
                       WHERE col.attrelid = c.oid AND col.attacl IS NOT NULL
                         AND a.grantee <> c.relowner AND a.privilege_type <> 'SELECT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)
"""

# The roles other than the owner that hold a privilege on the table (None: PUBLIC).
_GRANTEES = """
SELECT DISTINCT r.rolname
FROM pg_class c CROSS JOIN aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner
"""

# Each pending index with an estimate of its build in the planner's units: a sequential scan of
# the table, and a sort by each key column of the rows it indexes (half the table for a partial
# index, its selectivity unknown here), comparisons costing 2 x cpu_operator_cost each as in the
# planner's cost_sort(). The longest go first: at --scale 100 the two-column builds over votes
# took 0.33-0.57 s, the one-column partial ones 0.12-0.23 s.
_PENDING = """
SELECT p.index_schema, p.index_name, p.table_schema, p.table_name, c.oid, p.on_expressions,
       coalesce(c.relpages * current_setting('seq_page_cost')::float8
                + greatest(c.reltuples, 0) * current_setting('cpu_tuple_cost')::float8
                + greatest(c.reltuples, 0) * CASE WHEN p.partial THEN 0.5 ELSE 1 END * p.key_columns
                  * 2 * current_setting('cpu_operator_cost')::float8 * log(2, greatest(c.reltuples, 2)::numeric)::float8,
                0)
FROM {} p LEFT JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', p.table_schema, p.table_name))
ORDER BY 7 DESC, 1, 2
"""

# The claim: the row goes in the transaction that builds its index. Its index is built unless a
# valid index of that name exists on that table already (built by hand) or the table is gone
# (dropped since). The definition must be one CREATE INDEX of that index on that table, as
# pg_get_indexdef() writes it (a defence beside the ownership check: it is run as it stands).
_CLAIM = """
DELETE FROM {} WHERE index_schema = %s AND index_name = %s
RETURNING definition, to_regclass(format('%%I.%%I', table_schema, table_name)) IS NOT NULL,
          EXISTS (SELECT 1 FROM pg_index i WHERE i.indisvalid
                  AND i.indexrelid = to_regclass(format('%%I.%%I', index_schema, index_name))
                  AND i.indrelid = to_regclass(format('%%I.%%I', table_schema, table_name))),
          starts_with(definition, format('CREATE INDEX %%s ON %%s.%%s USING ', quote_ident(index_name),
                                         quote_ident(table_schema), quote_ident(table_name)))
          AND position(';' IN definition) = 0
"""


class IndexBuildFailed(QueryFailed):
    """Building an index left for after the load failed (the load itself is committed)."""


class UntrustedList(QueryFailed):
    """The bookkeeping table could have been written by another role: nothing in it is run."""


@dataclass(frozen=True)
class Pending:
    schema: str
    name: str
    table: tuple[str, str]  # (schema, name)
    table_oid: int | None  # None: the table is gone
    on_expressions: bool
    listed_in: sql.Composable  # the bookkeeping table, found trusted when this was read


def can_record(conn: psycopg.Connection) -> bool:
    """Whether this role may create the bookkeeping table (else the load builds every index itself).
    Building an index needs CREATE on its schema too (DefineIndex checks it), so a role that can
    seed at all passes unless the current schema is another one."""
    return bool(one_row(conn.execute(
        "SELECT current_schema() IS NOT NULL AND has_schema_privilege(current_schema(), 'CREATE') "
        "AND to_regclass(%s) IS NULL", (TABLE,)))[0])


def record(conn: psycopg.Connection, indexes: list[PlainIndex]) -> None:
    """Create the table in the current schema and list `indexes` in it, in the caller's transaction."""
    table = sql.Identifier(TABLE)
    conn.execute(sql.SQL(_CREATE).format(table))
    # Whatever the schema's default privileges granted the new table (an application role's
    # INSERT, say) is taken back: only this role may write a list of SQL that db seed runs.
    for (grantee,) in conn.execute(_GRANTEES, (TABLE,)).fetchall():
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(
            table, sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)))
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(
        "civicq-ops db seed: indexes a bulk load left to build after its commit; "
        "`civicq-ops db seed` or `db migrate` builds any still listed here")))
    with conn.cursor() as cur:
        cur.executemany(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(table),
                        [(i.schema, i.name, i.schema, i.table, i.definition, i.on_expressions, i.key_columns,
                          i.partial) for i in indexes])


def _table(conn: psycopg.Connection) -> sql.Composable | None:
    """The bookkeeping table, if there is one, after checking that it can be trusted."""
    row = conn.execute(_FOUND, (TABLE,)).fetchone()
    if row is None:
        return None
    schema, name, trusted = row
    if not trusted:
        raise UntrustedList(f"refusing to build the indexes listed in {schema}.{name}: the table is not owned by "
                            f"this role, or another role holds more than SELECT on it (it holds SQL that db seed "
                            f"runs); check each listed definition, build what is right by hand, then DROP TABLE "
                            f"{schema}.{name}")
    return sql.Identifier(schema, name)


def pending(conn: psycopg.Connection) -> list[Pending]:
    """The indexes still to build, the longest (by _PENDING's estimate) first ([] without a
    bookkeeping table)."""
    table = _table(conn)
    if table is None:
        return []
    return [Pending(schema, name, (tschema, tname), oid, expressions, table)
            for schema, name, tschema, tname, oid, expressions, _cost in conn.execute(sql.SQL(_PENDING).format(table))]


class Builds:
    """The build jobs of some pending indexes, and a wait for the builds on given tables to end: a
    view refreshed before the indexes its query needs can take hours instead of a second (at
    --scale 100, user_activity_summary's count of each user's votes without votes (user_id, ...)
    ran for over ten minutes)."""

    def __init__(self, todo: list[Pending], statistics_first: Iterable[tuple[int, str, str]] = (),
                 stopping: threading.Event | None = None) -> None:
        """`statistics_first`: (oid, schema, name) of tables to ANALYZE before their builds (a load's tables:
        the views need the statistics, and waiting for them here keeps them out of the load's
        transaction, where nothing else could run meanwhile)."""
        self.todo = todo
        self._statistics = list(statistics_first)
        self._left = Counter(index.table_oid for index in todo)
        self._left.update(oid for oid, _, _ in self._statistics)
        self._failed: set[int | None] = set()
        self._ended = threading.Condition()
        self.stopping = stopping or threading.Event()  # run_over_sessions sets it on a failure or Ctrl-C

    def jobs(self) -> list[Job]:
        """The statistics first (a build of the same table waits for its ANALYZE's lock, so they
        go before any build), then the builds, the longest first, then the statistics of the
        expressions they index."""
        jobs = [self._tracked(oid, analyze_job([(schema, name)])) for oid, schema, name in self._statistics]
        jobs += [self._tracked(index.table_oid, build_job(index, parallel=False)) for index in self.todo]
        expressions = [index for index in self.todo if index.on_expressions]
        if expressions:
            jobs.append(self._analyze(expressions))
        return jobs

    def wait(self, tables: Iterable[int]) -> bool:
        """Block until every build on `tables` (oids) has ended; whether all of them succeeded. A
        job that waits runs after every build was started (the builds are queued first), so each
        build it waits for is running on another session and ends, one way or the other."""
        wanted = set(tables)
        with self._ended:
            # The pool stopping (a failure elsewhere, a Ctrl-C) ends the wait too: its cancel reaches
            # queries, not a thread waiting here, which must not start a refresh after the stop.
            while not self._ended.wait_for(lambda: all(self._left[oid] == 0 for oid in wanted), timeout=0.1):
                if self.stopping.is_set():
                    return False
            return not (wanted & self._failed or self.stopping.is_set())

    def _tracked(self, table: int | None, run: Job) -> Job:
        def job(session: psycopg.Connection) -> None:
            ok = False
            try:
                run(session)
                ok = True
            finally:
                with self._ended:
                    self._left[table] -= 1
                    if not ok:
                        self._failed.add(table)
                    self._ended.notify_all()
        return job

    def _analyze(self, indexes: list[Pending]) -> Job:
        analyze = analyze_job(_expression_tables(indexes))

        def job(session: psycopg.Connection) -> None:
            if self.wait(index.table_oid for index in indexes if index.table_oid is not None):
                analyze(session)
        return job


def _expression_tables(indexes: list[Pending]) -> list[tuple[str, str]]:
    """The tables of `indexes` on expressions: the statistics of an expression index are gathered
    only once it exists."""
    return sorted({index.table for index in indexes if index.on_expressions and index.table_oid is not None})


def table_oids(conn: psycopg.Connection, tables: list[str]) -> list[tuple[int, str, str]]:
    """(oid, schema, name) of each of `tables` (names as to_regclass() reads them)."""
    return [(oid, schema, name) for oid, schema, name in conn.execute(
        "SELECT c.oid, n.nspname, c.relname FROM unnest(%s::text[]) t "
        "JOIN pg_class c ON c.oid = to_regclass(t) JOIN pg_namespace n ON n.oid = c.relnamespace", (tables,))]


def build_job(index: Pending, *, parallel: bool = True) -> Job:
    """Claim and build `index` on a session outside a transaction, leaving it so (the list it comes
    from was checked when pending() read it). Without `parallel`, no parallel workers (two sessions
    building at once already fill two cores)."""
    def job(session: psycopg.Connection) -> None:
        try:
            session.execute(MAINTENANCE_WORK_MEM, (True,))
            if not parallel:
                session.execute("SET LOCAL max_parallel_maintenance_workers = 0")
            try:
                row = session.execute(sql.SQL(_CLAIM).format(index.listed_in), (index.schema, index.name)).fetchone()
            except psycopg.errors.UndefinedTable:
                # The list itself is gone: another seed built what it held and dropped it meanwhile.
                session.rollback()
                return
            if row is not None and not row[3]:
                raise UntrustedList(f"refusing to run the definition listed for index {index.schema}.{index.name}"
                                    f" in {TABLE}: it is not one CREATE INDEX of that "
                                    f"index on its table, as pg_get_indexdef() writes it")
            if row is not None and row[1] and not row[2]:
                session.execute(row[0])
            session.commit()
        except psycopg.Error as e:
            with contextlib.suppress(psycopg.Error):
                session.rollback()
            raise IndexBuildFailed(f"building index {index.schema}.{index.name} failed: {first_line(e)}") from e
    return job


def build_all(conn: psycopg.Connection) -> list[Pending]:
    """Build every pending index on `conn` alone, one after the other (what `db migrate` does
    first: a migration may alter what they index), and drop the table; the ones there were."""
    todo = pending(conn)
    conn.commit()
    for index in todo:
        build_job(index)(conn)
    if _expression_tables(todo):
        analyze_job(_expression_tables(todo))(conn)
    finish(conn)
    return todo


def finish(conn: psycopg.Connection) -> None:
    """Drop the table once empty (under its lock, so no claim is in flight). `conn` is left
    outside a transaction."""
    table = _table(conn)
    if table is not None:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        if not one_row(conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table)))[0]:
            conn.execute(sql.SQL("DROP TABLE {}").format(table))
    conn.commit()
