"""Finding, loading and validating the YAML files: checks, policies (with alerts and waivers),
offline tests and the project file. Every problem is collected, never only the first."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from civicq_ops.catalog.cache import CatalogCache, cache_in
from civicq_ops.catalog.model import AlertRule, Catalog, Check, Policy, Source, Waiver
from civicq_ops.catalog.structure import validate_document
from civicq_ops.core.diagnostics import Diagnostic, errors_in
from civicq_ops.core.documents import LoadedDocument, read_source
from civicq_ops.core.errors import SchemaError

YAML_SUFFIXES = (".yaml", ".yml")


def kind_of(doc: LoadedDocument) -> str | None:
    data = doc.data
    if not isinstance(data, dict):
        return None
    if "checks" in data:
        return "checks"
    if "cases" in data:
        return "tests"
    if "targets" in data or Path(doc.path).name == "civicq-ops.yaml":
        return "project"
    if any(k in data for k in ("policies", "alerts", "waivers")):
        return "policies"
    return None


def discover(paths: list[Path], include_tests: bool = True) -> list[Path]:
    """YAML files under `paths` (folders are searched recursively, without `tests` folders unless
    `include_tests`), sorted, each once. os.walk and os.path: pathlib's rglob, is_file and
    resolve took ~14 ms for the shipped catalogue on every run."""
    found: list[str] = []
    for p in paths:
        if p.is_dir():
            files: list[str] = []
            for root, dirs, names in os.walk(p):
                if not include_tests:
                    dirs[:] = [d for d in dirs if d != "tests"]
                files.extend(path for name in names if name.endswith(YAML_SUFFIXES)
                             and os.path.isfile(path := os.path.join(root, name)))
            found.extend(str(f) for f in sorted(Path(f) for f in files))
        else:
            found.append(str(p))
    cwd = os.path.realpath(os.getcwd())
    seen: set[str] = set()
    unique = []
    for f in found:
        real = os.path.realpath(f)
        if real not in seen:
            seen.add(real)
            unique.append(_display(f, real, cwd))
    return unique


def _display(given: str, real: str, cwd: str) -> Path:
    """Paths under the working folder are shown relative to it, as editors and CI annotations want."""
    prefix = cwd.rstrip(os.sep) + os.sep
    return Path(real[len(prefix):]) if real.startswith(prefix) else Path(given)


@dataclass
class LoadResult:
    catalog: Catalog
    diagnostics: list[Diagnostic] = field(default_factory=list)
    documents: dict[str, LoadedDocument] = field(default_factory=dict)
    tests: list[LoadedDocument] = field(default_factory=list)
    # Ids of checks whose definition has an error (reported there): a reference to one is not
    # reported again as unknown, so one mistake gives one error, not one per policy, alert and waiver.
    unloaded: set[str] = field(default_factory=set)

    @property
    def errors(self) -> list[Diagnostic]:
        return errors_in(self.diagnostics)


def load_catalog(paths: list[Path], *, notifiers: set[str] | None = None, today=None,
                 semantic: bool = True, parse_sql: bool = True, include_tests: bool = True,
                 cache: CatalogCache | None = None) -> LoadResult:
    """Load every file under `paths`; with `semantic`, also cross-check ids, references, SQL, templates.
    With a `cache` (catalog/cache.py), files validated before, unchanged, are not validated again."""
    result = LoadResult(Catalog())
    files = discover(paths, include_tests)
    sources = {f: read_source(f) for f in files}  # read once: hashed, and parsed on a miss
    key = _cache_key(cache, files, notifiers, today, semantic, parse_sql, include_tests, sources)
    cached = cache.get(key) if cache else None
    stored = cached.documents if cached is not None else None
    for path in files:
        doc = stored.get(str(path)) if stored is not None else None
        source = sources[path]
        if doc is None and isinstance(source, LoadedDocument):
            doc = source  # it could not be read: the document says why
        elif doc is None and isinstance(source, bytes):
            from civicq_ops.core.yamlpos import load_bytes  # PyYAML: only when a file must be parsed

            doc = load_bytes(source, str(path))
        assert doc is not None
        result.documents[doc.path] = doc
        result.catalog.files.append(doc.path)
        result.diagnostics.extend(doc.diagnostics)
        if errors_in(doc.diagnostics) or doc.data is None:
            continue
        kind = kind_of(doc)
        if kind is None:
            result.diagnostics.append(doc.diagnostic((), "unknown-kind", "not a civicq-ops file: expected a "
                                                     "'checks', 'policies', 'alerts', 'waivers' or 'cases' key"))
            continue
        problems = [] if cached is not None else validate_document(doc, kind)
        result.diagnostics.extend(problems)
        if errors_in(problems):
            result.unloaded |= _declared_ids(doc, kind)
            continue
        _add(result, doc, kind)
    if cached is not None:
        result.diagnostics = cached.diagnostics
    elif semantic:
        from civicq_ops.catalog.semantic import check_catalog  # jinja2, pglast: only when validating

        result.diagnostics.extend(check_catalog(result, notifiers=notifiers, today=today, parse_sql=parse_sql))
    result.diagnostics.sort()
    if cache is not None and cached is None and not result.errors:
        cache.put(key, result.diagnostics, list(result.documents.values()))
    return result


def _declared_ids(doc: LoadedDocument, kind: str) -> set[str]:
    """The check ids a file of checks declares, read from its raw data (it failed its schema)."""
    items = doc.data.get("checks") if kind == "checks" and isinstance(doc.data, dict) else None
    if not isinstance(items, list):
        return set()
    return {item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)}


def _cache_key(cache, files, notifiers, today, semantic, parse_sql, include_tests, sources=None):
    return cache.key(files, {"notifiers": sorted(notifiers or ()), "today": today, "semantic": semantic,
                             "parse_sql": parse_sql, "tests": include_tests}, sources) if cache else None


def validated_before(paths: list[Path], cache: CatalogCache, *, notifiers: set[str] | None = None,
                     today=None) -> tuple[list[Path], list[Diagnostic]] | None:
    """(the files, their warnings) when these files, unchanged, passed `load_catalog`'s full
    validation before (no file is even parsed); else None. For `validate`, which needs no catalogue."""
    files = discover(paths, True)
    cached = cache.get(_cache_key(cache, files, notifiers, today, True, True, True), documents=False)
    return (files, cached.diagnostics) if cached is not None else None


def _add(result: LoadResult, doc: LoadedDocument, kind: str) -> None:
    cat = result.catalog

    def source(*jpath) -> Source:
        line, col = doc.position(jpath)
        return Source(doc.path, line, col, index=jpath[1])

    if kind == "checks":
        for i, data in enumerate(doc.data["checks"]):
            try:
                check = Check.from_dict(data, source("checks", i))
            except ValueError as e:  # a threshold or timeout whose unit does not fit
                result.diagnostics.append(doc.diagnostic(("checks", i, "thresholds"), "bad-unit", str(e)))
                result.unloaded.add(str(data.get("id")))
                continue
            for j, variant in enumerate(check.variants):
                variant.source = source("checks", i, "variants", j)
            if check.id in cat.checks:
                first = cat.checks[check.id].source
                result.diagnostics.append(doc.diagnostic(("checks", i, "id"), "duplicate-id",
                                                         f"check id '{check.id}' is already defined at "
                                                         f"{first.path}:{first.line}"))
                continue
            cat.checks[check.id] = check
    elif kind == "policies":
        for i, data in enumerate(doc.data.get("policies", [])):
            cat.policies.append(Policy.from_dict(data, source("policies", i)))
        for i, data in enumerate(doc.data.get("alerts", [])):
            cat.alerts.append(AlertRule.from_dict(data, source("alerts", i)))
        for i, data in enumerate(doc.data.get("waivers", [])):
            cat.waivers.append(Waiver.from_dict(data, source("waivers", i)))
    elif kind == "tests":
        result.tests.append(doc)


def project_catalog(project, paths: list[Path] | None = None, *, today=None) -> LoadResult:
    """The project's checks and policies; errors in them raise SchemaError (exit 2, nothing runs)."""
    # Parsing every query with pglast is `validate`'s job (and CI's); a run relies on the READ ONLY
    # transaction instead, and starts in a fraction of the time.
    result = load_catalog(paths or project.paths("checks") + project.paths("policies"),
                          notifiers=set(project.notifiers), today=today, parse_sql=False,
                          include_tests=False, cache=cache_in(project.state_dir))
    if result.errors:
        first = result.errors[0]
        more = f" (and {len(result.errors) - 1} more: run `civicq-ops validate`)" if len(result.errors) > 1 else ""
        raise SchemaError(f"{first.path}:{first.line}:{first.col}: {first.message}{more}", result.diagnostics)
    return result
