"""`civicq-ops report`: the analysis report (the seed's analyze) as HTML, Markdown or JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.common import emit, exit_with
from civicq_ops.cli.session import session_of


def report(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown, html or json (standard output).")] = "markdown",
    output: Annotated[list[str] | None, typer.Option("--output", "-o", help="FORMAT=PATH, repeatable: also write this format.")] = None,
    fail_on: Annotated[str, typer.Option("--fail-on", help="Gate level: warning or critical.")] = "critical",
    top: Annotated[int | None, typer.Option("--top", help="Statements in the queries section (default: report.top_queries or 10).")] = None,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Keep this run in the state store's history.")] = True,
) -> None:
    """Run every check and write the analysis report (the seed's analyze); the exit code is the gate.

    Sections: summary and gate, what to do first (SQL and locks), sizes, cache, indexes, bloat,
    vacuum, connections, queries, replication, backups, forecasts; charts from the history.

    Example: civicq-ops report -f html -o json=report.json > report.html
    """
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.core.errors import CivicqError, InputError
    from civicq_ops.core.fileio import write_atomic
    from civicq_ops.report.analysis import analyze
    from civicq_ops.report.analysis_formats import FORMATS, render
    from civicq_ops.report.forecast import horizon_from
    from civicq_ops.report.formats import parse_outputs
    from civicq_ops.state.store import open_store

    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    if fail_on not in ("warning", "critical"):
        raise InputError("--fail-on must be warning or critical")
    outputs = parse_outputs(output or [], allowed=FORMATS)
    s = session_of(ctx)
    section = s.project.section("report")
    horizon = horizon_from(section)
    top_n = top if top is not None else int(section.get("top_queries", 10))
    if top_n < 1:
        raise InputError("--top must be at least 1")
    target = s.target()
    catalog = project_catalog(s.project).catalog
    try:
        store = open_store(s.project)
    except (CivicqError, OSError) as e:  # as for `run checks`: no history is a note, not a failure
        store = None
        if not s.quiet:
            typer.echo(f"note: the state store could not be opened, so no history: {e}", err=True)
    try:
        analysis = analyze(s.project, target, catalog, fail_on=fail_on, horizon=horizon, top=top_n, store=store,
                           record=record)
    finally:
        if store is not None:
            store.close()
    for out_fmt, path in outputs:
        write_atomic(path, render(analysis, out_fmt))
    emit(render(analysis, fmt))
    exit_with(analysis.result.exit_code)


def register(root: typer.Typer) -> None:
    root.command("report")(report)
