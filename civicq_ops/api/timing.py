"""QueryPerformanceTracker: time blocks of database work and log the slow ones (monitoring.py)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger("civicq_ops.slow_queries")


@dataclass
class QueryPerformanceTracker:
    """>>> tracker = QueryPerformanceTracker(slow_ms=200)
    >>> with tracker.track("load dashboard"):
    ...     pass
    >>> tracker.stats["load dashboard"]["count"]
    1
    """

    slow_ms: float = 500.0
    stats: dict[str, dict] = field(default_factory=dict)

    @contextmanager
    def track(self, label: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            ms = (time.perf_counter() - started) * 1000
            s = self.stats.setdefault(label, {"count": 0, "total_ms": 0.0, "max_ms": 0.0, "slow": 0})
            s["count"] += 1
            s["total_ms"] += ms
            s["max_ms"] = max(s["max_ms"], ms)
            if ms >= self.slow_ms:
                s["slow"] += 1
                log.warning("slow query block %r took %.0f ms (threshold %.0f ms)", label, ms, self.slow_ms)
