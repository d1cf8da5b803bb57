"""Workers and a scheduler on procrastinate, a PostgreSQL job queue, in the shared state store.

- `schedule` defers one job per (target, check group) per interval: the slot is the interval
  number (offset per target, so a fleet's jobs spread over the interval instead of landing in the
  same second). `queueing_lock` (target|group|slot) keeps a second scheduler (or one restarted)
  from queueing the same interval twice; a target that is behind keeps its intervals queued, one
  at a time (its lock), and `fleet status` shows its lag. The
  inventory is expanded again every `fleet.refresh`; a group that cannot be expanded keeps its
  previous targets, whose jobs then find them down: a finding, never silence. One scheduler per
  queue is active (a lease in the state store); others stand by.
- `worker` takes jobs (`concurrency` at once). Every job carries `lock=target:NAME`, so one run per
  target at a time whatever the number of workers. A worker sends a heartbeat every
  `fleet.heartbeat`; every worker also looks for jobs whose worker has been silent for
  `fleet.stalled_after` (killed, its machine gone) and puts them back in the queue, where another
  worker takes them: a dead worker's job runs again within about stalled_after + heartbeat.
- A job claims its (target, group, slot) row in the ledger (fleet/ledger.py), runs the checks on
  one target, and records the run and finishes the row in one transaction: each (target,
  interval) is recorded once, however often its job is delivered. Alerts are evaluated after that,
  one worker at a time (an advisory lock), so an alert is not sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import procrastinate
import psycopg
from procrastinate import exceptions as pq_exceptions

from civicq_ops.alerts.process import load_alerting, process_run
from civicq_ops.catalog.load import project_catalog
from civicq_ops.config import Project
from civicq_ops.core.errors import CivicqError, ConfigError, ExecutionError
from civicq_ops.core.units import parse_duration
from civicq_ops.engine.run import RunOptions, Selection
from civicq_ops.facts import default_providers
from civicq_ops.fleet import ledger
from civicq_ops.fleet.inventory import FleetTarget, Resolver, expand
from civicq_ops.fleet.run import TargetOutcome, down_finding, run_one, settings
from civicq_ops.postgres.connect import open_connection
from civicq_ops.state.counters import CounterStore
from civicq_ops.state.store import StateStore, open_store

QUEUE = "civicq-fleet"
TASK = "civicq_ops.fleet.check"
SCHEDULER_LEASE = "fleet-scheduler"
_ALERTS_LOCK = 0x666C65657461  # one alert round at a time across workers
_SCHEMA_LOCK = 0x666C65657471
DEFAULT_SCHEDULE = {"quick": {"tags": ["quick"], "interval": "30s"}}

log = logging.getLogger("civicq_ops.fleet")


@dataclass(frozen=True)
class CheckGroup:
    name: str
    selection: Selection
    interval_s: float


def check_groups(project: Project) -> dict[str, CheckGroup]:
    raw = project.section("fleet").get("schedule") or DEFAULT_SCHEDULE
    out = {}
    for name, spec in raw.items():
        interval = parse_duration(spec["interval"])
        if interval < 1:
            raise ConfigError(f"fleet.schedule.{name}.interval must be at least 1s")
        out[name] = CheckGroup(name, Selection(checks=list(spec.get("checks") or []), tags=list(spec.get("tags") or []),
                                               categories=list(spec.get("categories") or [])), interval)
    return out


def queue_url(project: Project) -> str:
    """The queue's database: fleet.queue, else the state store's (which must then be PostgreSQL)."""
    raw = project.section("fleet").get("queue")
    if raw:
        return project.interpolate(raw, ("fleet", "queue"))
    if project.state.url and not project.state.url.startswith("sqlite"):
        url = project.interpolate(project.state.url, ("state", "url"))
        if url.startswith(("postgresql://", "postgres://")):
            return url
    raise ConfigError(f"{project.path}: fleet workers share a PostgreSQL database: set state.url (or fleet.queue) "
                      "to postgresql://...")


def make_app(url: str) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(conninfo=url, kwargs={"application_name": "civicq-ops fleet"})
    app = procrastinate.App(connector=connector)
    app.task(name=TASK, queue=QUEUE, pass_context=True,
             retry=procrastinate.RetryStrategy(max_attempts=3, wait=5))(_check_job)
    return app


def ensure_schema(url: str) -> None:
    """procrastinate's tables in the queue database, created once (an advisory lock: two workers
    starting together create them once)."""
    with open_connection({"conninfo": url}, what="the fleet queue", autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() == (True,):
            return
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                if conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() == (True,):
                    return
                schema = procrastinate.App(connector=procrastinate.PsycopgConnector()).schema_manager.get_schema()
                conn.execute(schema.encode())
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            # Another process created it at the same moment (seen once in CI with two workers
            # starting together, despite the lock): the schema is there, which is all we need.
            if conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() != (True,):
                raise


def slot_of(target: str, group: CheckGroup, now: float) -> tuple[int, float]:
    """The interval `now` falls in for this target (an offset per target spreads the fleet), and its due time."""
    offset = (zlib.crc32(f"{target}|{group.name}".encode()) % 1000) / 1000 * group.interval_s
    slot = int((now - offset) // group.interval_s)
    return slot, slot * group.interval_s + offset


# -- the job --------------------------------------------------------------------------------------

def _check_job(context: procrastinate.JobContext, target: str, check_group: str, slot: int, due_at: float) -> str:
    fleet: FleetWorker = context.additional_context["fleet"]
    return fleet.run(target, check_group, slot, due_at, context.worker_name or "worker")


class FleetWorker:
    """What every job of one worker process shares: the project, the catalogue, the resolver, a
    state store connection per thread."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.catalog = project_catalog(project).catalog
        self.groups = check_groups(project)
        for group in self.groups.values():
            group.selection.pick(self.catalog)  # a schedule that selects nothing is exit 2 at start
        self.conf = settings(project)
        self.resolver = Resolver(project, ttl_s=self.conf["refresh_s"])
        self.notifiers = load_alerting(project)
        self.facts = default_providers(project)
        self._local = threading.local()
        self.done = 0

    def store(self) -> StateStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = open_store(self.project)
        return store

    def _drop_store(self) -> None:
        store = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                pass

    def close(self) -> None:
        """Close this thread's state store connection."""
        self._drop_store()

    def run(self, target: str, check_group: str, slot: int, due_at: float, worker: str) -> str:
        try:
            return self._run(target, check_group, slot, due_at, worker)
        except BaseException:
            self._drop_store()  # a store that went away is opened again by the retry
            raise

    def _run(self, target: str, check_group: str, slot: int, due_at: float, worker: str) -> str:
        store = self.store()
        attempt = ledger.claim(store, target, check_group, slot, due_at, f"{socket.gethostname()}:{os.getpid()}:{worker}")
        if attempt is None:
            return "already done"
        group = self.groups.get(check_group)
        outcome: TargetOutcome
        try:
            if group is None:
                raise ConfigError(f"no check group '{check_group}' in fleet.schedule")
            ft: FleetTarget = self.resolver.get(target)
            options = RunOptions(budget_s=self.conf["timeout_s"], pool_size=1, facts=self.facts, counters=CounterStore(store))
            outcome = run_one(self.project, self.catalog, ft, group.selection, options)
        except CivicqError as e:
            outcome = TargetOutcome(target, {}, [down_finding(target, e.message)], down=e.message)
        worst = "down" if outcome.down else max((f.status for f in outcome.findings),
                                                key=lambda s: ("ok", "skipped", "warning", "error", "critical").index(s),
                                                default="ok")
        try:
            with store.transaction():
                # The ledger row first: it locks the row, so a second delivery of this interval
                # running at the same time waits here, then finds it finished and records nothing.
                if not ledger.finish(store, target, check_group, slot,
                                     run_id=outcome.result.id if outcome.result else None, status=worst,
                                     summary=outcome.summary.to_dict(), labels=outcome.labels, detail=outcome.down):
                    raise _AlreadyRecorded
                if outcome.result is not None:
                    store.record_run(outcome.result)
        except _AlreadyRecorded:
            return "already done"
        self.done += 1
        if self.notifiers is not None and outcome.result is not None:
            store.execute("SELECT pg_advisory_lock(?)", (_ALERTS_LOCK,))
            try:
                process_run(outcome.result, self.catalog, store, self.notifiers, target_labels={target: outcome.labels})
            finally:
                store.execute("SELECT pg_advisory_unlock(?)", (_ALERTS_LOCK,))
        return f"{worst} (attempt {attempt})"


