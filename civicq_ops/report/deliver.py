"""`run checks`, `health` and `baseline write` as library calls: check the request before anything
runs, run the checks with the project's runner facts, keep the run in the state store, render
standard output and write the extra `--output` files. The CLI prints `Delivered.text` and exits
with `Delivered.result.exit_code`; tests call the same functions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from civicq_ops.alerts.process import load_alerting, notify_run
from civicq_ops.catalog.load import project_catalog
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, ExecutionError, ExitCode, InputError
from civicq_ops.core.units import parse_duration
from civicq_ops.engine.baseline import write_baseline
from civicq_ops.engine.run import DEFAULT_POOL, Progress, RunOptions, RunResult, Selection, run_checks
from civicq_ops.facts import default_providers
from civicq_ops.report.formats import RUN_FORMATS, OutputFailure, parse_outputs, render_safely, write_outputs
from civicq_ops.state.counters import CounterStore, Previous
from civicq_ops.state.store import open_store

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
    verbose: bool = False
    colour: bool = False


@dataclass
class Delivered:
    result: RunResult
    text: str  # standard output, in the requested format
    exit_code: ExitCode  # the run's, or 3 when an output could not be written
    errors: list[str] = field(default_factory=list)  # for stderr too, as every error is (README)
    notices: list[str] = field(default_factory=list)  # for stderr: e.g. the run could not be recorded


def run_and_report(project: Project, targets: list[Target], request: RunRequest,
                   progress: Progress | None = None) -> Delivered:
    """Validate the request (exit 2 before any connection), run, record, render, write outputs."""
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
    notifiers = load_alerting(project)
    options = RunOptions(params=request.params, fail_on=request.fail_on, budget_s=budget_s,
                         baseline=request.baseline, pool_size=request.pool or DEFAULT_POOL, facts=default_providers(project))
    counters = _LazyCounters(project)
    options.counters = counters
    result = run_checks(project, targets, catalog, request.selection, options, progress=progress)
    if notifiers is not None:  # bounded by each notifier's timeout; failures are notices
        result.notices.extend(notify_run(project, catalog, result, notifiers).notices())
    # The report first: rendered and written before history is recorded, which is best effort.
    # Each output on its own: one that fails is named, the others are still written (exit 3).
    failures: list[OutputFailure] = []
    text = render_safely(result, request.fmt, f"{request.fmt} (standard output)", failures,
                         colour=request.colour, verbose=request.verbose)
    failures += write_outputs(result, out_specs, stdout_format=request.fmt)
    notice = record_run(project, result)
    errors = [e["message"] for e in result.errors]
    errors += [f"output {failure.name} was not written: {failure.message}" for failure in failures]
    return Delivered(result, text or "", ExitCode.EXECUTION_ERROR if failures else result.exit_code,
                     errors=errors, notices=[n for n in (counters.notice, notice) if n])


class _LazyCounters:
    """Previous counters for `delta:` checks, from the state store opened on first use, so a run
    refused before anything runs (bad --param, empty selection) writes nothing. A store that cannot
    be opened gives a notice; the delta checks then have no previous counters to judge against."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.notice: str | None = None
        self._store: CounterStore | None = None
        self._lock = threading.Lock()

    def _get(self) -> CounterStore | None:
        with self._lock:
            if self._store is None and self.notice is None:
                try:
                    self._store = CounterStore(open_store(self.project))
                except (CivicqError, OSError) as e:
                    message = e.message if isinstance(e, CivicqError) else str(e)
                    self.notice = f"no previous counters for checks with delta: ({message})"
            return self._store

    def load(self, target: str, check_id: str) -> dict[str, Previous]:
        store = self._get()
        return store.load(target, check_id) if store else {}

    def save(self, target: str, check_id: str, entries: dict[str, Previous]) -> None:
        store = self._get()
        if store:
            store.save(target, check_id, entries)


def record_run(project: Project, result: RunResult) -> str | None:
    """Keep the run in the state store for `history`. A store that cannot be opened or written
    (read-only, full disk, server gone) gives a notice to print, never a lost report."""
    try:
        store = open_store(project)
        try:
            store.record_run(result)
        finally:
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
