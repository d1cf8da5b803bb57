"""Shared query results: two runs over the same targets (the catalogue of a pull request's base
and of its head, `civicq-ops diff`) probe each target once and send each distinct query once.

A run that is given a `SharedResults` looks a target's probe and each rendered query (its SQL text
and binds) up here first; what is not here yet it runs and keeps. So a second run costs only the
queries whose rendered SQL differs, and both runs judge the same rows.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from civicq_ops.core.capabilities import Capabilities

Rows = list[dict[str, Any]]


@dataclass
class Probed:
    """What a run learned about a target before its checks: capabilities and runner facts."""

    relations: frozenset[str]
    settings: frozenset[str]
    caps: Capabilities
    facts: dict[str, dict[str, Any]]
    missing: dict[str, tuple[str, str]]
    needed: frozenset[str]

    def covers(self, relations: set[str], settings: set[str]) -> bool:
        return relations <= self.relations and settings <= self.settings


@dataclass
class SharedResults:
    """The probes and query results of the runs that share this object; counts what was sent."""

    probes: dict[str, Probed] = field(default_factory=dict)
    results: dict[tuple[str, str, str], Rows | str] = field(default_factory=dict)
    queries_sent: int = 0
    queries_reused: int = 0
    probes_sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def probed(self, target: str, relations: set[str], settings: set[str]) -> Probed | None:
        with self._lock:
            entry = self.probes.get(target)
        return entry if entry is not None and entry.covers(relations, settings) else None

    def keep_probe(self, target: str, entry: Probed) -> None:
        with self._lock:
            self.probes[target] = entry
            self.probes_sent += 1

    def fetch(self, target: str, sql: str, binds: Any, run: Callable[[], Rows | str]) -> Rows | str:
        """The rows (or the failure's reason) of this query on this target: kept, or run now."""
        key = (target, sql, repr(binds))
        with self._lock:
            kept = self.results.get(key)
            if kept is not None:
                self.queries_reused += 1
        if kept is None:
            kept = run()
            with self._lock:
                self.queries_sent += 1
                self.results[key] = kept
        # Each run gets its own copy: evaluation may write into a row (delta ratios).
        return kept if isinstance(kept, str) else copy.deepcopy(kept)
