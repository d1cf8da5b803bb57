"""`civicq-ops diff`: what a pull request changes in the catalogue, and what that does on a target."""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.common import emit, one_of
from civicq_ops.cli.session import session_of

DIFF_FORMATS = ("text", "markdown", "json")


def diff(
    ctx: typer.Context,
    base: Annotated[str, typer.Argument(metavar="BASE", help="A git ref (branch, tag, commit), or a catalogue folder when HEAD is given.")],
    head: Annotated[str | None, typer.Argument(metavar="[HEAD]", help="A catalogue folder (default: the project's catalogue in the work tree).")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Also run the checks once on the target (--target, else the default) and compare findings and plans.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, markdown (a pull request comment) or json.")] = "text",
) -> None:
    """What a change does: checks, thresholds, params, policies, alert rules and waivers added, removed or
    changed; with a target, the findings and plan under BASE and HEAD from one run of the queries.

    Example: civicq-ops --target staging diff origin/main --evaluate --format markdown
    """
    from civicq_ops.report.pr_diff import diff as diff_catalogues
    from civicq_ops.report.pr_diff import render

    one_of("--format", fmt, DIFF_FORMATS)
    s = session_of(ctx)
    targets = s.targets() if evaluate or s.target_names or s.all_targets else None
    emit(render(diff_catalogues(s.project, base, head, targets), fmt))


def register(root: typer.Typer) -> None:
    root.command()(diff)
