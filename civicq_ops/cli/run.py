"""`civicq-ops run checks`, `health` and `baseline write`: the engine on real targets."""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.common import colour_on, emit, exit_with, parse_params
from civicq_ops.cli.interact import progress
from civicq_ops.cli.session import Session

app = typer.Typer(help="Run checks against targets.", no_args_is_help=True)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text, json, junit, sarif, github or markdown (standard output).")]
OutputOpt = Annotated[list[str] | None, typer.Option("--output", "-o", help="FORMAT=PATH, repeatable: also write this format.")]


def execute(ctx: typer.Context, *, checks=None, tags=None, categories=None, params=None, fail_on="critical",
            fmt="text", outputs=None, budget=None, baseline=None, pool=2, verbose=False):
    """Shared by `run checks` and `health`: one library call, render, exit code."""
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.core.errors import InputError
    from civicq_ops.core.units import parse_duration
    from civicq_ops.engine.run import RunOptions, Selection, run_checks
    from civicq_ops.report.formats import RUN_FORMATS, parse_outputs, render, write_outputs

    s: Session = ctx.find_object(Session)
    if fmt not in RUN_FORMATS:
        raise InputError(f"unknown format '{fmt}' (choose from {', '.join(RUN_FORMATS)})")
    if fail_on not in ("warning", "critical"):
        raise InputError("--fail-on must be warning or critical")
    out_specs = parse_outputs(outputs or [])
    try:
        budget_s = parse_duration(budget) if budget else None
    except ValueError as e:
        raise InputError(f"--budget: {e}") from e
    targets = s.targets()
    catalog = project_catalog(s.project).catalog
    selection = Selection(checks=_split(checks), tags=_split(tags), categories=_split(categories))
    options = RunOptions(params=parse_params(params), fail_on=fail_on, budget_s=budget_s, baseline=baseline,
                         pool_size=pool)
    options.counters, store_notice = _counters(s)
    with progress(s.quiet, "checks") as show:
        result = run_checks(s.project, targets, catalog, selection, options, progress=show)
    if store_notice:
        result.notices.append(store_notice)
    _record(s, result)
    emit(render(result, fmt, colour=colour_on(), verbose=verbose))
    write_outputs(result, out_specs, stdout_format=fmt)
    exit_with(result.exit_code)


def _record(s: Session, result) -> None:
    """Keep the run in the state store for `history`; a store that cannot be opened is a notice, not a failure."""
    from civicq_ops.core.errors import CivicqError
    from civicq_ops.state.store import open_store

    try:
        open_store(s.project).record_run(result)
    except (CivicqError, OSError) as e:
        result.notices.append({"code": "state-store", "message": f"the run was not recorded: {e}", "path": "-", "line": 0})


def _counters(s: Session):
    """Previous counters for `delta:` checks; a store that cannot be opened is a notice (they judge nothing)."""
    from civicq_ops.core.errors import CivicqError
    from civicq_ops.state.counters import CounterStore
    from civicq_ops.state.store import open_store

    try:
        return CounterStore(open_store(s.project)), None
    except (CivicqError, OSError) as e:
        return None, {"code": "state-store", "message": f"no previous counters (checks with delta: judge nothing): {e}",
                      "path": "-", "line": 0}


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command("checks")
def run_checks_cmd(
    ctx: typer.Context,
    check: Annotated[list[str] | None, typer.Option("--check", help="Check id(s); repeatable or comma-separated.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only checks with this tag.")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="Only checks in this category.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="CHECK.PARAM=VALUE, repeatable.")] = None,
    fail_on: Annotated[str, typer.Option("--fail-on", help="Gate level: warning or critical.")] = "critical",
    fmt: FormatOpt = "text",
    output: OutputOpt = None,
    budget: Annotated[str | None, typer.Option("--budget", help="Stop starting checks after this long, e.g. 60s.")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Fail only on findings new or worse than this baseline file.")] = None,
    pool: Annotated[int, typer.Option("--pool", help="Connections per target.")] = 2,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List ok findings too.")] = False,
) -> None:
    """Run the checks against the target(s) and report; the exit code is the gate.

    Example: civicq-ops run checks --fail-on warning --format sarif -o junit=report.xml
    """
    execute(ctx, checks=check, tags=tag, categories=category, params=param, fail_on=fail_on, fmt=fmt,
            outputs=output, budget=budget, baseline=baseline, pool=pool, verbose=verbose)


def health(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Every check, not only the quick ones.")] = False,
    fmt: FormatOpt = "text",
    output: OutputOpt = None,
    fail_on: Annotated[str, typer.Option("--fail-on")] = "critical",
) -> None:
    """Quick health check (checks tagged `quick`); --full runs the whole catalogue.

    Example: civicq-ops health --full
    """
    execute(ctx, tags=None if full else ["quick"], fmt=fmt, outputs=output, fail_on=fail_on)


baseline_app = typer.Typer(help="Baselines: accept today's findings, fail only on new or worse ones.",
                           no_args_is_help=True)


@baseline_app.command("write")
def baseline_write(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Where to write the baseline JSON.")],
    check: Annotated[list[str] | None, typer.Option("--check")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
    category: Annotated[list[str] | None, typer.Option("--category")] = None,
) -> None:
    """Run the checks and record their warning and critical findings as accepted.

    Example: civicq-ops baseline write .civicq-ops/baseline.json
    """
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.engine.baseline import write_baseline
    from civicq_ops.engine.run import RunOptions, Selection, run_checks

    s: Session = ctx.find_object(Session)
    catalog = project_catalog(s.project).catalog
    result = run_checks(s.project, s.targets(), catalog,
                        Selection(checks=_split(check), tags=_split(tag), categories=_split(category)), RunOptions())
    if result.exit_code == 3:
        from civicq_ops.core.errors import ExecutionError

        raise ExecutionError("some checks could not run; the baseline was not written: "
                             + "; ".join(e["message"] for e in result.errors) or "see `run checks`")
    count = write_baseline(result.findings, path)
    emit(f"wrote {path}: {count} accepted finding(s)\n")


def register(root: typer.Typer) -> None:
    root.command()(health)
    root.add_typer(baseline_app, name="baseline")
