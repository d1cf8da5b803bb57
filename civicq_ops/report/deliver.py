"""`run checks`, `health` and `baseline write` as library calls: check the request before anything
runs, run the checks with the project's runner facts, keep the run in the state store, render
standard output and write the extra `--output` files. The CLI prints `Delivered.text` and exits
with `Delivered.result.exit_code`; tests call the same functions."""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from civicq_ops.catalog.load import project_catalog
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, ExecutionError, ExitCode, InputError
from civicq_ops.core.units import parse_duration
from civicq_ops.engine.baseline import write_baseline
from civicq_ops.engine.run import DEFAULT_POOL, Progress, RunOptions, RunResult, Selection, run_checks
from civicq_ops.facts import default_providers
from civicq_ops.report.formats import RUN_FORMATS, OutputFailure, parse_outputs, render_safely, write_outputs
from civicq_ops.report.history import TRENDED
from civicq_ops.state.counters import CounterStore, Previous
from civicq_ops.state.store import StateStore, open_store

FAIL_ON = ("warning", "critical")


@dataclass
class RunRequest:
    """What `run checks` (or `health`) was asked for, as given on the command line."""

    selection: Selection = field(default_factory=Selection)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_on: str = "critical"
    fmt: str = "text"
    outputs: list[str] = field(default_factory=list)  # FORMAT=PATH
    budget: str | None = None
    baseline: str | None = None
    pool: int | None = None  # connections per target; None: the engine's default
    verbose: bool = False  # list ok findings (and have the queries that count them return them)
    colour: bool = False
    pretty: bool = False  # indented JSON


@dataclass
class Delivered:
    result: RunResult
    text: str  # standard output, in the requested format
    exit_code: ExitCode  # the run's, or 3 when an output could not be written
    errors: list[str] = field(default_factory=list)  # for stderr too, as every error is (README)
    notices: list[str] = field(default_factory=list)  # for stderr: e.g. the run could not be recorded


def run_and_report(project: Project, targets: list[Target], request: RunRequest,
                   progress: Progress | None = None, store: StateStore | None = None) -> Delivered:
    """Validate the request (exit 2 before any connection), run, record, render, write outputs.

    One state store serves the whole run (delta counters, alerts, history; `store`, else the
    project's, opened on first use), and the run's writes to it are one transaction."""
    if request.fmt not in RUN_FORMATS:
        raise InputError(f"unknown format '{request.fmt}' (choose from {', '.join(RUN_FORMATS)})")
    if request.fail_on not in FAIL_ON:
        raise InputError("--fail-on must be warning or critical")
    out_specs = parse_outputs(request.outputs)
    try:
        budget_s = parse_duration(request.budget) if request.budget is not None else None
    except ValueError as e:
        raise InputError(f"--budget: {e}") from e
    if request.pool is not None and request.pool < 1:
        raise InputError(f"--pool must be at least 1, not {request.pool}")
    if request.baseline is not None and not request.baseline.strip():
        raise InputError("--baseline needs a file")
    catalog = project_catalog(project).catalog
    notifiers = _alerting(project)
    options = RunOptions(params=request.params, fail_on=request.fail_on, budget_s=budget_s,
                         baseline=request.baseline, pool_size=request.pool or DEFAULT_POOL, facts=default_providers(project),
                         list_ok=request.verbose)
    counters = _LazyCounters(project, store)
    options.counters = counters
    try:
        return _run_and_report(project, targets, request, progress, catalog, notifiers, options, counters, out_specs)
    finally:
        if store is None:
            counters.close()


def _run_and_report(project, targets, request, progress, catalog, notifiers, options, counters,
                    out_specs) -> Delivered:
    result = run_checks(project, targets, catalog, request.selection, options, progress=progress)
    if notifiers is not None:  # bounded by each notifier's timeout; failures are notices
        from civicq_ops.alerts.process import notify_run

        shared = counters.store()
        result.notices.extend(notify_run(project, catalog, result, notifiers, store=shared).notices())
    # The report first: rendered and written before history is recorded, which is best effort.
    # Each output on its own: one that fails is named, the others are still written (exit 3).
    failures: list[OutputFailure] = []
    text = render_safely(result, request.fmt, f"{request.fmt} (standard output)", failures,
                         colour=request.colour, verbose=request.verbose, pretty=request.pretty)
    failures += write_outputs(result, out_specs, stdout_format=request.fmt, pretty=request.pretty)
    # A store that could not be opened is tried once more by record_run, which names the failure.
    notice = record_run(project, result, counters.store(), pending=counters)
    errors = [e["message"] for e in result.errors]
    errors += [f"output {failure.name} was not written: {failure.message}" for failure in failures]
    return Delivered(result, text or "", ExitCode.EXECUTION_ERROR if failures else result.exit_code,
                     errors=errors, notices=[n for n in (counters.notice, notice) if n])


