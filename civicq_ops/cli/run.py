"""`civicq-ops run checks`, `health` and `baseline write`: the engine on real targets.

The library is imported inside each command (civicq_ops.report.deliver pulls in psycopg, jinja2,
jsonschema and pglast): at the top it would add ~0.5 s to every command's start-up, `--help` too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from civicq_ops.cli.common import colour_on, emit, exit_with, parse_params
from civicq_ops.cli.interact import progress
from civicq_ops.cli.session import report_error, report_notice, session_of

if TYPE_CHECKING:
    from civicq_ops.engine.run import Selection

app = typer.Typer(help="Run checks against targets.", no_args_is_help=True)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text, json, junit, sarif, github, markdown or prometheus (standard output).")]
OutputOpt = Annotated[list[str] | None, typer.Option("--output", "-o", help="FORMAT=PATH, repeatable: also write this format.")]


def execute(ctx: typer.Context, *, checks=None, tags=None, categories=None, params=None, fail_on="critical",
            fmt="text", outputs=None, budget=None, baseline=None, pool=None, verbose=False, pretty=False):
    """Shared by `run checks` and `health`: one library call, print, exit code."""
    from civicq_ops.cli.collector import loading

    with loading():
        from civicq_ops.report.deliver import RunRequest, run_and_report

    s = session_of(ctx)
    request = RunRequest(selection=_selection(checks, tags, categories), params=parse_params(params),
                         fail_on=fail_on, fmt=fmt, outputs=outputs or [], budget=budget, baseline=baseline,
                         pool=pool, verbose=verbose, colour=colour_on(), pretty=pretty)
    with progress(s.quiet, "checks") as show:
        delivered = run_and_report(s.project, s.targets(), request, progress=show)
    emit(delivered.text)
    for message in delivered.errors:
        report_error(message)
    for message in delivered.notices:
        report_notice(message)
    exit_with(delivered.exit_code)


def _selection(checks: list[str] | None, tags: list[str] | None, categories: list[str] | None) -> Selection:
    from civicq_ops.engine.run import Selection

    return Selection(checks=_split(checks), tags=_split(tags), categories=_split(categories))


def _split(values: list[str] | None) -> list[str]:
    """Repeated or comma-separated selector values; a blank one is an error, never "everything"."""
    if any(not item.strip() for item in values or []):
        from civicq_ops.core.errors import InputError  # lazy like the rest of the CLI (start-up time)

        raise InputError("--check, --tag and --category need a value: leave the option out to select every check")
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command("checks")
def run_checks_cmd(
    ctx: typer.Context,
    check: Annotated[list[str] | None, typer.Option("--check", help="Check id(s); repeatable or comma-separated (any of them).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Checks with any of these tags.")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="Checks in any of these categories.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="CHECK.PARAM=VALUE, repeatable.")] = None,
    fail_on: Annotated[str, typer.Option("--fail-on", help="Gate level: warning or critical.")] = "critical",
    fmt: FormatOpt = "text",
    output: OutputOpt = None,
    budget: Annotated[str | None, typer.Option("--budget", help="Stop starting checks after this long, e.g. 60s.")] = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Fail only on findings new or worse than this baseline file.")] = None,
    pool: Annotated[int | None, typer.Option("--pool", help="Connections per target (default: 2).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List ok findings too.")] = False,
    pretty: Annotated[bool, typer.Option("--pretty", help="Indent JSON output for people (default: one line).")] = False,
) -> None:
    """Run the checks against the target(s) and report; the exit code is the gate.

    Selectors: the values of one kind are a union (--tag a,b: tagged a or b); different kinds intersect (--category vacuum --tag quick: the quick vacuum checks). A value that matches nothing, or a selection of no check, is exit 2.

    Example: civicq-ops run checks --fail-on warning --format sarif -o junit=report.xml
    """
    execute(ctx, checks=check, tags=tag, categories=category, params=param, fail_on=fail_on, fmt=fmt,
            outputs=output, budget=budget, baseline=baseline, pool=pool, verbose=verbose, pretty=pretty)


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
    from civicq_ops.report.deliver import write_run_baseline

    s = session_of(ctx)
    count = write_run_baseline(s.project, s.targets(), _selection(check, tag, category), path)
    emit(f"wrote {path}: {count} accepted finding(s)\n")


def register(root: typer.Typer) -> None:
    root.command()(health)
    root.add_typer(baseline_app, name="baseline")
