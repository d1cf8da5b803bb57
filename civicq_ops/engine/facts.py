"""Runner facts: what the runner measures or keeps about a target, as opposed to what the server
is and allows (core/capabilities.py).

A check declares the facts it reads (`facts: [connection]`) and its templates see them as
`facts.NAME.KEY`. A run gathers each needed fact once per target from a provider passed in
`RunOptions.facts` (name -> provider); a check whose fact has no provider is skipped with the
reason, and a provider that fails turns the checks that need it into `error` findings. The engine
knows no provider: the defaults for a project are built above it (civicq_ops/facts.py), so the
engine never reaches into backups or the file system.

The providers here need only a connection: `connection` (connect time of a fresh connection,
clock skew) and `disk` (data directory usage, on a target on this machine).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from civicq_ops.config import Project, Target
from civicq_ops.core.capabilities import Capabilities
from civicq_ops.core.errors import first_line
from civicq_ops.postgres.connect import connect


@dataclass(frozen=True)
class FactContext:
    """What a provider may use: the target, its capabilities and an open, probed connection."""

    project: Project
    target: Target
    caps: Capabilities
    conn: psycopg.Connection
    deadline: float | None = None  # time.monotonic() by which the run must end (--budget)

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


FactProvider = Callable[[FactContext], Mapping[str, Any]]


class FactUnavailable(Exception):
    """A provider raises it when the fact cannot be judged for this target (e.g. its backups are
    taken by another tool): the checks that need the fact are skipped with this reason."""


def connection_facts(ctx: FactContext) -> dict[str, Any]:
    """`connect_ms`: the time to open one more connection, timed around the connect alone (psycopg is
    imported at the top of this module, so the import is never in the timing); `clock_skew_s`: the
    server's now() against the midpoint of the round trip that read it (error <= half the RTT)."""
    started = time.perf_counter()
    conn = connect(ctx.project, ctx.target, autocommit=True, timeout=ctx.time_left())
    connect_ms = (time.perf_counter() - started) * 1000
    conn.close()
    with ctx.conn.transaction():
        sent = time.time()
        row = ctx.conn.execute("SELECT now()").fetchone()
        received = time.time()
    assert row is not None
    skew = row[0].timestamp() - (sent + received) / 2
    return {"connect_ms": round(connect_ms, 2), "clock_skew_s": round(skew, 3)}


def disk_facts(ctx: FactContext) -> dict[str, Any]:
    """Usage of the file system under the data directory; only on a target whose files are on this
    machine (an embedded one) and for a role that may read `data_directory`. Otherwise all None."""
    facts: dict[str, Any] = {"data_directory": None, "used_ratio": None, "free_bytes": None}
    with ctx.conn.transaction():
        row = ctx.conn.execute(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
            " OR pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')").fetchone()
        if not (row and row[0]):
            return facts
        got = ctx.conn.execute("SELECT current_setting('data_directory')").fetchone()
    facts["data_directory"] = got[0] if got else None
    if not (ctx.caps.local and facts["data_directory"]):
        return facts
    try:
        usage = shutil.disk_usage(facts["data_directory"])
    except OSError:
        return facts
    facts["used_ratio"] = round(usage.used / usage.total, 4) if usage.total else None
    facts["free_bytes"] = usage.free
    return facts


def connection_providers() -> dict[str, FactProvider]:
    """The providers that need nothing but the target."""
    return {"connection": connection_facts, "disk": disk_facts}


def gather(needed: set[str], providers: Mapping[str, FactProvider],
           ctx: FactContext) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    """Each needed fact from its provider: (facts, name -> (finding status, reason) when it is missing).
    No provider: the checks that need it are skipped; a provider that fails: they are errors."""
    facts: dict[str, dict[str, Any]] = {}
    missing: dict[str, tuple[str, str]] = {}
    for name in sorted(needed):
        provider = providers.get(name)
        if provider is None:
            missing[name] = ("skipped", f"needs the runner fact '{name}', which this run has no provider for")
            continue
        try:
            facts[name] = dict(provider(ctx))
        except FactUnavailable as e:
            missing[name] = ("skipped", str(e))
        except Exception as e:  # noqa: BLE001 - a failing provider fails only the checks that need it
            missing[name] = ("error", f"the runner fact '{name}' could not be gathered: {first_line(e)}")
    return facts, missing
