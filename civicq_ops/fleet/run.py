"""`civicq-ops fleet run`: the checks across the whole inventory with bounded concurrency.

Each target runs on its own (the engine's run on one target) under a per-target bound (`--timeout`,
the run budget plus a wall-clock guard), at most `jobs` targets at once. A target that cannot be
reached, or whose group cannot be expanded, is a critical `fleet-target-down` finding of that
target: the fleet run goes on and reports it; it is not an execution error of the run. The summary
names the worst targets (most critical, then warning, then error findings).
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from civicq_ops.catalog.load import project_catalog
from civicq_ops.catalog.model import Catalog
from civicq_ops.config import Project
from civicq_ops.core.errors import CivicqError, ExitCode, InputError
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.findings import Finding, Summary, jsonable
from civicq_ops.engine.run import RunOptions, RunResult, Selection, run_checks
from civicq_ops.facts import default_providers
from civicq_ops.fleet.inventory import FleetTarget, Inventory, expand
from civicq_ops.state.counters import CounterStore
from civicq_ops.state.store import StateStore, open_store

DOWN_CHECK = "fleet-target-down"
DEFAULT_JOBS = 8
DEFAULT_TIMEOUT_S = 60.0
GUARD_S = 10.0  # the wall-clock guard beyond a target's budget (connect and the last query's deadline)


@dataclass
class TargetOutcome:
    name: str
    labels: dict[str, str]
    findings: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0
    down: str | None = None  # why the target could not be checked
    result: RunResult | None = None

    @property
    def summary(self) -> Summary:
        return Summary.of(self.findings)

    def rank(self) -> tuple[int, int, int]:
        s = self.summary
        return (s.critical, s.warning, s.error)


@dataclass
class FleetResult:
    id: str
    started_at: datetime
    duration_s: float
    fail_on: str
    outcomes: list[TargetOutcome]
    problems: dict[str, str] = field(default_factory=dict)  # groups that could not be expanded
    notices: list[str] = field(default_factory=list)

    @property
    def summary(self) -> Summary:
        return Summary.of([f for o in self.outcomes for f in o.findings])

    @property
    def exit_code(self) -> ExitCode:
        level = SEVERITY[self.fail_on]
        failing = any(not f.waived and f.status != "error" and SEVERITY[f.status] >= level
                      for o in self.outcomes for f in o.findings)
        return ExitCode.GATE_FAILED if failing else ExitCode.OK

    def worst(self, n: int = 5) -> list[TargetOutcome]:
        ranked = sorted((o for o in self.outcomes if any(o.rank())), key=lambda o: (o.rank(), o.name), reverse=True)
        return ranked[:n]

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": "1.0", "kind": "fleet-run",
                "run": {"id": self.id, "started_at": self.started_at.isoformat(), "duration_s": self.duration_s,
                        "fail_on": self.fail_on, "exit_code": int(self.exit_code), "targets": len(self.outcomes)},
                "summary": self.summary.to_dict(),
                "worst": [o.name for o in self.worst()],
                "problems": [{"group": g, "message": m} for g, m in self.problems.items()],
                "targets": [{"name": o.name, "labels": o.labels, "duration_s": o.duration_s, "down": o.down,
                             "summary": o.summary.to_dict()} for o in self.outcomes],
                "findings": [{**{k: jsonable(v) for k, v in f.to_dict().items()}, "labels": o.labels}
                             for o in self.outcomes for f in o.findings if f.status != "ok"]}

    def text(self) -> str:
        lines = [f"fleet run {self.id}: {len(self.outcomes)} target(s) in {self.duration_s:.1f}s: {self.summary.line()}"]
        down = [o for o in self.outcomes if o.down]
        if down:
            lines.append(f"down: {len(down)} target(s): " + ", ".join(o.name for o in down[:10])
                         + (" ..." if len(down) > 10 else ""))
        for group, message in self.problems.items():
            lines.append(f"group {group}: {message}")
        worst = self.worst()
        if worst:
            lines.append("worst targets:")
            for o in worst:
                s = o.summary
                where = ", ".join(f"{k}={v}" for k, v in o.labels.items())
                lines.append(f"  {o.name}  critical={s.critical} warning={s.warning} error={s.error}  ({where})")
        return "\n".join(lines) + "\n"


def down_finding(name: str, reason: str) -> Finding:
    return Finding(check=DOWN_CHECK, category="fleet", target=name, subject=None, status="critical",
                   title="Target down", reason=reason, message=f"Target down: {reason}")


@dataclass
class FleetOptions:
    selection: Selection = field(default_factory=Selection)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_on: str = "critical"
    jobs: int | None = None  # None: fleet.jobs, else 8
    timeout_s: float | None = None  # None: fleet.timeout, else 60 s
    groups: list[str] | None = None  # None: every target and group
    pool: int = 1  # connections per target: a cluster sees at most jobs x pool of ours
    record: bool = True


def settings(project: Project) -> dict[str, Any]:
    from civicq_ops.core.units import parse_duration

    raw = project.section("fleet")
    return {"jobs": int(raw.get("jobs", DEFAULT_JOBS)),
            "timeout_s": parse_duration(raw["timeout"]) if "timeout" in raw else DEFAULT_TIMEOUT_S,
            "heartbeat_s": parse_duration(raw["heartbeat"]) if "heartbeat" in raw else 2.0,
            "stalled_after_s": parse_duration(raw["stalled_after"]) if "stalled_after" in raw else 10.0,
            "refresh_s": parse_duration(raw["refresh"]) if "refresh" in raw else 60.0}


def run_one(project: Project, catalog: Catalog, ft: FleetTarget, selection: Selection, options: RunOptions) -> TargetOutcome:
    """One target's run as a fleet outcome: an unreachable target becomes its down finding."""
    t0 = time.monotonic()
    result = run_checks(project, [ft.target], catalog, selection, options)
    findings = list(result.findings)
    down = next((t.error for t in result.targets if t.error), None)
    if down:
        findings.append(down_finding(ft.name, down))
    return TargetOutcome(ft.name, ft.labels, findings, round(time.monotonic() - t0, 3), down, result)