def _alerting(project: Project) -> dict | None:
    """The project's notifiers (a bad one stops the run, exit 2), None without any: the alerting
    code is imported only by projects that alert (~15 ms of every run's start otherwise)."""
    if not project.section("notifiers"):
        return None
    from civicq_ops.alerts.process import load_alerting

    return load_alerting(project)


class _LazyCounters:
    """The run's state store, opened on first use (so a run refused before anything runs, such as a
    bad --param or an empty selection, writes nothing) and kept for the rest of the run: previous
    counters for `delta:` checks, alerts and history. New counters wait for the run's record and are
    written in its transaction. A store that cannot be opened gives a notice; the delta checks then
    have no previous counters to judge against."""

    def __init__(self, project: Project, store: StateStore | None = None) -> None:
        self.project = project
        self.notice: str | None = None
        self._store = store
        self._counters: CounterStore | None = CounterStore(store) if store is not None else None
        self._pending: dict[tuple[str, str], dict[str, Previous]] = {}
        self._error: str | None = None
        self._lock = threading.Lock()

    def store(self) -> StateStore | None:
        with self._lock:
            if self._store is None and self._error is None:
                try:
                    self._store = open_store(self.project)
                    self._counters = CounterStore(self._store)
                except (CivicqError, OSError) as e:
                    self._error = e.message if isinstance(e, CivicqError) else str(e)
            return self._store

    def load(self, target: str, check_id: str) -> dict[str, Previous]:
        if self.store() is None:
            self.notice = f"no previous counters for checks with delta: ({self._error})"
        return self._counters.load(target, check_id) if self._counters else {}

    def save(self, target: str, check_id: str, entries: dict[str, Previous]) -> None:
        with self._lock:
            self._pending.setdefault((target, check_id), {}).update(entries)

    def flush(self) -> None:
        """Write the counters the run saw (inside the caller's transaction)."""
        if self._counters is not None:
            for (target, check_id), entries in self._pending.items():
                self._counters.save(target, check_id, entries)
        self._pending.clear()

    def close(self) -> None:
        if self._store is not None:
            with suppress(CivicqError, OSError):
                self._store.close()


def record_run(project: Project, result: RunResult, store: StateStore | None = None,
               pending: _LazyCounters | None = None) -> str | None:
    """Keep the run in the state store for `history` (with the run's new `delta:` counters, in
    one transaction). A store that cannot be opened or written (read-only, full disk, server gone)
    gives a notice to print, never a lost report."""
    own = store is None
    try:
        store = store or open_store(project)
        try:
            with store.transaction(durable=False):
                if pending is not None:
                    pending.flush()
                store.record_run(result, keep_ok=TRENDED)
        finally:
            if own:
                store.close()
    except (CivicqError, OSError) as e:
        message = e.message if isinstance(e, CivicqError) else str(e)
        return f"the run was not recorded in the state store: {message}"
    return None


def write_run_baseline(project: Project, targets: list[Target], selection: Selection, path: str) -> int:
    """Run the checks and record their warning and critical findings as accepted; the count written.
    A run in which some checks could not run writes nothing (exit 3)."""
    catalog = project_catalog(project).catalog
    result = run_checks(project, targets, catalog, selection, RunOptions(facts=default_providers(project)))
    if result.errors or any(f.status == "error" for f in result.findings):
        reasons = [e["message"] for e in result.errors] + [f"{f.check}: {f.reason}" for f in result.findings
                                                           if f.status == "error"]
        raise ExecutionError("some checks could not run; the baseline was not written: " + "; ".join(reasons))
    return write_baseline(result.findings, path, result.targets)
