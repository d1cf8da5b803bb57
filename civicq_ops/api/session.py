"""Sessions: a connection to a target whose transaction commits on success and rolls back on error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from civicq_ops.config import load_project
from civicq_ops.postgres.connect import connect

T = TypeVar("T")


@contextmanager
def get_db_session(target: str | None = None, config: str | None = None) -> Iterator[Any]:
    """A psycopg connection to `target` (default: civicq-ops.yaml's default, or $CIVICQ_DATABASE_URL).

    >>> with get_db_session() as conn:            # doctest: +SKIP
    ...     conn.execute("UPDATE questions SET status = 'approved' WHERE id = %s", (7,))
    """
    project = load_project(config)
    conn = connect(project, project.target(target))
    try:
        with conn.transaction():
            yield conn
    finally:
        conn.close()


def execute_transaction(fn: Callable[..., T], *args: Any, target: str | None = None, **kwargs: Any) -> T:
    """Run `fn(conn, *args, **kwargs)` in one transaction: all of it commits, or none of it."""
    with get_db_session(target) as conn:
        return fn(conn, *args, **kwargs)