def run_fleet(project: Project, options: FleetOptions, inventory: Inventory | None = None,
              catalog: Catalog | None = None) -> FleetResult:
    conf = settings(project)
    jobs = options.jobs if options.jobs is not None else conf["jobs"]
    timeout_s = options.timeout_s if options.timeout_s is not None else conf["timeout_s"]
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1, not {jobs}")
    if timeout_s <= 0:
        raise InputError("--timeout must be more than 0s")
    catalog = catalog or project_catalog(project).catalog
    options.selection.pick(catalog)  # a bad selection is exit 2 before any connection
    started, t0 = datetime.now(UTC), time.monotonic()
    inventory = inventory or expand(project, options.groups, static=not options.groups)
    store, notices = _store(project) if options.record else (None, [])
    run_options = RunOptions(params=options.params, fail_on=options.fail_on, budget_s=timeout_s, pool_size=options.pool,
                             facts=default_providers(project), counters=CounterStore(store) if store else None)

    started_at: dict[str, float] = {}

    def one(ft: FleetTarget) -> TargetOutcome:
        started_at[ft.name] = time.monotonic()
        try:
            return run_one(project, catalog, ft, options.selection, run_options)
        except CivicqError as e:
            return TargetOutcome(ft.name, ft.labels, [down_finding(ft.name, e.message)], down=e.message)

    done: dict[str, TargetOutcome] = {}
    executor = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(inventory.targets))))
    try:
        pending = {executor.submit(one, ft): ft for ft in inventory.targets}
        while pending:
            finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                done[pending.pop(future).name] = future.result()
            now = time.monotonic()
            for future, ft in list(pending.items()):  # the guard counts from the target's own start, not its wait in line
                if ft.name in started_at and now - started_at[ft.name] > timeout_s + GUARD_S:
                    why = f"no result within {timeout_s:g}s (+{GUARD_S:g}s)"
                    done[ft.name] = TargetOutcome(ft.name, ft.labels, [down_finding(ft.name, why)], timeout_s, why)
                    del pending[future]
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    outcomes = [done[ft.name] for ft in inventory.targets]
    for group, message in inventory.problems.items():
        outcomes.append(TargetOutcome(group, {"cluster": group}, [down_finding(group, message)], down=message))
    result = FleetResult(uuid.uuid4().hex[:12], started, round(time.monotonic() - t0, 3), options.fail_on, outcomes,
                         dict(inventory.problems), notices)
    if store is not None:
        try:
            for o in outcomes:
                if o.result is not None:
                    store.record_run(o.result)
        except CivicqError as e:
            result.notices.append(f"the fleet run was not recorded in the state store: {e.message}")
        finally:
            store.close()
    return result


