"""The fleet's inventory: the targets of civicq-ops.yaml plus target groups (`fleet.groups`) that
expand at run time, each expanded target with its labels (cluster, city, environment, ...).

A group is one of:
- a cluster: `cluster: URL` with `databases: "*"` (every database that accepts connections, never a
  template) or a list of names, filtered by `include` / `exclude` fnmatch patterns;
- a folder of target files: `directory: fleet.d` (each `*.yaml` is `{targets: {NAME: {url, environment, labels}}}`);
- a query against an inventory database: `inventory: URL`, `query: SELECT name, url[, cluster, city,
  environment, more label columns] FROM ...`, run in a READ ONLY transaction.

An expanded target is named `GROUP/NAME` (a cluster group: `GROUP/DATABASE`), so a worker finds
the group of any job's target from its name alone and rebuilds it (`Resolver`) without keeping
URLs, which may hold passwords, in the job queue. A group that cannot be expanded (its cluster or
inventory database is down, a file is malformed) is a problem of that group, never a failed fleet.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.conninfo import make_conninfo

from civicq_ops.config import Project, Target
from civicq_ops.core.errors import CivicqError, ConfigError, TargetUnreachable, first_line
from civicq_ops.core.redaction import register_secret, register_url_secrets
from civicq_ops.postgres.connect import TCP_DEFAULTS, open_connection

SEPARATOR = "/"
LABEL_KEYS = ("cluster", "city", "environment")
_ENV_REF = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class FleetTarget:
    """A target of the fleet and the labels its findings, alerts and metrics carry."""

    target: Target
    labels: dict[str, str]
    group: str | None = None  # None: a target of `targets:`

    @property
    def name(self) -> str:
        return self.target.name


@dataclass
class Inventory:
    targets: list[FleetTarget] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # group -> why it could not be expanded

    def by_name(self) -> dict[str, FleetTarget]:
        return {t.name: t for t in self.targets}


def group_specs(project: Project) -> dict[str, dict[str, Any]]:
    return dict(project.section("fleet").get("groups") or {})


def expand(project: Project, groups: list[str] | None = None, static: bool = True) -> Inventory:
    """Every target of the fleet: `targets:` of civicq-ops.yaml (unless `static` is False) and the
    expansion of each group (of `groups`, when given: an unknown name is a ConfigError)."""
    specs = group_specs(project)
    unknown = [g for g in groups or [] if g not in specs]
    if unknown:
        raise ConfigError(f"unknown fleet group(s) {', '.join(unknown)} (fleet.groups in {project.path}: "
                          f"{', '.join(specs) or 'none'})")
    for group, spec in specs.items():  # a mistake in the file is exit 2 at its line, before anything runs
        if spec.get("city"):
            try:
                re.compile(spec["city"])
            except re.error as e:
                line, col = project.document.position(("fleet", "groups", group, "city"))
                raise ConfigError(f"{project.path}:{line}:{col}: fleet.groups.{group}.city is not a regular "
                                  f"expression: {e}") from None
    inventory = Inventory()
    if static and not groups:
        for name in project.target_names:
            try:  # one target whose ${VARIABLE} is unset is that target's problem, not the fleet's
                target = project.target(name)
            except CivicqError as e:
                inventory.problems[name] = e.message
                continue
            inventory.targets.append(FleetTarget(target, static_labels(target)))
    for group in groups or list(specs):
        try:
            inventory.targets.extend(expand_group(project, group))
        except DuplicateTarget:
            raise
        except CivicqError as e:
            inventory.problems[group] = e.message
    return inventory


class DuplicateTarget(ConfigError):
    """Two entries name the same fleet target: it would be run and recorded twice."""


def static_labels(target: Target) -> dict[str, str]:
    labels = {"environment": target.environment}
    labels.update({k: str(v) for k, v in (target.labels or {}).items()})
    return labels


def expand_group(project: Project, group: str) -> list[FleetTarget]:
    spec = group_specs(project)[group]
    if "cluster" in spec:
        return _cluster_group(project, group, spec, _list_databases(project, group, spec))
    if "directory" in spec:
        return _directory_group(project, group, spec)
    return _query_group(project, group, spec)


# -- a cluster's databases ---------------------------------------------------------------------------

def _cluster_url(project: Project, group: str, spec: dict[str, Any]) -> str:
    url = project.interpolate(spec["cluster"], ("fleet", "groups", group, "cluster"))
    register_url_secrets(url)
    return url


def _list_databases(project: Project, group: str, spec: dict[str, Any]) -> list[str]:
    if spec["databases"] != "*":
        return list(spec["databases"])
    url = _cluster_url(project, group, spec)
    kwargs = {"conninfo": url, "connect_timeout": spec.get("connect_timeout", 10), "application_name": "civicq-ops fleet",
              **TCP_DEFAULTS}
    with open_connection(kwargs, what=f"cluster of fleet group '{group}'", autocommit=True) as conn:
        try:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn "
                                "ORDER BY datname").fetchall()
        except psycopg.Error as e:
            raise TargetUnreachable(f"listing the databases of fleet group '{group}' failed: {first_line(e)}") from e
    return [r[0] for r in rows]


def selected(names: list[str], include: list[str] | None, exclude: list[str] | None) -> list[str]:
    """Names that match one `include` pattern (all, without any) and no `exclude` pattern."""
    return [n for n in names
            if (not include or any(fnmatch.fnmatchcase(n, p) for p in include))
            and not any(fnmatch.fnmatchcase(n, p) for p in exclude or [])]


def city_of(name: str, pattern: str | None) -> str:
    """The city label of a database: the first group of `pattern` (its whole match without a group), else the name."""
    if not pattern:
        return name
    m = re.search(pattern, name)
    if not m:
        return name
    return m.group(1) if m.groups() and m.group(1) is not None else m.group(0)


def _cluster_group(project: Project, group: str, spec: dict[str, Any], databases: list[str]) -> list[FleetTarget]:
    url = _cluster_url(project, group, spec)
    environment = spec.get("environment", "production")
    out = []
    for db in selected(databases, spec.get("include"), spec.get("exclude")):
        labels = {"cluster": group, "city": city_of(db, spec.get("city")), "environment": environment,
                  **{k: str(v) for k, v in (spec.get("labels") or {}).items()}}
        target = Target(name=f"{group}{SEPARATOR}{db}", url=make_conninfo(url, dbname=db), environment=environment,
                        connect_timeout=spec.get("connect_timeout", 10), labels=labels)
        out.append(FleetTarget(target, labels, group))
    return out


# -- a folder of target files ------------------------------------------------------------------------

def _directory_group(project: Project, group: str, spec: dict[str, Any]) -> list[FleetTarget]:
    folder = project.root / spec["directory"]
    if not folder.is_dir():
        raise ConfigError(f"fleet group '{group}': {folder} is not a folder")
    out = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        for name, entry in _target_file(path).items():
            if str(name) in seen:
                raise DuplicateTarget(f"fleet group '{group}': target '{name}' is in both {seen[str(name)]} and {path}")
            seen[str(name)] = path
            out.append(_entry(project, group, spec, str(name), entry, where=str(path)))
    return out


def _target_file(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {first_line(e)}") from e
    targets = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(targets, dict) or not all(isinstance(v, dict) and isinstance(v.get("url"), str)
                                                for v in targets.values()):
        raise ConfigError(f"{path}: a target file is {{targets: {{NAME: {{url: ..., environment: ..., labels: {{...}}}}}}}}")
    return targets


def _entry(project: Project, group: str, spec: dict[str, Any], name: str, entry: dict[str, Any], where: str) -> FleetTarget:
    url = _interpolate(project, str(entry["url"]), where)
    register_url_secrets(url)
    environment = str(entry.get("environment") or spec.get("environment", "production"))
    extra = {k: str(v) for k, v in (entry.get("labels") or {}).items()}
    bad = [k for k in extra if not _LABEL_NAME.match(k)]
    if bad:
        raise ConfigError(f"{where}: target '{name}': invalid label name(s) {', '.join(bad)}")
    labels = {"cluster": str(entry.get("cluster") or group), "city": str(entry.get("city") or name),
              "environment": environment, **{k: str(v) for k, v in (spec.get("labels") or {}).items()}, **extra}
    target = Target(name=f"{group}{SEPARATOR}{name}", url=url, environment=environment,
                    connect_timeout=int(entry.get("connect_timeout") or spec.get("connect_timeout", 10)), labels=labels)
    return FleetTarget(target, labels, group)


def _interpolate(project: Project, raw: str, where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        value = project.env.get(m["name"])
        if not value:
            if m["default"] is not None:
                return m["default"]
            raise ConfigError(f"{where}: environment variable {m['name']} is not set")
        if re.search(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL", m["name"], re.IGNORECASE):
            register_secret(value)
        return value

    return _ENV_REF.sub(sub, raw)


# -- a query against an inventory database -----------------------------------------------------------

def _query_group(project: Project, group: str, spec: dict[str, Any]) -> list[FleetTarget]:
    url = project.interpolate(spec["inventory"], ("fleet", "groups", group, "inventory"))
    register_url_secrets(url)
    kwargs = {"conninfo": url, "connect_timeout": spec.get("connect_timeout", 10), "application_name": "civicq-ops fleet",
              **TCP_DEFAULTS}
    with open_connection(kwargs, what=f"the inventory database of fleet group '{group}'") as conn:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                cur = conn.execute(spec["query"])
                columns = [d.name for d in cur.description or []]
                rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
        except psycopg.Error as e:
            raise ConfigError(f"fleet group '{group}': the inventory query failed: {first_line(e)}") from e
    if "name" not in columns or "url" not in columns:
        raise ConfigError(f"fleet group '{group}': the inventory query must return the columns name and url "
                          f"(it returned {', '.join(columns)})")
    out = []
    names = [str(row["name"]) for row in rows if row["name"] is not None]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DuplicateTarget(f"fleet group '{group}': the inventory query returns {', '.join(twice)} more than once")
    for row in rows:
        if row["name"] is None or row["url"] is None:
            continue
        labels = {k: str(v) for k, v in row.items() if k not in ("name", "url", "connect_timeout") and v is not None
                  and _LABEL_NAME.match(k)}
        entry = {"url": row["url"], "environment": labels.pop("environment", None), "cluster": labels.pop("cluster", None),
                 "city": labels.pop("city", None), "labels": labels}
        out.append(_entry(project, group, spec, str(row["name"]), entry, where=f"fleet group '{group}'"))
    return out


# -- finding a job's target again ----------------------------------------------------------------------

class Resolver:
    """A job's target by name, in a worker: a static target from civicq-ops.yaml, a cluster group's
    database built from its name (no listing), a file or query group's from its expansion (kept
    `ttl_s`, then expanded again). A target that is no longer in the inventory is a ConfigError."""

    def __init__(self, project: Project, ttl_s: float = 60.0) -> None:
        self.project, self.ttl_s = project, ttl_s
        self._cache: dict[str, tuple[float, dict[str, FleetTarget]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> FleetTarget:
        group, sep, rest = name.partition(SEPARATOR)
        if not sep:
            target = self.project.target(name)
            return FleetTarget(target, static_labels(target))
        specs = group_specs(self.project)
        if group not in specs:
            raise ConfigError(f"target '{name}': no fleet group '{group}' in {self.project.path}")
        spec = specs[group]
        if "cluster" in spec:
            if spec["databases"] != "*" and rest not in spec["databases"]:
                raise ConfigError(f"target '{name}' is no longer in fleet group '{group}'")
            found = _cluster_group(self.project, group, spec, [rest])
            if not found:
                raise ConfigError(f"target '{name}' is no longer in fleet group '{group}' (include/exclude)")
            return found[0]
        with self._lock:
            at, targets = self._cache.get(group, (0.0, {}))
            if time.monotonic() - at > self.ttl_s or name not in targets:
                targets = {t.name: t for t in expand_group(self.project, group)}
                self._cache[group] = (time.monotonic(), targets)
        if name not in targets:
            raise ConfigError(f"target '{name}' is no longer in fleet group '{group}'")
        return targets[name]
