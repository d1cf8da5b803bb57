"""`civicq-ops inspect LISTING`: every row of a listing, sorted and paged (the seed's monitor commands)."""

from __future__ import annotations

import pydoc
import sys
from typing import Annotated

import typer

from civicq_ops.cli.common import emit
from civicq_ops.cli.session import session_of
from civicq_ops.inspect.listings import LISTINGS

app = typer.Typer(help="Plain listings of the server's state: every row, sortable, paged.", no_args_is_help=True)


def _command(name: str):
    def command(
        ctx: typer.Context,
        sort: Annotated[str | None, typer.Option("--sort", "-s", help="Column to sort by.")] = None,
        asc: Annotated[bool, typer.Option("--asc/--desc", help="Sort order (default: the listing's own).")] = None,  # type: ignore[assignment]
        limit: Annotated[int | None, typer.Option("--limit", "-n", help="Rows per page (default: all).")] = None,
        offset: Annotated[int, typer.Option("--offset", help="Skip this many rows (the next page).")] = 0,
        fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or csv.")] = "text",
        pager: Annotated[bool, typer.Option("--pager/--no-pager", help="Page text through $PAGER on a terminal.")] = True,
    ) -> None:
        from civicq_ops.core.errors import InputError
        from civicq_ops.inspect.listings import inspect_target
        from civicq_ops.inspect.output import FORMATS, render_page

        if fmt not in FORMATS:
            raise InputError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
        s = session_of(ctx)
        page = inspect_target(s.project, s.target(), name, sort=sort, descending=None if asc is None else not asc,
                              limit=limit, offset=offset)
        text = render_page(page, fmt)
        if pager and fmt == "text" and sys.stdout.isatty() and text.count("\n") > 40:
            pydoc.pager(text)  # the standard library's pager ($PAGER, else less or more)
        else:
            emit(text)

    item = LISTINGS[name]
    command.__doc__ = (f"{item.title}.\n\nColumns: {', '.join(item.columns)}.\n\n"
                       f"Example: civicq-ops inspect {name} --sort {item.default_sort} --limit 20 --format csv")
    return command


for _name in LISTINGS:
    app.command(_name)(_command(_name))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="inspect")
