"""`db seed` and `db reset`: the development data of seeds/, and a clean slate for development."""

from __future__ import annotations

import importlib.util
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from types import ModuleType

import psycopg
from psycopg import sql

from civicq_ops.civicq.deferred_indexes import indexes_built_after
from civicq_ops.civicq.migrations import asset_dir, migrate
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import InputError, QueryFailed, first_line
from civicq_ops.postgres.connect import connect, ensure_database, one_row


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
    # Where the time went, in order: "development set", "load", "indexes and keys", "statistics",
    # "views", "commit and ANALYZE" (bench/seed.py prints them).
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


# What a bare ANALYZE covers (tables, materialized views, partitioned tables; not other sessions'
# temporary tables) but the tables already analyzed.
_UNANALYZED = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p') AND c.relpersistence <> 't' AND c.oid <> ALL(%s::regclass[]) ORDER BY c.oid
"""


def seed(project: Project, target: Target, scale: int = 0) -> SeedResult:
    """Insert the development data (idempotent); with `scale`, also the generated load data set."""
    if scale < 0:
        raise InputError("--scale must be 0 or more")
    started = time.perf_counter()
    result = SeedResult()
    with connect(project, target) as conn:
        try:
            _require_schema(conn)
            mark = time.perf_counter()

            def phase(name: str) -> None:
                nonlocal mark
                now = time.perf_counter()
                result.phases[name] = result.phases.get(name, 0.0) + now - mark
                mark = now

            fresh = not one_row(conn.execute("SELECT EXISTS (SELECT 1 FROM users)"))[0]
            result.rows = load_seed_module(project, "seed_dev").seed(conn)
            phase("development set")
            bulk: list[str] = []
            if scale:
                module = load_seed_module(project, "scale")
                # The first scaled load (the tables hold at most the development set) builds the
                # indexes and keys after COPY, as pg_restore does; a later one adds to live indexes.
                # A superuser loads with foreign key triggers off (seeds/scale.py); anyone else gets
                # the foreign keys validated once each after the load instead of per row.
                bulk = list(getattr(module, "TABLES", ())) if not module.units_present(conn) else []
                superuser = one_row(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))[0]
                with indexes_built_after(conn, bulk, foreign_keys=not superuser) if bulk else nullcontext():
                    for table, count in module.seed_scale(conn, scale).items():
                        result.rows[table] = result.rows.get(table, 0) + count
                    phase("load")
                phase("indexes and keys")
            if bulk:  # statistics first: without them city_dashboard alone took 14 s to refresh at --scale 100
                conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, bulk))))
                phase("statistics")
            # Into empty tables nobody reads the views yet: a plain refresh (no diff against the old
            # contents, no unique-index probe per row) is right; CONCURRENTLY only for a live database.
            # After a bulk load the transaction already holds every loaded table exclusively (its
            # indexes were dropped), so a plain refresh blocks no reader that was not blocked anyway.
            if one_row(conn.execute("SELECT to_regproc('refresh_all_materialized_views') IS NOT NULL"))[0]:
                conn.execute("SELECT * FROM refresh_all_materialized_views(%s)", (not fresh and not bulk,))
            phase("views")
            conn.commit()
            conn.autocommit = True
            # Fresh statistics, so the checks judge the seeded data fairly: the loaded tables have theirs.
            if not bulk:
                conn.execute("ANALYZE")
            elif rest := [sql.Identifier(schema, name) for schema, name in conn.execute(_UNANALYZED, (bulk,))]:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(rest)))
            phase("commit and ANALYZE")
        except psycopg.Error as e:
            raise QueryFailed(f"seeding target '{target.name}' failed: {first_line(e)}") from e
    result.seconds = time.perf_counter() - started
    return result


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
