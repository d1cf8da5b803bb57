"""Pooled sessions (psycopg_pool) and their statistics as Prometheus metrics: the seed's
"connection pool monitoring" for applications that use civicq_ops' sessions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_pools: dict[str, Any] = {}
_lock = threading.Lock()


def get_pool(target: str | None = None, config: str | None = None, *, min_size: int = 1, max_size: int = 10):
    """The process-wide psycopg_pool.ConnectionPool of `target`, opened on first use.

    >>> with get_pool().connection() as conn:     # doctest: +SKIP
    ...     conn.execute("SELECT 1")
    """
    from psycopg.conninfo import make_conninfo
    from psycopg_pool import ConnectionPool

    from civicq_ops.config import load_project
    from civicq_ops.postgres.connect import connect_kwargs

    project = load_project(config)
    spec = project.target(target)
    with _lock:
        pool = _pools.get(spec.name)
        if pool is None:
            kw = connect_kwargs(project, spec)
            conninfo = make_conninfo(kw.pop("conninfo", ""), **{k: v for k, v in kw.items() if v is not None})
            pool = ConnectionPool(conninfo, min_size=min_size, max_size=max_size, name=spec.name, open=True)
            _pools[spec.name] = pool
        return pool


@contextmanager
def pooled_session(target: str | None = None, config: str | None = None) -> Iterator[Any]:
    """Like get_db_session, over the pool: one transaction, committed on success."""
    with get_pool(target, config).connection() as conn, conn.transaction():
        yield conn


def close_pools() -> None:
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def pool_stats() -> dict[str, dict[str, int]]:
    """psycopg_pool's get_stats() of every open pool, by target name."""
    with _lock:
        return {name: dict(pool.get_stats()) for name, pool in _pools.items()}


# The stats psycopg_pool keeps, as gauges (levels) or counters (running totals).
_GAUGES = {"pool_min": "Configured minimum connections", "pool_max": "Configured maximum connections",
           "pool_size": "Connections open or being opened", "pool_available": "Idle connections in the pool",
           "requests_waiting": "Clients waiting for a connection"}
_COUNTERS = {"requests_num": "Connections requested", "requests_queued": "Requests that had to wait",
             "requests_wait_ms": "Milliseconds spent waiting", "requests_errors": "Requests that failed",
             "connections_num": "Connections opened", "connections_errors": "Failed connection attempts",
             "connections_lost": "Connections found broken", "returns_bad": "Connections returned in a bad state"}


class PoolCollector:
    """prometheus_client collector: civicq_pool_*{pool} from every open pool (one series per pool)."""

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = pool_stats()
        for key, text in _GAUGES.items():
            g = GaugeMetricFamily(f"civicq_pool_{key}", text, labels=["pool"])
            for name, s in sorted(stats.items()):
                g.add_metric([name], s.get(key, 0))
            yield g
        for key, text in _COUNTERS.items():
            c = CounterMetricFamily(f"civicq_pool_{key}", text, labels=["pool"])
            for name, s in sorted(stats.items()):
                c.add_metric([name], s.get(key, 0))
            yield c
