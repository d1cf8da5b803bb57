"""`validate`, `schema`, `test` and `checks list | show | render`: the YAML catalog, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from civicq_ops.cli.common import emit, exit_with, parse_params
from civicq_ops.cli.session import Session

checks_app = typer.Typer(help="The checks in the catalog.", no_args_is_help=True)


def _session(ctx) -> Session:
    return ctx.find_object(Session)


def _paths(s: Session, given: list[str] | None) -> list[Path]:
    if given:
        missing = [p for p in given if not Path(p).exists()]
        if missing:
            from civicq_ops.core.errors import InputError

            raise InputError(f"{missing[0]}: no such file or folder")
        return [Path(p) for p in given]
    return s.project.paths("checks") + s.project.paths("policies")


def validate(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Files or folders (default: the project's checks and policies).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json, github or sarif.")] = "text",
) -> None:
    """Validate YAML checks, policies, alerts, waivers and tests, offline; exit 2 on any error.

    Example: civicq-ops validate checks/ --format github
    """
    from civicq_ops.catalog.load import load_catalog
    from civicq_ops.core.errors import InputError
    from civicq_ops.report.validation import FORMATS, render

    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    s = _session(ctx)
    notifiers = set(s.project.section("notifiers"))
    result = load_catalog(_paths(s, paths), notifiers=notifiers)
    emit(render(result.diagnostics, fmt, len(result.catalog.files)))
    exit_with(2 if result.errors else 0)


def schema(kind: Annotated[str, typer.Argument(help="project, checks, policies, tests or report.")]) -> None:
    """Print the JSON Schema of a file kind (for editors: # yaml-language-server: $schema=...).

    Example: civicq-ops schema checks > checks.schema.json
    """
    from civicq_ops.catalog.structure import available_kinds, load_schema
    from civicq_ops.core.errors import InputError

    if kind not in available_kinds():
        raise InputError(f"unknown schema '{kind}' (choose from {', '.join(available_kinds())})")
    emit(json.dumps(load_schema(kind), indent=2) + "\n")


def test(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Files or folders (default: the project's checks and policies).")] = None,
    junit: Annotated[str | None, typer.Option("--junit", help="Also write a JUnit XML report here.")] = None,
) -> None:
    """Run the offline tests of checks (rows in, findings out; no database); exit 1 on a failure.

    Example: civicq-ops test --junit yaml-tests.xml
    """
    from civicq_ops.core.fileio import write_atomic
    from civicq_ops.testing.runner import render_junit, render_text, run_tests

    s = _session(ctx)
    paths_ = _paths(s, paths)
    if paths:  # tests given alone still need the checks they name
        paths_ = [*paths_, *s.project.paths("checks"), *s.project.paths("policies")]
    report = run_tests(paths_)
    if report.diagnostics and report.exit_code == 2:
        from civicq_ops.report.validation import render

        emit(render(report.diagnostics, "text", 0))
        exit_with(2)
    emit(render_text(report))
    if junit:
        write_atomic(junit, render_junit(report))
    exit_with(report.exit_code)


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
    from tabulate import tabulate

    from civicq_ops.catalog.load import project_catalog

    checks = [c for c in project_catalog(_session(ctx).project).catalog.checks.values()
              if (not tag or tag in c.tags) and (not category or c.category == category)]
    checks.sort(key=lambda c: (c.category, c.id))
    if fmt == "json":
        emit(json.dumps([{"id": c.id, "category": c.category, "title": c.title, "tags": c.tags,
                          "requires": c.requires, "remediation": c.remediation} for c in checks], indent=2) + "\n")
        return
    rows = [[c.id, c.category, c.title, _requires_text(c.requires)] for c in checks]
    emit(tabulate(rows, headers=["id", "category", "title", "requires"]) + f"\n{len(checks)} checks\n")


def _requires_text(req: dict) -> str:
    parts = []
    if req.get("server_version"):
        parts.append(f"PG {req['server_version']}")
    if req.get("role", "any") != "any":
        parts.append(req["role"])
    parts += req.get("extensions", []) + req.get("privileges", [])
    return ", ".join(parts)


@checks_app.command("show")
def checks_show(ctx: typer.Context, check_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Everything about one check: description, params, thresholds, SQL.

    Example: civicq-ops checks show table-dead-tuples
    """
    import yaml

    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.core.errors import InputError

    catalog = project_catalog(_session(ctx).project).catalog
    check = catalog.checks.get(check_id)
    if check is None:
        raise InputError(f"unknown check '{check_id}' (see `civicq-ops checks list`)")
    emit(f"# {check.id} ({check.source.path}:{check.source.line})\n")
    emit(yaml.safe_dump(check.raw, sort_keys=False, width=100, allow_unicode=True))


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
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.core.capabilities import Capabilities
    from civicq_ops.core.errors import InputError
    from civicq_ops.engine.run import render_check, resolve_params

    catalog = project_catalog(_session(ctx).project).catalog
    check = catalog.checks.get(check_id)
    if check is None:
        raise InputError(f"unknown check '{check_id}' (see `civicq-ops checks list`)")
    overrides = parse_params([f"{check_id}.{p}" for p in param or []]).get(check_id, {})
    params = resolve_params(check, overrides)
    caps = Capabilities.from_test_spec({"server_version": server_version} if server_version else None)
    rendered = render_check(check, params, caps)
    emit(f"-- {check.id}: SQL with bind parameters\n{rendered.numbered()}\n")
    emit("-- binds: " + json.dumps(list(rendered.binds), default=str) + "\n")
    emit(f"-- the same with literals (for psql)\n{rendered.literal()};\n")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
    app.command()(test)
    app.add_typer(checks_app, name="checks")


@checks_app.command("doc")
def checks_doc(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the Markdown.")] = "docs/checks.md",
) -> None:
    """Write the check reference (what each check detects, thresholds, requirements) from the YAML.

    Example: civicq-ops checks doc -o docs/checks.md
    """
    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.core.fileio import write_atomic
    from civicq_ops.report.checks_doc import render

    catalog = project_catalog(_session(ctx).project).catalog
    write_atomic(output, render(catalog))
    emit(f"wrote {output}: {len(catalog.checks)} checks\n")
