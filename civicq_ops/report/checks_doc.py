"""docs/checks.md, generated from the YAML catalogue so it cannot drift from it."""

from __future__ import annotations

from collections import defaultdict

from civicq_ops.catalog.model import Catalog, Check


def _condition(cond: dict) -> str:
    words = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "ne": "!="}
    parts = []
    for op, ref in cond.items():
        if op in ("between", "outside"):
            parts.append(f"{op} {ref[0]} and {ref[1]}")
        else:
            parts.append(f"{words[op]} {ref}")
    return " and ".join(parts)


def _levels(check: Check) -> str:
    if check.level:
        return f"every row is {check.level}"
    if not check.thresholds:
        return "none"
    return "; ".join(f"{lvl} {_condition(cond)}" for lvl, cond in check.thresholds.raw.items())


def _requires(check: Check) -> str:
    r = check.requires
    parts = []
    if r.get("server_version"):
        parts.append(f"PostgreSQL {r['server_version']}")
    if r.get("role", "any") != "any":
        parts.append(f"a {r['role']}")
    parts += [f"extension {e}" for e in r.get("extensions", [])]
    parts += [f"privilege {p}" for p in r.get("privileges", [])]
    parts += [f"relation {x}" for x in r.get("relations", [])]
    parts += [f"setting {k} = {v}" for k, v in (r.get("settings") or {}).items()]
    if r.get("local"):
        parts.append("the database on the runner's machine")
    return ", ".join(parts) or "nothing"


def render(catalog: Catalog) -> str:
    by_category: dict[str, list[Check]] = defaultdict(list)
    for check in catalog.checks.values():
        by_category[check.category].append(check)
    lines = ["# The check catalogue", "",
             "Generated from `checks/*.yaml` by `civicq-ops checks doc`; do not edit by hand.", "",
             f"{len(catalog.checks)} checks in {len(by_category)} categories. Run them with "
             "`civicq-ops run checks`; the quick ones (tag `quick`) with `civicq-ops health`.", "",
             "Recommendations write SQL a DBA may paste between backticks, ending with `;`, with every name "
             "quoted and schema-qualified (`{{ subject | qident('schemaname', 'relname') }}`); a test parses "
             "each such statement with pglast for hostile names.", ""]
    for category in sorted(by_category):
        lines.append(f"- [{category}](#{category}) ({len(by_category[category])})")
    lines.append("")
    for category in sorted(by_category):
        lines += [f"## {category}", ""]
        for check in sorted(by_category[category], key=lambda c: c.id):
            lines += [f"### `{check.id}`: {check.title}", "", " ".join(check.description.split()), ""]
            lines.append(f"- **Thresholds**: {_levels(check)}" + (f" (unit: {check.unit})" if check.unit else ""))
            lines.append(f"- **Requires**: {_requires(check)}")
            if check.params:
                params = ", ".join(f"`{p.name}` ({p.type}, default `{p.default}`)" for p in check.params.values())
                lines.append(f"- **Params**: {params}")
            if check.variants:
                lines.append("- **Variants**: " + "; ".join(_requires_of(v.when) for v in check.variants))
            if check.remediation:
                lines.append(f"- **Remediation action**: `{check.remediation}`")
            if check.tags:
                lines.append(f"- **Tags**: {', '.join(check.tags)}")
            lines.append(f"- **Defined in**: `{check.source.path}`")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _requires_of(when: dict) -> str:
    fake = Check(id="x", title="x", category="x", query="", source=None, requires=when)  # type: ignore[arg-type]
    return "for " + _requires(fake)
