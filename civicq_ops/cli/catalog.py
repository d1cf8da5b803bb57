"""`validate`, `schema`, `test` and `checks list | show | render | doc`: the YAML catalog, offline.

Each command is one call into civicq_ops.report.catalog_views (or testing.runner). They are
imported inside the commands: with jsonschema, pglast, jinja2 and psycopg behind them they would
add ~0.5 s to the start-up of every command, `--help` too.
"""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.collector import loading
from civicq_ops.cli.common import emit, exit_with, not_blank, parse_params
from civicq_ops.cli.session import Session, session_of

checks_app = typer.Typer(help="The checks in the catalog.", no_args_is_help=True)


def _session(ctx) -> Session:
    return session_of(ctx)


def validate(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Files or folders (default: the project's checks and policies).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json, github or sarif.")] = "text",
) -> None:
    """Validate YAML checks, policies, alerts, waivers and tests, offline; exit 2 on any error.

    Example: civicq-ops validate checks/ --format github
    """
    with loading():
        from civicq_ops.report.catalog_views import validate_report

    outcome = validate_report(_session(ctx).project, paths, fmt)
    emit(outcome.text)
    exit_with(outcome.exit_code)


def schema(
    kind: Annotated[str | None, typer.Argument(help="project, checks, policies, tests, report, analysis, webhook or plan.")] = None,
    write: Annotated[str | None, typer.Option("--write", help="Write every schema into this folder instead.")] = None,
) -> None:
    """Print the JSON Schema of a file kind, or write them all (for editors: # yaml-language-server: $schema=...).

    Example: civicq-ops schema --write .civicq-ops/schemas
    """
    from civicq_ops.core.errors import InputError
    from civicq_ops.report.catalog_views import schema_text, write_schemas

    if write:
        if kind:
            raise InputError("pass a KIND or --write DIR, not both")
        written = write_schemas(write)
        emit("".join(f"wrote {path}\n" for path in written))
        return
    if not kind:
        raise InputError("name a KIND (project, checks, policies, tests, report, analysis, webhook, plan) or pass --write DIR")
    emit(schema_text(kind))


def test(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Files or folders (default: the project's checks and policies).")] = None,
    junit: Annotated[str | None, typer.Option("--junit", help="Also write a JUnit XML report here.")] = None,
) -> None:
    """Run the offline tests of checks (rows in, findings out; no database); exit 1 on a failure.

    Example: civicq-ops test --junit yaml-tests.xml
    """
    from civicq_ops.testing.runner import offline_tests

    outcome = offline_tests(_session(ctx).project, paths, not_blank("--junit", junit))
    emit(outcome.text)
    exit_with(outcome.exit_code)


@checks_app.command("list")
def checks_list(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """List the checks: id, category, title, requirements.

    Example: civicq-ops checks list --category vacuum
    """
    with loading():
        from civicq_ops.report.catalog_views import check_list

    emit(check_list(_session(ctx).project, tag, category, fmt))


@checks_app.command("show")
def checks_show(ctx: typer.Context, check_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Everything about one check: description, params, thresholds, SQL.

    Example: civicq-ops checks show table-dead-tuples
    """
    from civicq_ops.report.catalog_views import check_show

    emit(check_show(_session(ctx).project, check_id))


@checks_app.command("render")
def checks_render(
    ctx: typer.Context,
    check_id: Annotated[str, typer.Argument(metavar="ID")],
    param: Annotated[list[str] | None, typer.Option("--param", help="PARAM=VALUE, repeatable.")] = None,
    server_version: Annotated[str | None, typer.Option("--server-version", help="Pick variants as for this version (offline).")] = None,
) -> None:
    """Print the final SQL of a check and its bind values, plus a psql-ready copy with literals.

    Example: civicq-ops checks render table-dead-tuples --param min_live_tuples=100
    """
    from civicq_ops.report.catalog_views import check_sql

    overrides = parse_params([f"{check_id}.{p}" for p in param or []]).get(check_id, {})
    emit(check_sql(_session(ctx).project, check_id, overrides, server_version))


@checks_app.command("doc")
def checks_doc(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the Markdown.")] = "docs/checks.md",
) -> None:
    """Write the check reference (what each check detects, thresholds, requirements) from the YAML.

    Example: civicq-ops checks doc -o docs/checks.md
    """
    from civicq_ops.report.catalog_views import write_checks_doc

    count = write_checks_doc(_session(ctx).project, output)
    emit(f"wrote {output}: {count} checks\n")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
    app.command()(test)
    app.add_typer(checks_app, name="checks")
