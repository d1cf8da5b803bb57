"""`db seed` and `db reset`: the development data of seeds/, and a clean slate for development."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType

import psycopg
from psycopg import sql

from civicq_ops.civicq import pending_indexes
from civicq_ops.civicq.deferred_indexes import indexes_built_after
from civicq_ops.civicq.migrations import asset_dir, migrate
from civicq_ops.civicq.view_refresh import ViewRefreshFailed, refresh_after_load
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import InputError, QueryFailed, first_line
from civicq_ops.postgres.connect import connect, ensure_database, one_row
from civicq_ops.postgres.session_jobs import run_with_more_sessions


def load_seed_module(project: Project, name: str) -> ModuleType:
    path = asset_dir(project, "seeds") / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"civicq_seeds_{name}", path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot load the seed module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class SeedResult:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # Where the time went, in order (bench/seed.py prints them): "indexes left by an earlier seed"
    # (only when there were some), "development set", then for a first scaled load "load", "keys
    # and unique indexes", "commit", "statistics, indexes, views" (the loaded tables analyzed,
    # the plain indexes built, the views refreshed: over two sessions), else ("load" and "indexes
    # and keys" with a scale) "views", "commit and ANALYZE".
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def seed(project: Project, target: Target, scale: int = 0) -> SeedResult:
    """Insert the development data (idempotent); with `scale`, also the generated load data set."""
    if scale < 0:
        raise InputError("--scale must be 0 or more")
    started = time.perf_counter()
    result = SeedResult()
    loaded = False  # committed: a failure after it leaves the data in, with every index and key
    with connect(project, target) as conn:
        try:
            _settings(conn)
            _require_schema(conn)
            mark = time.perf_counter()

            def phase(name: str) -> None:
                nonlocal mark
                now = time.perf_counter()
                result.phases[name] = result.phases.get(name, 0.0) + now - mark
                mark = now

            left = pending_indexes.pending(conn)
            if left:
                # What an interrupted seed left: its tables' statistics again too (they were gathered
                # after that load's commit, maybe not at all), then the indexes.
                tables = sorted({(i.table_oid, *i.table) for i in left if i.table_oid is not None})
                conn.commit()
                build_pending(conn, lambda: _session(project, target), statistics_first=tables)
                phase("indexes left by an earlier seed")
            fresh = not one_row(conn.execute("SELECT EXISTS (SELECT 1 FROM users)"))[0]
            dev_rows = load_seed_module(project, "seed_dev").seed(conn)
            result.rows = dict(dev_rows)
            phase("development set")
            bulk: list[str] = []
            later = None
            if scale:
                module = load_seed_module(project, "scale")
                # The first scaled load (the tables hold at most the development set) builds the
                # indexes and keys after COPY, as pg_restore does; a later one adds to live indexes.
                # A superuser loads with foreign key triggers off (seeds/scale.py); anyone else gets
                # the foreign keys validated once each after the load instead of per row. The plain
                # indexes are built after the commit, over two sessions (civicq.pending_indexes),
                # when this role may keep their list in the database meanwhile.
                bulk = list(getattr(module, "TABLES", ())) if not module.units_present(conn) else []
                superuser = one_row(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))[0]
                if bulk and pending_indexes.can_record(conn):
                    later = partial(pending_indexes.record, conn)
                with (indexes_built_after(conn, bulk, foreign_keys=not superuser, later=later) if bulk
                      else nullcontext()):
                    for table, count in module.seed_scale(conn, scale).items():
                        result.rows[table] = result.rows.get(table, 0) + count
                    phase("load")
                phase("keys and unique indexes" if bulk else "indexes and keys")
            if bulk:
                loaded_tables = pending_indexes.table_oids(conn, bulk)
                conn.commit()
                loaded = True
                phase("commit")
                # The plain indexes and the views over two sessions, which only committed rows allow
                # (a failure there leaves the load in; the next `db seed` finishes the job): see
                # civicq.pending_indexes and civicq.view_refresh.
                changed = [table for table, count in dev_rows.items() if count and table not in bulk]
                build_pending(conn, lambda: _session(project, target), changed, views=True,
                              statistics_first=loaded_tables)
                phase("statistics, indexes, views")
            else:
                # Into empty tables nobody reads the views yet: a plain refresh (no diff against the
                # old contents, no unique-index probe per row); CONCURRENTLY for a live database.
                if one_row(conn.execute("SELECT to_regproc('refresh_all_materialized_views') IS NOT NULL"))[0]:
                    conn.execute("SELECT * FROM refresh_all_materialized_views(%s)", (not fresh,))
                phase("views")
                conn.commit()
                conn.autocommit = True
                conn.execute("ANALYZE")  # fresh statistics, so the checks judge the seeded data fairly
                phase("commit and ANALYZE")
        except ViewRefreshFailed as e:
            raise QueryFailed(f"seeding target '{target.name}' loaded its data, but {e.message}; "
                              f"`civicq-ops db seed` again refreshes the views") from e
        except pending_indexes.UntrustedList as e:
            raise QueryFailed(f"seeding target '{target.name}' loaded its data, but {e.message}" if loaded
                              else f"seeding target '{target.name}' seeded nothing: {e.message}") from e
        except pending_indexes.IndexBuildFailed as e:
            raise QueryFailed(f"seeding target '{target.name}' loaded its data, but {e.message}{_AFTER_LOAD}" if loaded
                              else f"seeding target '{target.name}' seeded nothing: {e.message}; build or drop "
                                   f"that index by hand and delete its row from {pending_indexes.TABLE}, or fix "
                                   f"the cause and run `civicq-ops db seed` again") from e
        except QueryFailed as e:
            if loaded:
                raise QueryFailed(f"seeding target '{target.name}' loaded its data, but {e.message}{_AFTER_LOAD}") from e
            raise
        except psycopg.Error as e:
            if loaded:
                raise QueryFailed(f"seeding target '{target.name}' loaded its data, but then failed: "
                                  f"{first_line(e)}{_AFTER_LOAD}") from e
            raise QueryFailed(f"seeding target '{target.name}' failed: {first_line(e)}") from e
    result.seconds = time.perf_counter() - started
    return result


# What a failure after the load's commit leaves, and the way out.
_AFTER_LOAD = (f"; the indexes still listed in {pending_indexes.TABLE} are not built yet and the views may be "
               f"stale: `civicq-ops db seed` again builds them and refreshes the views")


def build_pending(conn: psycopg.Connection, open_session, changed: Sequence[str] = (), *,
                  views: bool = False, statistics_first: Sequence[tuple[int, str, str]] = ()) -> None:
    """Build the indexes a bulk load left for after its commit (civicq.pending_indexes) over two
    sessions, and with `views` (after a load) refresh the views and analyze the tables of `changed`
    alongside, each view once the indexes of the tables it reads are built. `conn` must be outside
    a transaction, and is left so."""
    stopping = threading.Event()  # set by run_over_sessions on a failure or Ctrl-C: ends Builds.wait
    builds = pending_indexes.Builds(pending_indexes.pending(conn), statistics_first, stopping)
    conn.commit()
    if views:
        try:
            refresh_after_load(conn, open_session, changed, first=builds.jobs(), ready=builds.wait,
                               stopping=stopping)
        except ViewRefreshFailed:
            # The builds went on to their end unless the failure lost a session; either way the
            # table goes only if empty, and the view's failure is the one reported.
            with suppress(psycopg.Error):
                pending_indexes.finish(conn)
            raise
    elif builds.todo or statistics_first:
        run_with_more_sessions(conn, open_session, 1, builds.jobs(), stopping)
    pending_indexes.finish(conn)


def _settings(conn) -> None:
    """This session's settings for a seed (SET, for the session only: the connection is ours)."""
    # JIT compiling the view refreshes' plans cost more than it saved: user_activity_summary took
    # 0.44 s with it and 0.24 s without at --scale 100 on PostgreSQL 15.
    conn.execute("SET jit = off")


def _session(project: Project, target: Target) -> psycopg.Connection:
    """One more session on the seeded database, set up as the seed's own."""
    conn = connect(project, target)
    try:
        _settings(conn)
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def _require_schema(conn) -> None:
    row = conn.execute("SELECT to_regclass('public.votes') IS NOT NULL").fetchone()
    conn.commit()
    if not row[0]:
        raise InputError("the CivicQ schema is missing: run `civicq-ops db migrate` first")


def check_resettable(target: Target) -> None:
    """Refuse a reset of production (embedded or not) and of anything but embedded or development targets."""
    if target.environment == "production" or not (target.embedded or target.environment == "development"):
        raise InputError(
            f"refusing to reset target '{target.name}' (environment: {target.environment}): "
            f"db reset works only on non-production embedded targets or ones with environment: development"
        )


def reset(project: Project, target: Target) -> SeedResult:
    """Drop the target database, create it again, migrate and seed. Development targets only."""
    check_resettable(target)
    with connect(project, target, dbname="postgres", autocommit=True) as conn:
        name = sql.Identifier(target.database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    if target.embedded:
        ensure_database(project, target)  # the monitoring extensions of the local cluster
    migrate(project, target)
    return seed(project, target)
