"""The `civicq-ops` Typer app, its global options, and the single error handler (the entry point,
civicq_ops/cli/app.py, builds it with only the command modules a command line needs).

Every command makes one library call and renders its result. Errors from the library
(`CivicqError`) become one line on stderr and the exit code of DESIGN 8; anything unexpected
becomes one line that points to `--debug`, which shows the traceback instead.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from civicq_ops import __version__
from civicq_ops.cli.session import Session, report_error
from civicq_ops.core.errors import CivicqError, ExitCode, first_line
from civicq_ops.core.redaction import redact
from civicq_ops.core.units import UnitError


class _Handled(TyperGroup):
    """The root group: turns errors into one line and an exit code. `--debug` adds the traceback
    (redacted like every other output) and changes nothing else: the exit code stays the same."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        tidy_help(self)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # The reader of our output went away (`| head`): stop quietly, as a tool killed by SIGPIPE does.
            from civicq_ops.cli.common import silence_stdout

            silence_stdout()
            raise typer.Exit(128 + 13) from None
        except Exception as e:
            if type(e).__module__.startswith(("typer", "click")):
                raise  # usage errors: click prints them with the usage line, exit 2
            code, message, hint = describe(e)
            if _debug(ctx):
                sys.stderr.write(redact("".join(traceback.format_exception(e))))
                hint = None
            report_error(message, hint)
            raise typer.Exit(int(code)) from None


# What an option's value is, in --help, where the type alone says little (`<str>`).
METAVARS = {"--config": "PATH", "--target": "NAME", "--format": "FORMAT", "--output": "PATH", "--junit": "PATH",
            "--write": "DIR", "--baseline": "PATH", "--param": "CHECK.PARAM=VALUE", "--check": "ID", "--tag": "TAG",
            "--category": "CATEGORY", "--budget": "DURATION", "--ttl": "DURATION", "--listen": "HOST:PORT",
            "--dir": "DIR", "--sort": "COLUMN", "--for": "DURATION", "--timeout": "DURATION"}
TYPE_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "bool": "BOOLEAN"}


def tidy_help(command) -> None:
    """Help without typer's type labels (`<bool>`, `<str>`, `<list[str]>`): flags show none, values
    a name (PATH, NAME, FORMAT, TEXT, INTEGER, ...), arguments their upper-case name."""
    for param in getattr(command, "params", []):
        if param.param_type_name == "argument":
            param.type = _unlabelled(param.type)
        if param.metavar is None and not getattr(param, "is_flag", False):
            if param.param_type_name == "argument":
                param.metavar = (param.name or "value").upper()
            else:
                long = next((o for o in param.opts if o.startswith("--")), "")
                bare = getattr(param.type, "name", "")  # str, int, float, bool (also for list[...])
                param.metavar = METAVARS.get(long) or TYPE_METAVARS.get(bare.removeprefix("list[").removesuffix("]"),
                                                                        "VALUE")
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


def _unlabelled(ptype):
    """A copy of an argument's type that gives no metavar: typer's help would print `<str>` beside
    the argument's name (its metavar already stands in the first column)."""
    if getattr(ptype, "_unlabelled", False):
        return ptype
    cls = type(ptype)
    copy: Any = object.__new__(type(f"Unlabelled{cls.__name__}", (cls,), {"get_metavar": lambda self, *a, **k: "",
                                                                       "_unlabelled": True}))
    copy.__dict__.update(ptype.__dict__)
    return copy


def _debug(ctx) -> bool:
    obj = ctx.find_object(Session) if ctx else None
    return bool(obj and obj.debug) or "--debug" in sys.argv


def describe(e: BaseException) -> tuple[ExitCode, str, str | None]:
    """The exit code and one-line message for an error: civicq-ops' own, or one a library raised
    (a lost or read-only server, a file that cannot be read or written, a bad value) that no
    lower layer wrapped. Only a real bug stays `unexpected`."""
    if isinstance(e, CivicqError):
        return e.exit_code, e.message, e.hint
    kind = type(e)
    module = kind.__module__
    if module.startswith("psycopg"):
        sqlstate = getattr(e, "sqlstate", None) or ""
        if sqlstate == "25006":
            return ExitCode.EXECUTION_ERROR, f"the target is read-only (a standby?): {first_line(e)}", None
        if sqlstate == "42501":
            return ExitCode.EXECUTION_ERROR, f"permission denied on the target: {first_line(e)}", \
                "this command needs a role with more privileges than the one connected"
        if kind.__name__ in ("OperationalError", "InterfaceError") or sqlstate.startswith(("08", "57")):
            return ExitCode.EXECUTION_ERROR, f"the database connection failed: {first_line(e)}", None
        return ExitCode.EXECUTION_ERROR, f"the database refused: {first_line(e)}", None
    if module == "sqlite3":
        return ExitCode.EXECUTION_ERROR, f"the state store failed: {e}", None
    if isinstance(e, OSError):
        path = f"{e.filename}: " if e.filename else ""
        bad_path = e.errno in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM,
                               errno.ENAMETOOLONG, errno.EEXIST, errno.ELOOP)
        code = ExitCode.INVALID_INPUT if bad_path and e.filename else ExitCode.EXECUTION_ERROR
        return code, f"{path}{e.strerror or e}", None
    if isinstance(e, UnitError) or module.startswith("yaml") or isinstance(e, (UnicodeError, json.JSONDecodeError)):
        return ExitCode.INVALID_INPUT, f"invalid value: {str(e).splitlines()[0] if str(e) else kind.__name__}", None
    if isinstance(e, MemoryError):
        return ExitCode.EXECUTION_ERROR, "out of memory", None
    text = str(e).splitlines()[0] if str(e) else ""
    return ExitCode.EXECUTION_ERROR, f"unexpected {kind.__name__}: {text}", "run again with --debug to see the traceback"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"civicq-ops {__version__}")
        raise typer.Exit()


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


# psycopg logs what it ignores while unwinding (e.g. "error ignored terminating <psycopg.Copy>" when
# the server died mid-COPY); without a handler Python prints it to stderr beside our one-line error.
# A NullHandler keeps that second line away; `watch --json-logs` still gets the records at its root.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


def build(modules: tuple[str, ...]) -> typer.Typer:
    """The app with the commands of these modules of civicq_ops.cli (in this order, for --help)."""
    from importlib import import_module

    app = typer.Typer(
        name="civicq-ops",
        cls=_Handled,
        help="Checks, policies, backups and the CivicQ database, for PostgreSQL.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name in modules:
        module = import_module(f"civicq_ops.cli.{name}")
        if name == "db":
            app.add_typer(module.app, name="db")
        elif name == "run":
            app.add_typer(module.app, name="run")
            module.register(app)
        else:
            module.register(app)
    return app