class _AlreadyRecorded(Exception):
    """Another delivery of the same interval finished first: roll this one's writes back."""


async def _recover_stalled(app: procrastinate.App, stalled_after_s: float, every_s: float) -> None:
    """Put the jobs of workers silent for `stalled_after_s` back in the queue (each worker does
    this; a job retried by one is no longer `doing` for the others)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            for job in await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=stalled_after_s):
                try:
                    await app.job_manager.retry_job(job)
                    log.warning("job %s (%s) of a dead worker is queued again", job.id, job.task_kwargs.get("target"))
                except (pq_exceptions.ProcrastinateException, psycopg.Error):
                    pass  # another worker retried it first
        except (pq_exceptions.ProcrastinateException, psycopg.Error, OSError) as e:
            log.warning("looking for stalled jobs failed: %s", e)


def run_worker(project: Project, concurrency: int = 2, name: str | None = None, for_s: float | None = None) -> int:
    """Take jobs until SIGTERM/SIGINT (or `for_s` seconds); the number of jobs this worker ran."""
    url = queue_url(project)
    ensure_schema(url)
    conf = settings(project)
    fleet = FleetWorker(project)
    app = make_app(url)
    name = name or f"{socket.gethostname()}-{os.getpid()}"

    async def main() -> None:
        async with app.open_async():
            recover = asyncio.create_task(_recover_stalled(app, conf["stalled_after_s"], conf["heartbeat_s"]))
            worker = asyncio.create_task(app.run_worker_async(
                queues=[QUEUE], concurrency=concurrency, name=name, wait=True, additional_context={"fleet": fleet},
                update_heartbeat_interval=conf["heartbeat_s"], stalled_worker_timeout=conf["stalled_after_s"],
                shutdown_graceful_timeout=conf["timeout_s"] + 5, fetch_job_polling_interval=1.0, delete_jobs="never",
                install_signal_handlers=True))
            try:
                await asyncio.wait([worker], timeout=for_s)
                if not worker.done():
                    worker.cancel()  # a graceful stop: running jobs finish (up to the shutdown timeout)
                    await asyncio.gather(worker, return_exceptions=True)
                elif worker.exception() is not None:
                    raise ExecutionError(f"the fleet worker stopped: {worker.exception()}")
            finally:
                recover.cancel()
                await asyncio.gather(recover, return_exceptions=True)

    asyncio.run(main())
    return fleet.done


# -- the scheduler --------------------------------------------------------------------------------

@dataclass
class ScheduleStats:
    deferred: int = 0
    errors: int = 0  # rounds that lost the store or the queue (and went on)
    still_queued: int = 0  # that interval's job was already waiting (another scheduler queued it): not queued twice
    targets: int = 0
    problems: dict[str, str] = field(default_factory=dict)
    active: bool = False


def _lease(store: StateStore, holder: str, ttl_s: float) -> bool:
    now = time.time()
    rows = store.execute("INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                         "SET holder = excluded.holder, expires_at = excluded.expires_at "
                         "WHERE leases.holder = excluded.holder OR leases.expires_at < ? RETURNING holder",
                         (SCHEDULER_LEASE, holder, now + ttl_s, now))
    return bool(rows)


def schedule(project: Project, stop: threading.Event, for_s: float | None = None,
             clock: Callable[[], float] = time.time, on_tick: Callable[[ScheduleStats], None] | None = None) -> ScheduleStats:
    """Defer the fleet's jobs until `stop` is set (or `for_s` seconds passed)."""
    url = queue_url(project)
    ensure_schema(url)
    conf = settings(project)
    groups = check_groups(project)
    catalog = project_catalog(project).catalog
    for group in groups.values():
        group.selection.pick(catalog)
    app = make_app(url)
    app.open()
    stats = ScheduleStats()
    holder = f"{socket.gethostname()}:{os.getpid()}:{id(stats)}"
    ends = None if for_s is None else time.monotonic() + for_s
    last: dict[tuple[str, str], int] = {}
    known: dict[str, list[str]] = {}  # group (or "" for targets:) -> target names of its last good expansion
    refreshed = -1e18
    store: StateStore | None = None
    backoff = 0.5
    try:
        while not stop.is_set() and (ends is None or time.monotonic() < ends):
            try:
                if store is None:
                    store = open_store(project)
                stats.active = _lease(store, holder, max(3 * conf["heartbeat_s"], 5.0))
                if not stats.active:
                    stop.wait(1.0)
                    continue
                if time.monotonic() - refreshed >= conf["refresh_s"]:
                    inventory = expand(project)
                    fresh: dict[str, list[str]] = {}
                    for t in inventory.targets:
                        fresh.setdefault(t.group or "", []).append(t.name)
                    for g in inventory.problems:
                        fresh[g] = known.get(g, [])
                    for g, why in inventory.problems.items():
                        if stats.problems.get(g) != why:
                            log.warning("fleet group or target %s cannot be listed: %s (its targets of the last good "
                                        "listing stay scheduled)", g, why)
                    for g in set(stats.problems) - set(inventory.problems):
                        log.warning("fleet group or target %s can be listed again", g)
                    known, stats.problems, refreshed = fresh, dict(inventory.problems), time.monotonic()
                    stats.targets = sum(len(v) for v in known.values())
                _defer_due(app, known, groups, last, clock(), stats)
                backoff = 0.5
            except (CivicqError, pq_exceptions.ProcrastinateException, psycopg.Error, OSError) as e:
                # The store or the queue went away (a restart, a failover): keep what was deferred,
                # open them again and go on; the slots not deferred yet are deferred then.
                stats.errors += 1
                log.warning("the scheduler lost the state store or the queue (%s); again in %.1fs", e, backoff)
                if store is not None:
                    with contextlib.suppress(Exception):
                        store.close()
                    store = None
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if on_tick is not None:
                on_tick(stats)
            stop.wait(0.25)
    finally:
        if store is not None:
            with contextlib.suppress(CivicqError):
                store.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (SCHEDULER_LEASE, holder))
            store.close()
        app.close()
    return stats


def _defer_due(app: procrastinate.App, known: dict[str, list[str]], groups: dict[str, CheckGroup],
               last: dict[tuple[str, str], int], now: float, stats: ScheduleStats) -> None:
    """Defer each (target, group) whose interval started since its last job; a slot is marked
    only once its job is in the queue, so one that failed is deferred at the next round."""
    for name in (n for names in known.values() for n in names):
        for group in groups.values():
            slot, due = slot_of(name, group, now)
            if last.get((name, group.name)) == slot:
                continue
            due = max(due, now)  # the first interval a scheduler sees is due when it is queued, not before
            try:
                app.configure_task(TASK, lock=f"target:{name}", queueing_lock=f"{name}|{group.name}|{slot}",
                                   queue=QUEUE).defer(target=name, check_group=group.name, slot=slot, due_at=due)
                stats.deferred += 1
            except pq_exceptions.AlreadyEnqueued:
                stats.still_queued += 1
            last[(name, group.name)] = slot
