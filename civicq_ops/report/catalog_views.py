"""The catalogue, offline, as text: `validate`, `schema`, `checks list | show | render | doc`.

Each function returns what the command prints (and, for validate, its exit code), so the CLI makes
one call and tests call the same functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicq_ops.catalog.cache import cache_in
from civicq_ops.catalog.load import discover, load_catalog, project_catalog, validated_before
from civicq_ops.catalog.model import Catalog, Check
from civicq_ops.catalog.structure import available_kinds, load_schema
from civicq_ops.config import Project
from civicq_ops.core.capabilities import Capabilities
from civicq_ops.core.diagnostics import errors_in
from civicq_ops.core.errors import ExitCode, InputError
from civicq_ops.core.fileio import write_atomic
from civicq_ops.report import checks_doc
from civicq_ops.report.validation import FORMATS as VALIDATE_FORMATS
from civicq_ops.report.validation import render as render_diagnostics
from civicq_ops.templating.render import NullFact


@dataclass
class Outcome:
    """What a command prints and the exit code it ends with."""

    text: str
    exit_code: ExitCode = ExitCode.OK


def catalog_paths(project: Project, given: list[str] | None) -> list[Path]:
    """The files or folders named on the command line (each must exist), else the project's
    checks and policies."""
    if given:
        if any(not p.strip() for p in given):
            raise InputError("an empty path: name a file or folder, or none for the project's own")
        missing = [p for p in given if not Path(p).exists()]
        if missing:
            raise InputError(f"{missing[0]}: no such file or folder")
        return [Path(p) for p in given]
    return project.paths("checks") + project.paths("policies")


def validate_report(project: Project, given: list[str] | None, fmt: str = "text") -> Outcome:
    """Validate YAML checks, policies, alerts, waivers and tests: exit 2 on any error."""
    if fmt not in VALIDATE_FORMATS:
        raise InputError(f"unknown format '{fmt}' (choose from {', '.join(VALIDATE_FORMATS)})")
    paths, cache = catalog_paths(project, given), cache_in(project.state_dir)
    if not given:
        earlier = validated_before(paths, cache, notifiers=set(project.notifiers)) if cache else None
        if earlier is not None and earlier[0]:
            files, diagnostics = earlier
            return Outcome(render_diagnostics(diagnostics, fmt, len(files)), ExitCode.OK)
        result = load_catalog(paths, notifiers=set(project.notifiers), cache=cache)
        return Outcome(render_diagnostics(result.diagnostics, fmt, len(result.catalog.files)),
                       ExitCode.INVALID_INPUT if result.errors else ExitCode.OK)
    # Named files (pre-commit passes the staged ones): references resolve against the whole
    # project catalogue; everything about the named files is reported, and of the other files their
    # errors (a renamed check id in a named file breaks the policies that name it elsewhere).
    named = {str(p) for p in discover(paths)}
    if not named:
        raise InputError(f"no YAML files under {', '.join(given)}: nothing to validate")
    project_paths = [p for p in project.paths("checks") + project.paths("policies") if p.exists()]
    result = load_catalog(project_paths + paths, notifiers=set(project.notifiers), cache=cache)
    diagnostics = [d for d in result.diagnostics if d.path in named or d.level == "error"]
    return Outcome(render_diagnostics(diagnostics, fmt, len(named)),
                   ExitCode.INVALID_INPUT if errors_in(diagnostics) else ExitCode.OK)


def schema_text(kind: str) -> str:
    """The JSON Schema of a file kind, as editors read it."""
    if kind not in available_kinds():
        raise InputError(f"unknown schema '{kind}' (choose from {', '.join(available_kinds())})")
    return json.dumps(load_schema(kind), indent=2) + "\n"


def write_schemas(folder: str | Path) -> list[Path]:
    """Write every JSON Schema into `folder` (created if missing), for editors of a project that
    installed civicq-ops from a wheel: `# yaml-language-server: $schema=<folder>/checks.schema.json`."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in available_kinds():
        path = out / f"{kind}.schema.json"
        write_atomic(path, schema_text(kind))
        written.append(path)
    return written


def select_checks(catalog: Catalog, tag: str | None = None, category: str | None = None) -> list[Check]:
    """The checks with `tag` and in `category` (either may be None), by category then id."""
    checks = [c for c in catalog.checks.values()
              if (not tag or tag in c.tags) and (not category or c.category == category)]
    return sorted(checks, key=lambda c: (c.category, c.id))


def check_list(project: Project, tag: str | None = None, category: str | None = None, fmt: str = "text") -> str:
    """`checks list`: a table (id, category, title, requirements) or JSON."""
    if fmt not in ("text", "json"):
        raise InputError(f"unknown format '{fmt}' (choose from text, json)")
    checks = select_checks(project_catalog(project).catalog, tag, category)
    if fmt == "json":
        return json.dumps([{"id": c.id, "category": c.category, "title": c.title, "tags": c.tags,
                            "requires": c.requires, "facts": c.facts, "remediation": c.remediation}
                           for c in checks], indent=2) + "\n"
    rows = [[c.id, c.category, c.title, requires_text(c)] for c in checks]
    from tabulate import tabulate  # here: importing it costs `validate` ~15 ms (importlib.metadata)

    return tabulate(rows, headers=["id", "category", "title", "requires"]) + f"\n{len(checks)} checks\n"


def requires_text(check: Check) -> str:
    """`PG >=13, pg_stat_statements, pg_monitor, facts: backups` for a table cell."""
    req: dict[str, Any] = check.requires
    parts = []
    if req.get("server_version"):
        parts.append(f"PG {req['server_version']}")
    if req.get("role", "any") != "any":
        parts.append(req["role"])
    parts += req.get("extensions", []) + req.get("privileges", [])
    if check.facts:
        parts.append("facts: " + ", ".join(check.facts))
    return ", ".join(parts)


def _check(catalog: Catalog, check_id: str) -> Check:
    check = catalog.checks.get(check_id)
    if check is None:
        raise InputError(f"unknown check '{check_id}' (see `civicq-ops checks list`)")
    return check


def check_show(project: Project, check_id: str) -> str:
    """`checks show ID`: where the check lives, then its YAML as written."""
    import yaml  # here: `validate` and `checks list` do without it

    check = _check(project_catalog(project).catalog, check_id)
    return (f"# {check.id} ({check.source.path}:{check.source.line})\n"
            + yaml.safe_dump(check.raw, sort_keys=False, width=100, allow_unicode=True))


def check_sql(project: Project, check_id: str, overrides: dict[str, Any],
              server_version: str | None = None) -> str:
    """`checks render ID`: the final SQL with bind parameters, the binds, and a psql-ready copy.
    Runner facts the check declares render as NULL (they are known only during a run)."""
    check = _check(project_catalog(project).catalog, check_id)
    from civicq_ops.engine.run import render_check, resolve_params  # psycopg behind it: only when rendering

    params = resolve_params(check, overrides)
    caps = Capabilities.from_test_spec({"server_version": server_version} if server_version else None)
    rendered = render_check(check, params, caps, {name: NullFact() for name in check.facts})
    return (f"-- {check.id}: SQL with bind parameters\n{rendered.numbered()}\n"
            + "-- binds: " + json.dumps(list(rendered.binds), default=str) + "\n"
            + f"-- the same with literals (for psql)\n{rendered.literal()};\n")


def write_checks_doc(project: Project, output: str) -> int:
    """`checks doc`: the check reference as Markdown; the number of checks written."""
    catalog = project_catalog(project).catalog
    write_atomic(output, checks_doc.render(catalog))
    return len(catalog.checks)
