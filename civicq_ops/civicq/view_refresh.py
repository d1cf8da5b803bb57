"""The materialized views of a freshly loaded database refreshed over two sessions at once.

After a bulk load (civicq.seeding) the views are independent reads of committed data, so two
sessions refresh two views at a time (beside the plain indexes the load left to build,
civicq.pending_indexes), as refresh_all_materialized_views() would one by one: a plain refresh
(a database loaded a moment ago has no readers to spare its lock; CONCURRENTLY only pays on a
live database), a row in matview_refresh_log for each, and each view analyzed in the transaction
that refreshed it. The longest view by the planner's estimate goes first, so neither session
idles while the other ends on a long one; the statistics of the other tables the seed wrote (its
development set, on a first seed) are gathered alongside. At --scale 100 on 2 cores
(interleaved medians) this took the views from 0.66 s to 0.53 s on PostgreSQL 15 and from 0.54 s
to 0.42 s on 18; the view refresh no longer commits with the load (the next `db seed` refreshes
views a failure left behind).

A failing refresh lets the other jobs end (the indexes still get built), then is raised.
A view that reads another materialized view needs that one refreshed first: then the views are
refreshed one after the other in a single job, in refresh_all_materialized_views()'s order.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from civicq_ops.core.errors import QueryFailed, first_line
from civicq_ops.postgres.connect import one_row
from civicq_ops.postgres.session_jobs import Job, analyze_job, run_with_more_sessions

SESSIONS = 2

# The views refresh_all_materialized_views() refreshes, in its order, with their queries, and whether
# any of them reads another materialized view (through its rewrite rule).
_VIEWS = """
SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname), pg_get_viewdef(c.oid),
       EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
               JOIN pg_class m ON m.oid = d.refobjid AND m.relkind = 'm' AND m.oid <> r.ev_class
               WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                 AND r.ev_class = c.oid),
       ARRAY(SELECT DISTINCT d.refobjid::int8 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
               AND r.ev_class = c.oid AND d.refobjid <> c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND n.nspname = current_schema() ORDER BY c.relname
"""

@dataclass
class _View:
    schema: str
    name: str
    cost: float
    reads: frozenset[int]  # the oids of the relations its query reads

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


class ViewRefreshFailed(QueryFailed):
    """Refreshing a materialized view failed (the data it reads is committed)."""


def refresh_after_load(conn: psycopg.Connection, open_session: Callable[[], psycopg.Connection],
                       changed: Sequence[str] = (), first: Sequence[Job] = (),
                       ready: Callable[[frozenset[int]], bool] | None = None,
                       stopping: threading.Event | None = None) -> None:
    """Refresh every materialized view of the current schema and ANALYZE each, and the tables of
    `changed` (tables of the current schema that this run wrote and nobody analyzed since; the
    others' statistics are as good as before), over `conn` and one more session
    from `open_session` (none if that raises ExecutionError: no connection slot left, say), after
    the jobs of `first` (the index builds a load left: civicq.pending_indexes) are taken. Each view
    waits for `ready(the oids it reads)` and is skipped when that says False (what it needs failed).
    A failing refresh lets the other jobs end, then raises ViewRefreshFailed; a failing job of
    `first` stops everything and is raised. `conn` must be outside a transaction, and is left so."""
    rows = conn.execute(_VIEWS).fetchall()
    dependent = any(row[4] for row in rows)
    # The planner's total cost of each view's query; unknown for views refreshed one by one.
    views = [_View(schema, name, 0.0 if dependent else _cost(conn, query), frozenset(reads))
             for schema, name, _, query, _, reads in rows]
    log = one_row(conn.execute("SELECT to_regclass('matview_refresh_log') IS NOT NULL"))[0]
    conn.commit()
    failed: list[ViewRefreshFailed] = []
    if dependent:  # one after the other, in name order, in one job
        refreshes = [_refresh_in_order(views, log, failed, ready)]
    else:
        refreshes = [_refresh(view, log, failed, ready) for view in sorted(views, key=lambda v: -v.cost)]
    # What waits for nothing goes before the refreshes, which may wait for an index on the other session.
    jobs = [*first, *([analyze_job([(table,) for table in changed])] if changed else []), *refreshes]
    run_with_more_sessions(conn, open_session, SESSIONS - 1, jobs, stopping)
    if failed:
        raise failed[0]


def _cost(conn: psycopg.Connection, query: str) -> float:
    # The query is the server's own text of the view's definition (as refreshing it would run it).
    plan = one_row(conn.execute("EXPLAIN (FORMAT JSON) " + query.rstrip().rstrip(";")))[0]
    return float(plan[0]["Plan"]["Total Cost"])


def _refresh(view: _View, log: bool, failed: list[ViewRefreshFailed],
             ready: Callable[[frozenset[int]], bool] | None = None) -> Job:
    """Refresh, log and analyze `view`; a failure goes to `failed` (the other jobs go on)."""
    def job(session: psycopg.Connection) -> None:
        if ready is not None and not ready(view.reads):
            return  # an index its query needs failed to build: that failure is the one raised
        started = time.perf_counter()
        try:
            session.execute(sql.SQL("REFRESH MATERIALIZED VIEW {}").format(view.ident))
            if log:
                session.execute("INSERT INTO matview_refresh_log (view_name, duration_ms, was_concurrent) "
                                "VALUES (%s, round(%s::numeric, 1), false)",
                                (view.name, (time.perf_counter() - started) * 1000))
            session.execute(sql.SQL("ANALYZE {}").format(view.ident))
            session.commit()
        except psycopg.Error as e:
            with contextlib.suppress(psycopg.Error):
                session.rollback()
            failed.append(ViewRefreshFailed(f"refreshing materialized view {view.schema}.{view.name} failed: "
                                            f"{first_line(e)}"))
            if session.closed or isinstance(e, psycopg.OperationalError):
                raise failed[-1] from e  # a session that is gone runs nothing more
    return job


def _refresh_in_order(views: list[_View], log: bool, failed: list[ViewRefreshFailed],
                      ready: Callable[[frozenset[int]], bool] | None) -> Job:
    """Views that read other views: one by one in name order; the first failure ends the chain."""
    def job(session: psycopg.Connection) -> None:
        for view in views:
            before = len(failed)
            _refresh(view, log, failed, ready)(session)
            if len(failed) > before:
                return
    return job
