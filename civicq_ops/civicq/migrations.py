"""Alembic, driven programmatically: migrate, rollback, history, current, create, offline SQL.

alembic and SQLAlchemy are imported inside the functions that drive them: together they take
~0.5-1 s to import, and `db seed` and `db reset` reach this module for asset_dir and migrate only
when they need them.
"""

from __future__ import annotations

import io
import random
import time
from dataclasses import dataclass
from pathlib import Path

from civicq_ops.config import Project, Target
from civicq_ops.core.assets import shipped_dir
from civicq_ops.core.errors import ConfigError, InputError, QueryFailed
from civicq_ops.core.redaction import redact


def asset_dir(project: Project, name: str) -> Path:
    """A folder of the CivicQ database (migrations, sql, seeds): the project's own, else the one
    civicq-ops ships (core/assets.py)."""
    if (project.root / name).is_dir():
        return project.root / name
    shipped = shipped_dir(name)
    if shipped is None:
        raise ConfigError(f"no {name}/ folder beside {project.path}, and this installation ships none")
    return shipped


def engine_for(project: Project, target: Target):
    """A SQLAlchemy engine over psycopg 3 that connects the way civicq-ops does."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from civicq_ops.postgres.connect import connect

    return sa.create_engine("postgresql+psycopg://", creator=lambda: connect(project, target), poolclass=NullPool)


def session_settings(project: Project) -> list[str]:
    """The SET statements every migration session starts with (`migrations:` in civicq-ops.yaml)."""
    m = project.migrations
    # No terminator: alembic's offline SQL adds its own (`;;` before), a driver needs none.
    return [f"SET lock_timeout = '{int(m.lock_timeout * 1000)}ms'",
            f"SET statement_timeout = '{int(m.statement_timeout * 1000)}ms'"]


def _config(project: Project, connection=None, buffer: io.StringIO | None = None):
    from alembic.config import Config

    cfg = Config(output_buffer=buffer, stdout=buffer or io.StringIO())
    cfg.set_main_option("script_location", str(asset_dir(project, "migrations")))
    cfg.attributes["session_settings"] = session_settings(project)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@dataclass
class MigrationResult:
    before: str | None
    after: str | None
    sql: str | None = None
    tries: int = 1


def _run(project: Project, target: Target, fn) -> MigrationResult:
    """Run an alembic command on one connection set up with the session settings. A lock timeout
    is retried `migrations.retries` times after a jittered, doubling backoff: each migration is its
    own transaction (or, for autocommit blocks, written to be re-run), so a retry resumes at the
    migration that timed out."""
    import psycopg.errors
    import sqlalchemy.exc
    from alembic.util import CommandError

    settings = project.migrations
    engine = engine_for(project, target)
    before: str | None = None
    tries = 0
    try:
        for attempt in range(settings.retries + 1):
            tries = attempt + 1
            try:
                with engine.connect() as conn:
                    if attempt == 0:
                        before = _current(conn)
                    for statement in session_settings(project):
                        conn.exec_driver_sql(statement)
                    conn.commit()  # alembic must own the transactions (index builds need autocommit blocks)
                    fn(_config(project, conn))
                    conn.commit()
                    after = _current(conn)
                return MigrationResult(before, after, tries=attempt + 1)
            except sqlalchemy.exc.DBAPIError as e:
                if isinstance(e.orig, psycopg.errors.LockNotAvailable) and attempt < settings.retries:
                    time.sleep(settings.retry_backoff * (2 ** attempt) * random.uniform(0.5, 1.5))
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")
    except CommandError as e:
        raise InputError(redact(str(e))) from e
    except sqlalchemy.exc.DBAPIError as e:
        orig = e.orig if e.orig is not None else e
        reason = redact(str(orig).splitlines()[0])
        if isinstance(orig, psycopg.errors.LockNotAvailable):
            reason = (f"lock timeout on each of {tries} tries (lock_timeout "
                      f"{settings.lock_timeout:g}s): {reason}; another session holds a conflicting lock")
        raise QueryFailed(f"migration failed on target '{target.name}': {reason}") from e
    finally:
        engine.dispose()


def _current(conn) -> str | None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def migrate(project: Project, target: Target, revision: str = "head") -> MigrationResult:
    """Upgrade the target to `revision` (default: the newest), after building the indexes an
    interrupted `db seed` left listed (civicq.pending_indexes): a migration may alter them."""
    from alembic import command

    _build_pending_indexes(project, target)
    return _run(project, target, lambda cfg: command.upgrade(cfg, revision))


def _build_pending_indexes(project: Project, target: Target) -> None:
    import psycopg

    from civicq_ops.civicq import pending_indexes
    from civicq_ops.core.errors import first_line
    from civicq_ops.postgres.connect import connect

    with connect(project, target) as conn:
        try:
            for statement in session_settings(project):  # lock_timeout, statement_timeout, as migrations run
                conn.execute(statement)
            conn.commit()
            pending_indexes.build_all(conn)
        except pending_indexes.UntrustedList as e:
            raise QueryFailed(f"migrating target '{target.name}': {e.message}; nothing was migrated") from e
        except pending_indexes.IndexBuildFailed as e:
            raise QueryFailed(f"migrating target '{target.name}': {e.message} (an index an interrupted "
                              f"`db seed` left to build); nothing was migrated") from e
        except psycopg.Error as e:
            raise QueryFailed(f"migrating target '{target.name}': finishing the indexes an interrupted `db seed` "
                              f"left to build failed: {first_line(e)}; nothing was migrated") from e


def checked_revision(project: Project, rev: str, what: str) -> str:
    """`base`, `head` or a revision a migration file defines; anything else is exit 2 naming them."""
    known = [r.revision for r in history(project)]
    if rev in ("base", "head") or rev in known:
        return rev
    raise InputError(f"{what}: unknown revision {rev!r} (known: base, {', '.join(known)}, head)")


def revision_order(project: Project, start: str | None, end: str, what: str) -> None:
    """Refuse a range whose start comes after its end (alembic would print nothing and pass)."""
    order = ["base", *[r.revision for r in history(project)]]
    first = order.index(checked_revision(project, start or "base", what))
    last = len(order) - 1 if end == "head" else order.index(checked_revision(project, end, what))
    if first > last:
        raise InputError(f"{what}: {start} comes after {end}: a range goes from older to newer")


def migration_sql(project: Project, revision: str = "head", start: str | None = None) -> str:
    """The SQL an upgrade would run, for review; nothing is executed and no database is needed."""
    from alembic import command
    from alembic.util import CommandError

    revision_order(project, start, revision, "db migrate --sql")
    buffer = io.StringIO()
    spec = f"{start}:{revision}" if start else revision
    try:
        command.upgrade(_config(project, buffer=buffer), spec, sql=True)
    except CommandError as e:
        raise InputError(str(e)) from e
    return buffer.getvalue()


def rollback(project: Project, target: Target, steps: int = 1) -> MigrationResult:
    """Downgrade `steps` revisions."""
    from alembic import command

    if steps < 1:
        raise InputError("--steps must be at least 1")
    return _run(project, target, lambda cfg: command.downgrade(cfg, f"-{steps}"))


def current(project: Project, target: Target) -> str | None:
    engine = engine_for(project, target)
    try:
        with engine.connect() as conn:
            return _current(conn)
    finally:
        engine.dispose()


@dataclass
class MigrationStatus:
    current: str | None
    head: str | None
    pending: list[str]


def status(project: Project, target: Target) -> MigrationStatus:
    """Where the target is, the newest revision, and the revisions not applied yet (oldest first)."""
    at = current(project, target)
    revs = [r.revision for r in history(project)]
    if at is not None and at not in revs:
        raise InputError(f"target '{target.name}' is at revision {at}, which no migration file defines")
    pending = revs[revs.index(at) + 1:] if at is not None else revs
    return MigrationStatus(at, revs[-1] if revs else None, pending)


def pending_sql(project: Project, target: Target, revision: str = "head") -> str:
    """The SQL of the migrations the target has not applied yet (up to `revision`)."""
    checked_revision(project, revision, "db migrate --sql")
    st = status(project, target)
    if not st.pending or st.current == revision:
        return f"-- nothing to upgrade: target '{target.name}' is at {st.current or '<empty>'} (head {st.head})\n"
    return migration_sql(project, revision, st.current or "base")


@dataclass
class Revision:
    revision: str
    down_revision: str | None
    message: str
    path: str


def history(project: Project) -> list[Revision]:
    """Every revision, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config(project))
    revs = list(scripts.walk_revisions())
    revs.reverse()
    # This history is linear (no merge revisions): down_revision is one revision or None.
    return [Revision(r.revision, r.down_revision if isinstance(r.down_revision, str) else None,
                     (r.doc or "").splitlines()[0] if r.doc else "", r.path) for r in revs]


def create_migration(project: Project, message: str) -> Path:
    """A new empty revision after the current head, numbered like the others."""
    from alembic import command

    if not message.strip():
        raise InputError("a migration needs a message")
    revs = history(project)
    numbers = [int(r.revision) for r in revs if r.revision.isdigit()]
    rev_id = f"{(max(numbers) + 1 if numbers else 1):04d}"
    script = command.revision(_config(project), message=message, rev_id=rev_id)
    if script is None or isinstance(script, list):  # one head, no --autogenerate: always one script
        raise InputError("alembic did not create exactly one migration")
    return Path(script.path)
