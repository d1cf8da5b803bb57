"""Alembic environment for the CivicQ database.

`civicq-ops db migrate` hands over an open connection (config.attributes["connection"]).
Run as plain `alembic`, the target comes from civicq-ops.yaml: $CIVICQ_TARGET or the default.
Each migration runs in its own transaction so index migrations can use autocommit blocks
(`with op.get_context().autocommit_block():` around CREATE INDEX CONCURRENTLY and the like).

Every migration session sets lock_timeout and statement_timeout first (`migrations:` in
civicq-ops.yaml; default 5s and none): a statement queued for a lock blocks every reader behind
it, so it gives up after lock_timeout, and `civicq-ops db migrate` retries it with jittered
backoff. The offline SQL (`db migrate --sql`) starts with the same SET statements.
"""

from __future__ import annotations

import os

from alembic import context

config = context.config


def _configure(**kw) -> None:
    context.configure(transaction_per_migration=True, **kw)


def _session_settings() -> list[str]:
    settings = config.attributes.get("session_settings")
    if settings is None:
        from civicq_ops.civicq.migrations import session_settings
        from civicq_ops.config import load_project

        settings = session_settings(load_project())
    return list(settings)


def run_offline() -> None:
    _configure(url="postgresql+psycopg://", literal_binds=True, dialect_opts={"paramstyle": "named"})
    for statement in _session_settings():
        context.execute(statement)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # civicq-ops set the session up (migrations._run)
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from civicq_ops.civicq.migrations import engine_for
    from civicq_ops.config import load_project

    project = load_project()
    engine = engine_for(project, project.target(os.environ.get("CIVICQ_TARGET")))
    with engine.connect() as conn:
        for statement in _session_settings():
            conn.exec_driver_sql(statement)
        conn.commit()  # session-level settings outlive the transaction
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
