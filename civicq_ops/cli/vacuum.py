"""The seed's vacuum commands: vacuum, vacuum-candidates, vacuum-auto, analyze (thin wrappers)."""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.common import emit, exit_with, one_of
from civicq_ops.cli.interact import confirm_or_refuse
from civicq_ops.cli.session import session_of


def _context(ctx):
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.state.store import open_store

    s = session_of(ctx)
    target = s.target()
    catalog = project_catalog(s.project).catalog
    return s, target, catalog, open_store(s.project)


def _identity(s, target) -> dict:
    from civicq_ops.remediation.plan import target_identity

    return target_identity(s.project, target)


def _run(s, target, catalog, plan, store, yes: bool) -> None:
    """Show the plan, confirm, and apply it in this process (requests run only from here, never from a file)."""
    from civicq_ops.cli.remediate import render_plan
    from civicq_ops.remediation.apply import apply_plan

    emit(render_plan(plan))
    if not plan.actions:
        return
    confirm_or_refuse(f"Run these {len(plan.actions)} action(s) on {target.name}?", yes=yes)
    result = apply_plan(s.project, target, catalog, plan, store, requests=True,
                        progress=lambda st: emit(f"{st.step}. {st.action} {st.object_name}: {st.result} ({st.detail})\n"))
    exit_with(result.exit_code)


def vacuum(
    ctx: typer.Context,
    table: Annotated[str | None, typer.Option("--table", "-t", help="schema.table (default: the whole database).")] = None,
    full: Annotated[bool, typer.Option("--full", help="VACUUM FULL: rewrites the table under an ACCESS EXCLUSIVE lock.")] = False,
    analyze: Annotated[bool, typer.Option("--analyze/--no-analyze")] = True,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """VACUUM a table or the whole database, through apply's guards and audit.

    Example: civicq-ops vacuum --table public.votes --yes
    """
    from civicq_ops.remediation.vacuum_commands import parse_table, request_plan

    parse_table(table)  # an empty --table is exit 2 before anything connects
    s, target, catalog, store = _context(ctx)
    plan = request_plan(s.project, target, catalog, _identity(s, target), "vacuum_full" if full else "vacuum", table,
                        {"analyze": analyze})
    _run(s, target, catalog, plan, store, yes)


def analyze_cmd(
    ctx: typer.Context,
    table: Annotated[str | None, typer.Option("--table", "-t", help="schema.table (default: the whole database).")] = None,
    yes: Annotated[bool, typer.Option("--yes")] = False,
) -> None:
    """ANALYZE a table or the whole database.

    Example: civicq-ops analyze --yes
    """
    from civicq_ops.remediation.vacuum_commands import parse_table, request_plan

    parse_table(table)
    s, target, catalog, store = _context(ctx)
    _run(s, target, catalog, request_plan(s.project, target, catalog, _identity(s, target), "analyze", table), store,
         yes)


def vacuum_candidates(
    ctx: typer.Context,
    level: Annotated[str, typer.Option("--level", help="warning or critical")] = "warning",
) -> None:
    """The tables the vacuum checks flag, with the VACUUM each would get. Runs nothing.

    Example: civicq-ops vacuum-candidates
    """
    from civicq_ops.cli.remediate import render_plan
    from civicq_ops.remediation.vacuum_commands import candidates_plan

    one_of("--level", level, ("warning", "critical"))
    s, target, catalog, store = _context(ctx)
    emit(render_plan(candidates_plan(s.project, target, catalog, store, level)))


def vacuum_auto(
    ctx: typer.Context,
    level: Annotated[str, typer.Option("--level", help="warning or critical")] = "warning",
    yes: Annotated[bool, typer.Option("--yes")] = False,
) -> None:
    """Vacuum every table the vacuum checks flag (the seed's auto-vacuum above a threshold).

    Example: civicq-ops vacuum-auto --level critical --yes
    """
    from civicq_ops.remediation.vacuum_commands import builtin_catalog, candidates_plan

    one_of("--level", level, ("warning", "critical"))
    s, target, catalog, store = _context(ctx)
    _run(s, target, builtin_catalog(catalog, level), candidates_plan(s.project, target, catalog, store, level), store,
         yes)


def register(root: typer.Typer) -> None:
    root.command()(vacuum)
    root.command("analyze")(analyze_cmd)
    root.command("vacuum-candidates")(vacuum_candidates)
    root.command("vacuum-auto")(vacuum_auto)
