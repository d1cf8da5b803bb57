"""`plan`, `apply`, `audit` and `history`: findings become guarded actions, on the record."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from civicq_ops.cli.common import emit, exit_with, not_blank, one_of
from civicq_ops.cli.interact import confirm_or_refuse
from civicq_ops.cli.session import Session, session_of
from civicq_ops.core.errors import ExitCode


def _s(ctx) -> Session:
    return session_of(ctx)


def _make_plan(s: Session, unattended: bool = False, ttl=None):
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.remediation.plan import PLAN_TTL, plan_target
    from civicq_ops.state.store import open_store

    target = s.target()
    catalog = project_catalog(s.project).catalog
    store = open_store(s.project)
    made = plan_target(s.project, target, catalog, store, unattended=unattended, ttl=ttl or PLAN_TTL)
    return made.plan, catalog, store, target


def render_plan(plan) -> str:
    from civicq_ops.report.plan_view import render_text

    return render_text(plan)


PLAN_FORMATS = ("text", "json", "markdown")
plan_app = typer.Typer()


@plan_app.callback(invoke_without_command=True)
def plan(
    ctx: typer.Context,
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="PATH", help="Write the plan as JSON for `apply`.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text, json or markdown (a pull request comment).")] = "text",
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode", help="Exit 4 when the plan has actions.")] = False,
    ttl: Annotated[str | None, typer.Option("--ttl", metavar="DURATION", help="How long the plan stays valid (default 1h, at most 30d); apply still re-checks server, configuration and findings.")] = None,
) -> None:
    """Run the checks, apply waivers and policies, and show what would be done and why;
    `plan show FILE` reads a saved plan.

    Example: civicq-ops plan -o plan.json --ttl 3d --format markdown
    """
    if ctx.invoked_subcommand is not None:
        return
    from civicq_ops.remediation.plan import parse_ttl, write_plan
    from civicq_ops.report.plan_view import render

    one_of("--format", fmt, PLAN_FORMATS)
    not_blank("--output", output)
    lifetime = parse_ttl(not_blank("--ttl", ttl))
    s = _s(ctx)
    p = _make_plan(s, ttl=lifetime)[0]
    if output:
        write_plan(p, output, s.project)
    emit(render(p, fmt))
    if output and fmt == "text":
        emit(f"\nwrote {output}: apply it with `civicq-ops apply {output}`\n")
    if p.errors:  # a check that failed outranks "the plan has actions" and "nothing to do"
        exit_with(ExitCode.EXECUTION_ERROR)
    exit_with(ExitCode.PLAN_HAS_ACTIONS if detailed_exitcode and p.actions else ExitCode.OK)


@plan_app.command("show")
def plan_show(
    ctx: typer.Context,
    plan_file: Annotated[str, typer.Argument(metavar="PLAN.json", help="A plan written by `plan -o`.")],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text, json or markdown.")] = "text",
) -> None:
    """Show a saved plan, after saying whether its signature holds and whether it has expired
    (exit 5 when apply would refuse it for either; 2 when it is not a plan file).

    Example: civicq-ops plan show plan.json --format markdown
    """
    from civicq_ops.report.plan_view import show_plan

    one_of("--format", fmt, PLAN_FORMATS)
    shown = show_plan(plan_file, _s(ctx).project, fmt)
    emit(shown.text)
    exit_with(shown.exit_code)


def apply(
    ctx: typer.Context,
    plan_file: Annotated[str | None, typer.Argument(metavar="PLAN.json", help="A plan written by `plan -o`.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Without a plan file: do not ask (enforce-mode policies only).")] = False,
) -> None:
    """Run a saved plan under guards; without one, plan now and ask (refused when CI is set).

    Example: civicq-ops apply plan.json
    """
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.core.errors import PlanRefused
    from civicq_ops.remediation.apply import apply_plan
    from civicq_ops.remediation.plan import read_plan
    from civicq_ops.state.store import open_store

    s = _s(ctx)
    if plan_file:
        plan_obj = read_plan(plan_file, s.project)
        # --target must name the plan's own target (check_plan refuses another one, exit 5).
        target = s.target() if s.target_names else s.project.target(plan_obj.target.get("name"))
        catalog = project_catalog(s.project).catalog
        store = open_store(s.project)
    else:
        if os.environ.get("CI"):
            raise PlanRefused("apply without a plan file is refused in CI: run `civicq-ops plan -o plan.json`, "
                              "review it, then `civicq-ops apply plan.json`")
        plan_obj, catalog, store, target = _make_plan(s, unattended=True)
        emit(render_plan(plan_obj))
        if not plan_obj.actions:
            return
        confirm_or_refuse(f"Run these {len(plan_obj.actions)} action(s) on {target.name}?", yes=yes)

    def show(step) -> None:
        emit(f"{step.step}. {step.action} {step.object_name}: {step.result} ({step.detail}) in {step.seconds:.1f}s\n")

    result = apply_plan(s.project, target, catalog, plan_obj, store, progress=show)
    exit_with(result.exit_code)


def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0)] = 50,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """The append-only record of every action: who, which policy, SQL, timings, result, before/after.

    Example: civicq-ops audit -n 20
    """
    from tabulate import tabulate

    from civicq_ops.state.store import open_store

    one_of("--format", fmt, ("text", "json"))
    rows = open_store(_s(ctx).project).audit(limit)
    if fmt == "json":
        emit(json.dumps(rows, indent=2, default=str) + "\n")
        return
    emit(tabulate([[r["claimed_at"][:19], r["target"], r["policy"], r["action"], r["object"], r["result"] or "running",
                    (r["detail"] or "")[:60], r["waits"]] for r in rows],
                  headers=["when (UTC)", "target", "policy", "action", "object", "result", "detail", "waits"]) + "\n")


def history(
    ctx: typer.Context,
    finding: Annotated[str | None, typer.Option("--finding", help="A finding id: its values over time.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0)] = 20,
) -> None:
    """Recent runs, or one finding's values over time.

    Example: civicq-ops history --finding sha256:0123...
    """
    from tabulate import tabulate

    from civicq_ops.state.store import open_store

    store = open_store(_s(ctx).project)
    if finding:
        rows = store.finding_history(finding, limit)
        # An ok run keeps no value of its own (ok findings are the check's counts): "-".
        emit(tabulate([[r["at"][:19], r["check"], r["target"], r["status"], "-" if r["counted"] else r["value"]]
                       for r in rows], headers=["when (UTC)", "check", "target", "status", "value"]) + "\n")
        return
    rows = store.runs(limit)
    emit(tabulate([[r["started_at"][:19], r["id"], ",".join(r["targets"]), r["exit_code"],
                    " ".join(f"{k}={v}" for k, v in r["summary"].items() if v)] for r in rows],
                  headers=["when (UTC)", "run", "targets", "exit", "summary"]) + "\n")


def register(root: typer.Typer) -> None:
    root.add_typer(plan_app, name="plan")
    for fn in (apply, audit, history):
        root.command()(fn)
