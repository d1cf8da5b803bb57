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
    names = [v.strip() for item in values or [] for v in item.split(",") if v.strip()]
    return names or None


def _duration(option: str, value: str | None) -> float | None:
    from civicq_ops.core.errors import InputError
    from civicq_ops.core.units import UnitError, parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except (UnitError, ValueError) as e:
        raise InputError(f"{option}: {e}") from None
    if seconds <= 0:
        raise InputError(f"{option} must be a positive duration such as 30s, not {value!r}")
    return seconds


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
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """Run the checks on every target of the fleet, at most --jobs at once; name the worst targets.

    A target that cannot be reached is a critical fleet-target-down finding of that target: the
    run goes on. Exit 1 when a finding reaches --fail-on, else 0.

    Example: civicq-ops fleet run --tag quick --jobs 16 --timeout 30s
    """
    from civicq_ops.cli.common import one_of
    from civicq_ops.cli.run import _selection
    from civicq_ops.fleet.run import FleetOptions, render, run_fleet

    one_of("--format", fmt, ("text", "json"))
    one_of("--fail-on", fail_on, ("warning", "critical"))
    options = FleetOptions(selection=_selection(check, tag, category), params=parse_params(param), fail_on=fail_on,
                           jobs=jobs, timeout_s=_duration("--timeout", timeout), groups=_groups(group))
    result = run_fleet(session_of(ctx).project, options)
    emit(render(result, fmt))
    for notice in result.notices:
        report_notice(notice)
    exit_with(result.exit_code)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="fleet")
