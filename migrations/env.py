"""Alembic environment for the CivicQ database.

`civicq-ops db migrate` hands over an open connection (config.attributes["connection"]).
Run as plain `alembic`, the target comes from civicq-ops.yaml: $CIVICQ_TARGET or the default.
Each migration runs in its own transaction so index migrations can use autocommit blocks.
"""

from __future__ import annotations

import os

from alembic import context

config = context.config


def _configure(**kw) -> None:
    context.configure(transaction_per_migration=True, **kw)


def run_offline() -> None:
    _configure(url="postgresql+psycopg://", literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from civicq_ops.civicq.migrations import engine_for
    from civicq_ops.config import load_project

    project = load_project()
    engine = engine_for(project, project.target(os.environ.get("CIVICQ_TARGET")))
    with engine.connect() as conn:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
