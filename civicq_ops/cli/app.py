"""The `civicq-ops` Typer app, its global options, and the single error handler.

Every command makes one library call and renders its result. Errors from the library
(`CivicqError`) become one line on stderr and the exit code of DESIGN 8; anything unexpected
becomes one line that points to `--debug`, which shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from civicq_ops import __version__
from civicq_ops.cli.session import Session, report_error
from civicq_ops.core.errors import CivicqError, ExitCode


class _Handled(TyperGroup):
    """The root group: turns library errors into one line and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CivicqError as e:
            if _debug(ctx):
                raise
            report_error(e.message, e.hint)
            raise typer.Exit(int(e.exit_code)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as e:
            if _debug(ctx) or type(e).__module__.startswith(("typer", "click")):
                raise
            report_error(f"unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                         "run again with --debug to see the traceback")
            raise typer.Exit(int(ExitCode.EXECUTION_ERROR)) from None


def _debug(ctx) -> bool:
    obj = ctx.find_object(Session) if ctx else None
    return bool(obj and obj.debug) or "--debug" in sys.argv


app = typer.Typer(
    name="civicq-ops",
    cls=_Handled,
    help="Checks, policies, backups and the CivicQ database, for PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"civicq-ops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", "-c", help="Project file (default: civicq-ops.yaml here or above, or $CIVICQ_CONFIG).")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", "-t", help="Target name(s) from civicq-ops.yaml; comma-separated or repeated.")] = None,
    all_targets: Annotated[bool, typer.Option("--all", help="Every target in civicq-ops.yaml.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Less output: no progress, no notes.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """civicq-ops: checks, policies, backups and the CivicQ database, for PostgreSQL."""
    names = [n.strip() for t in (target or []) for n in t.split(",") if n.strip()]
    ctx.obj = Session(config_path=config, target_names=names, all_targets=all_targets, debug=debug, quiet=quiet)


def _register() -> None:
    from civicq_ops.cli import backup, catalog, db, inspect_cmd, remediate, report_cmd, run, vacuum

    app.add_typer(db.app, name="db")
    backup.register(app)
    app.add_typer(run.app, name="run")
    catalog.register(app)
    run.register(app)
    remediate.register(app)
    vacuum.register(app)
    inspect_cmd.register(app)
    report_cmd.register(app)


_register()


def main() -> None:
    """Console entry point."""
    app(prog_name="civicq-ops")