def _store(project: Project) -> tuple[StateStore | None, list[str]]:
    try:
        return open_store(project), []
    except (CivicqError, OSError) as e:
        return None, [f"no state store: {e.message if isinstance(e, CivicqError) else e}"]


FORMATS = ("text", "json", "markdown")


def render(result: FleetResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    if fmt == "text":
        return result.text()
    if fmt == "markdown":
        return markdown(result)
    raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def markdown(result: FleetResult, problems_shown: int = 200) -> str:
    """The fleet report for people (a step summary, a ticket, a chat message): the gate, the targets
    worst first with their labels, the groups that could not be listed, then every problem finding
    (up to `problems_shown`; the JSON has them all)."""
    from civicq_ops.report.markdown import _code, _esc
    from civicq_ops.report.safe import shown_value

    s = result.summary
    gate = {0: "passed", 1: "**failed**"}.get(int(result.exit_code), str(int(result.exit_code)))
    down = [o for o in result.outcomes if o.down]
    lines = [f"### civicq-ops fleet: gate {gate} (`--fail-on {result.fail_on}`)", "",
             f"{len(result.outcomes)} target(s) in {result.duration_s:.1f} s, {len(down)} down · "
             f"{s.critical} critical · {s.warning} warning · {s.error} error · {s.ok} ok", ""]
    for group, message in result.problems.items():
        lines.append(f"> group `{_code(group)}` could not be listed: {_esc(message)}")
    if result.problems:
        lines.append("")
    ranked = sorted(result.outcomes, key=lambda o: (tuple(-n for n in o.rank()), o.name))
    lines += ["| target | labels | critical | warning | error | time |", "|---|---|---:|---:|---:|---:|"]
    for o in ranked:
        t = o.summary
        labels = ", ".join(f"{k}={v}" for k, v in sorted(o.labels.items()))
        name = f"{_esc(o.name)} (down)" if o.down else _esc(o.name)
        lines.append(f"| {name} | {_esc(labels)} | {t.critical} | {t.warning} | {t.error} | {o.duration_s:.1f} s |")
    found = sorted(((o, f) for o in result.outcomes for f in o.findings if f.status in ("critical", "warning", "error")),
                   key=lambda of: (-SEVERITY[of[1].status], of[0].name, of[1].check))
    if found:
        lines += ["", "| status | target | check | subject | value | what to do |", "|---|---|---|---|---|---|"]
        for o, f in found[:problems_shown]:
            todo = f.recommendation or f.reason or f.message
            lines.append(f"| {f.status} | {_esc(o.name)} | `{_code(f.check)}` | "
                         f"{_esc(f.subject_text() if f.subject else '')} | {_esc(shown_value(f.value, f.unit))} | "
                         f"{_esc(todo)} |")
        if len(found) > problems_shown:
            lines.append(f"\n{len(found) - problems_shown} more problem finding(s): see `--format json`.")
    return "\n".join(lines) + "\n"
