"""`civicq-ops fleet ...`: the inventory, a fleet run, and workers and a scheduler on the job queue."""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.common import emit, exit_with, parse_params
from civicq_ops.cli.session import report_notice, session_of

app = typer.Typer(help="Fleets: target groups, fleet runs, workers and a scheduler on a PostgreSQL job queue.",
                  no_args_is_help=True)

GroupOpt = Annotated[list[str] | None, typer.Option("--group", "-g", help="Only these fleet groups (repeatable or comma-separated).")]


def _groups(values: list[str] | None) -> list[str] | None:
    """Repeated or comma-separated group names; a blank one is exit 2, never "every group"."""
    if any(not item.strip() for item in values or []):
        from civicq_ops.core.errors import InputError

        raise InputError("--group needs a group name: leave the option out for every target and group")
    names = [v.strip() for item in values or [] for v in item.split(",") if v.strip()]
    return names or None


def _duration(option: str, value: str | None) -> float | None:
    from civicq_ops.core.units import positive_duration_option

    return None if value is None else positive_duration_option(option, value)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    group: GroupOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """Expand the inventory: every target and group, each expanded target with its labels.

    Example: civicq-ops fleet list --group east -f json
    """
    import json

    from civicq_ops.cli.common import one_of
    from civicq_ops.fleet.inventory import expand

    one_of("--format", fmt, ("text", "json"))
    inventory = expand(session_of(ctx).project, _groups(group))
    if fmt == "json":
        emit(json.dumps({"targets": [{"name": t.name, "group": t.group, "labels": t.labels} for t in inventory.targets],
                         "problems": inventory.problems}, indent=2) + "\n")
    else:
        for t in inventory.targets:
            emit(f"{t.name}\t" + ",".join(f"{k}={v}" for k, v in t.labels.items()) + "\n")
        emit(f"{len(inventory.targets)} target(s)\n")
    for g, message in inventory.problems.items():
        report_notice(f"group {g}: {message}")


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    group: GroupOpt = None,
    check: Annotated[list[str] | None, typer.Option("--check", help="Check id(s).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Checks with any of these tags.")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="Checks in any of these categories.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="CHECK.PARAM=VALUE, repeatable.")] = None,
    fail_on: Annotated[str, typer.Option("--fail-on", help="Gate level: warning or critical.")] = "critical",
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Targets at once (default: fleet.jobs, else 8).")] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Per-target bound, e.g. 30s (default: fleet.timeout, else 60s).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or markdown (the fleet report: targets worst first, their labels, every problem).")] = "text",
) -> None:
    """Run the checks on every target of the fleet, at most --jobs at once; name the worst targets.

    A target that cannot be reached is a critical fleet-target-down finding of that target: the
    run goes on. Exit 1 when a finding reaches --fail-on, else 0.

    Example: civicq-ops fleet run --tag quick --jobs 16 --timeout 30s
    Example: civicq-ops fleet run -f markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from civicq_ops.cli.common import one_of
    from civicq_ops.cli.run import _selection
    from civicq_ops.fleet.run import FORMATS, FleetOptions, render, run_fleet

    one_of("--format", fmt, FORMATS)
    one_of("--fail-on", fail_on, ("warning", "critical"))
    options = FleetOptions(selection=_selection(check, tag, category), params=parse_params(param), fail_on=fail_on,
                           jobs=jobs, timeout_s=_duration("--timeout", timeout), groups=_groups(group))
    result = run_fleet(session_of(ctx).project, options)
    emit(render(result, fmt))
    for notice in result.notices:
        report_notice(notice)
    exit_with(result.exit_code)


@app.command("worker")
def worker_cmd(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Jobs at once in this worker.")] = 2,
    name: Annotated[str | None, typer.Option("--name", help="Worker name in logs (default: host-pid).")] = None,
    for_: Annotated[str | None, typer.Option("--for", help="Stop after this long (a bounded run). Default: until SIGTERM or Ctrl-C.")] = None,
) -> None:
    """Take fleet jobs from the queue (the shared PostgreSQL state store) until SIGTERM or Ctrl-C.

    Example: civicq-ops fleet worker --concurrency 4
    """
    import logging

    from civicq_ops.cli.common import not_blank
    from civicq_ops.core.errors import InputError
    from civicq_ops.fleet.queue import run_worker

    if concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, not {concurrency}")
    not_blank("--name", name)
    seconds = _duration("--for", not_blank("--for", for_))
    logging.basicConfig(level=logging.WARNING if session_of(ctx).quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    done = run_worker(session_of(ctx).project, concurrency=concurrency, name=name, for_s=seconds)
    emit(f"worker stopped after {done} job(s)\n")


@app.command("schedule")
def schedule_cmd(
    ctx: typer.Context,
    for_: Annotated[str | None, typer.Option("--for", help="Stop after this long (a bounded run). Default: until SIGTERM or Ctrl-C.")] = None,
) -> None:
    """Defer one job per (target, check group) per interval (fleet.schedule) until SIGTERM or Ctrl-C.

    Example: civicq-ops fleet schedule
    """
    import signal
    import threading

    from civicq_ops.cli.common import not_blank
    from civicq_ops.fleet.queue import schedule

    seconds = _duration("--for", not_blank("--for", for_))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stats = schedule(session_of(ctx).project, stop, for_s=seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    emit(f"scheduler stopped: {stats.deferred} job(s) deferred, {stats.still_queued} not queued twice, "
         f"{stats.targets} target(s)\n")


@app.command("status")
def status_cmd(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or prometheus (per target, with its labels).")] = "text",
) -> None:
    """Workers, queue depth, lag per target and recent failures of the fleet.

    Example: civicq-ops fleet status -f json
    """
    from civicq_ops.cli.common import one_of
    from civicq_ops.fleet.status import fleet_status, render

    one_of("--format", fmt, ("text", "json", "prometheus"))
    emit(render(fleet_status(session_of(ctx).project), fmt))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="fleet")
