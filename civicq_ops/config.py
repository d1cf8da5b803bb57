"""The project file (civicq-ops.yaml): paths, targets, state, notifiers, backups.

`${ENV}` references are interpolated when a value is used, not when the file is read, so an unset
`CIVICQ_PROD_URL` does not stop a developer from using the local target. An unset variable is an
error naming the variable and the file:line that references it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicq_ops.catalog.cache import cache_in
from civicq_ops.catalog.structure import validate_document
from civicq_ops.core.assets import shipped_dir
from civicq_ops.core.diagnostics import errors_in
from civicq_ops.core.documents import JsonPath, LoadedDocument, read_source
from civicq_ops.core.errors import ConfigError
from civicq_ops.core.redaction import register_secret, register_url_secrets
from civicq_ops.core.units import UnitError, parse_duration

PROJECT_FILE = "civicq-ops.yaml"
ENV_URL = "CIVICQ_DATABASE_URL"
ENV_CONFIG = "CIVICQ_CONFIG"
ENV_TARGET_NAME = "env"
STATE_DIR = ".civicq-ops"

_DEFAULT_PROJECT = """\
version: 1
targets:
  local: {embedded: true, environment: development}
default_target: local
"""

_ENV_REF = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """A database civicq-ops works on: a URL, or the local embedded cluster."""

    name: str
    embedded: bool = False
    url: str | None = None
    environment: str = "development"
    role: str = "any"
    bin_dir: str | None = None
    data_dir: str | None = None
    port: int | None = None
    database: str = "civicq"
    connect_timeout: int = 10
    backups: dict | None = None  # {expect: civicq-ops | external | none}: where its backups are judged
    labels: dict | None = None  # fleet labels (cluster, city, environment, ...): civicq_ops/fleet/inventory.py


DEFAULT_BACKUP_JOBS = 2  # parallel pg_dump / pg_restore jobs unless a project or a flag says otherwise


DEFAULT_STATE_RETENTION_S = 90 * 86400.0  # `state.retention` unless the project says otherwise
MIN_STATE_RETENTION_S = 86400.0  # less keeps no trend to forecast from (and 0s wiped every earlier run)


@dataclass(frozen=True)
class StateSettings:
    """`state:` of the project file; url None means SQLite in .civicq-ops/state.db."""

    url: str | None = None  # not interpolated yet: ${ENV} is read when the store is opened
    retention_s: float | None = DEFAULT_STATE_RETENTION_S  # None: history is kept forever

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> StateSettings:
        raw = raw or {}
        retention = raw.get("retention", "90d")
        seconds = None if retention == "forever" else parse_duration(retention)
        if seconds is not None and seconds < MIN_STATE_RETENTION_S:
            raise UnitError(f"retention {retention!r} would delete the history every run makes: at least 1d, "
                            "or forever")
        return cls(url=raw.get("url"), retention_s=seconds)


# What a pgBackRest path cannot hold: archive_command and restore_command go through a shell and,
# for restore_command, through pgBackRest into a single-quoted postgresql.auto.conf value, unescaped
# (a space is fine: the word is double-quoted).
PGBACKREST_UNSAFE = set("'\"\\$`\n\r%")


@dataclass(frozen=True)
class PgBackRestSettings:
    """`backups.pgbackrest:` pgBackRest's options, given on its command line (never a config file)."""

    stanza: str
    repo_path: str  # absolute, resolved against the project folder
    lock_path: str
    spool_path: str
    log_path: str | None = None  # None: no log files of its own
    retention_full: int | None = None
    process_max: int | None = None
    compress_type: str | None = None
    bin: str = "pgbackrest"

    @classmethod
    def parse(cls, raw: dict[str, Any], root: Path) -> PgBackRestSettings:
        def path(value: str) -> str:
            return str((root / value).resolve())

        repo = path(raw["repo_path"])
        return cls(stanza=raw["stanza"], repo_path=repo,
                   lock_path=path(raw["lock_path"]) if raw.get("lock_path") else f"{repo}/lock",
                   spool_path=path(raw["spool_path"]) if raw.get("spool_path") else f"{repo}/spool",
                   log_path=path(raw["log_path"]) if raw.get("log_path") else None,
                   retention_full=raw.get("retention_full"), process_max=raw.get("process_max"),
                   compress_type=raw.get("compress_type"), bin=raw.get("bin", "pgbackrest"))


@dataclass(frozen=True)
class BackupSettings:
    """`backups:` of the project file, with its defaults in one place."""

    dir: str = "backups"
    format: str = "directory"
    jobs: int = DEFAULT_BACKUP_JOBS
    compress: str | None = None
    retention: dict[str, int] = field(default_factory=dict)  # read by backup/retention.py
    engine: str = "native"  # physical backups: native | pgbackrest | auto (backup/pgbackrest.py use_pgbackrest decides)
    pgbackrest: PgBackRestSettings | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any] | None, root: Path | None = None) -> BackupSettings:
        raw = raw or {}
        pgbackrest = PgBackRestSettings.parse(raw["pgbackrest"], root or Path.cwd()) if raw.get("pgbackrest") else None
        return cls(dir=raw.get("dir", cls.dir), format=raw.get("format", cls.format), jobs=raw.get("jobs", cls.jobs),
                   compress=raw.get("compress"), retention=dict(raw.get("retention") or {}),
                   engine=raw.get("engine", cls.engine), pgbackrest=pgbackrest)


@dataclass(frozen=True)
class MigrationSettings:
    """`migrations:` of the project file: the session settings every migration runs under, its
    retries, and the thresholds of `db lint` (rows, bytes, seconds of lock: medium and high)."""

    lock_timeout: float = 5.0       # seconds a statement may queue for a lock (readers queue behind it)
    statement_timeout: float = 0.0  # seconds; 0: no limit (index builds on big tables take long)
    retries: int = 3                # more tries after a lock timeout
    retry_backoff: float = 1.0      # seconds before the first retry, doubled each time, jittered
    fail_on: str = "high"
    rows: tuple[float, float] = (10_000, 100_000)
    bytes: tuple[float, float] = (10 * 1024**2, 100 * 1024**2)
    seconds: tuple[float, float] = (1.0, 10.0)

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> MigrationSettings:
        from civicq_ops.core.units import parse_quantity

        raw = raw or {}
        lint = raw.get("lint") or {}

        def pair(key: str, unit: str, default: tuple[float, float]) -> tuple[float, float]:
            given = lint.get(key) or {}
            return (parse_quantity(given.get("medium", default[0]), unit), parse_quantity(given.get("high", default[1]), unit))

        settings = cls(lock_timeout=parse_quantity(raw.get("lock_timeout", cls.lock_timeout), "seconds"),
                       statement_timeout=parse_quantity(raw.get("statement_timeout", cls.statement_timeout), "seconds"),
                       retries=int(raw.get("retries", cls.retries)),
                       retry_backoff=parse_quantity(raw.get("retry_backoff", cls.retry_backoff), "seconds"),
                       fail_on=lint.get("fail_on", cls.fail_on), rows=pair("rows", "count", cls.rows),
                       bytes=pair("bytes", "bytes", cls.bytes), seconds=pair("seconds", "seconds", cls.seconds))
        if settings.lock_timeout < 0.001:  # PostgreSQL counts milliseconds; 0 means "wait forever"
            raise UnitError(f"lock_timeout {raw.get('lock_timeout')!r} is under 1ms, which PostgreSQL takes as no "
                            "timeout at all: readers would queue behind a migration without bound")
        for key in ("rows", "bytes", "seconds"):
            medium, high = getattr(settings, key)
            if medium > high:
                shown = [int(v) if float(v).is_integer() else v for v in (medium, high)]
                raise UnitError(f"lint.{key}: medium ({shown[0]}) is above high ({shown[1]})")
        return settings


@dataclass(frozen=True)
class NotifierSettings:
    """One entry of `notifiers:`."""

    name: str
    type: str
    url: str
    timeout: str | None = None


@dataclass
class Project:
    """A loaded, schema-valid project file. Paths are resolved against `root`; the sections are
    parsed once, into typed settings, when the file is loaded."""

    root: Path
    path: str
    data: dict[str, Any]
    document: LoadedDocument
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    state: StateSettings = field(default_factory=StateSettings)
    backups: BackupSettings = field(default_factory=BackupSettings)
    notifiers: dict[str, NotifierSettings] = field(default_factory=dict)
    migrations: MigrationSettings = field(default_factory=MigrationSettings)

    def __post_init__(self) -> None:
        try:
            self.migrations = MigrationSettings.parse(self.data.get("migrations"))
        except UnitError as e:
            line, col = self.document.position(("migrations",))
            raise ConfigError(f"{self.path}:{line}:{col}: migrations: {e}") from e
        try:
            self.state = StateSettings.parse(self.data.get("state"))
        except UnitError as e:
            line, col = self.document.position(("state",))
            raise ConfigError(f"{self.path}:{line}:{col}: state: {e}") from e
        self.backups = BackupSettings.parse(self.data.get("backups"), self.root)
        self.notifiers = {name: NotifierSettings(name=name, type=spec["type"], url=spec["url"],
                                                 timeout=spec.get("timeout"))
                          for name, spec in (self.data.get("notifiers") or {}).items()}

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def paths(self, kind: str) -> list[Path]:
        """Folders of `kind` (checks or policies) that exist: those `paths:` names (a project need
        not have policies yet); without `paths.<kind>`, ./<kind> when there is one, else the
        folder civicq-ops ships (so a pip-installed civicq-ops runs its catalogue anywhere) unless the
        project has a `paths:` section: one that lists its own checks but no policies gets no shipped
        policies, whose alerts and actions name the shipped checks."""
        declared = self.data.get("paths")
        configured = (declared or {}).get(kind)
        if configured is not None:
            return [self.root / p for p in configured if (self.root / p).exists()]
        if (self.root / kind).exists():
            return [self.root / kind]
        if declared is not None:
            return []
        shipped = shipped_dir(kind)
        return [shipped] if shipped else []

    @property
    def target_names(self) -> list[str]:
        names = list(self.data.get("targets", {}))
        if self.env.get(ENV_URL) and ENV_TARGET_NAME not in names:
            names.append(ENV_TARGET_NAME)
        return names

    @property
    def default_target_name(self) -> str:
        if self.env.get(ENV_URL):
            return ENV_TARGET_NAME
        if "default_target" in self.data:
            return self.data["default_target"]
        targets = self.data.get("targets", {})
        if len(targets) == 1:
            return next(iter(targets))
        if "local" in targets:
            return "local"
        raise ConfigError(f"{self.path}: several targets and no default_target; pass --target NAME")

    def target(self, name: str | None = None) -> Target:
        """The target called `name` (or the default), with `${ENV}` interpolated."""
        name = name or self.default_target_name
        if name == ENV_TARGET_NAME and self.env.get(ENV_URL) and ENV_TARGET_NAME not in self.data.get("targets", {}):
            url = self.env[ENV_URL]
            register_url_secrets(url)
            return Target(name=name, url=url, environment="production")
        spec = self.data.get("targets", {}).get(name)
        if spec is None:
            known = ", ".join(self.target_names) or "none"
            raise ConfigError(f"unknown target '{name}' (targets in {self.path}: {known})")
        values: dict[str, Any] = {k: self.interpolate(v, ("targets", name, k)) if isinstance(v, str) else v
                                  for k, v in spec.items()}
        if values.get("url"):
            register_url_secrets(values["url"])
        if values.get("data_dir"):
            values["data_dir"] = str((self.root / values["data_dir"]).resolve())
        values.setdefault("environment", "development" if values.get("embedded") else "production")
        return Target(name=name, **values)

    def interpolate(self, raw: str, jpath: JsonPath) -> str:
        """Replace `${NAME}` and `${NAME:-default}`; `$$` is a literal dollar."""

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            var, default = m["name"], m["default"]
            value = self.env.get(var)
            if value is None or value == "":
                if default is not None:
                    return default
                line, col = self.document.position(jpath)
                raise ConfigError(
                    f"{self.path}:{line}:{col}: environment variable {var} is not set "
                    f"(referenced by {'.'.join(map(str, jpath))})"
                )
            if _SECRET_NAME.search(var):
                register_secret(value)
            return value

        return _ENV_REF.sub(sub, raw)

    def section(self, key: str) -> dict[str, Any]:
        """A section as raw YAML, for sections without typed settings yet."""
        return self.data.get(key, {}) or {}


def find_project_file(explicit: str | None = None, env: dict[str, str] | None = None) -> Path | None:
    """`--config`, then $CIVICQ_CONFIG, then civicq-ops.yaml in this folder or a parent."""
    variables: Mapping[str, str] = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if variables.get(ENV_CONFIG):
        return Path(variables[ENV_CONFIG])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def _parsed(found: Path, root: Path) -> tuple[LoadedDocument, list]:
    """The project file's document and its schema problems. A file validated before, unchanged,
    comes from the catalogue cache (catalog/cache.py): neither parsed nor validated again."""
    cache = cache_in(root / STATE_DIR)
    source = read_source(found)  # read once: hashed, and parsed on a miss
    key = cache.key([found], {"kind": "project"}, {found: source}) if cache else None
    cached = cache.get(key) if cache is not None else None
    if cached is not None and cached.documents and str(found) in cached.documents:
        return cached.documents[str(found)], []
    from civicq_ops.core.yamlpos import load_bytes  # PyYAML: only when the file must be parsed

    doc = source if isinstance(source, LoadedDocument) else load_bytes(source, str(found))
    problems = errors_in(doc.diagnostics)
    if not problems and doc.data is not None:
        if not isinstance(doc.data, dict):
            problems = [doc.diagnostic((), "wrong-type", "the project file must be a mapping")]
        else:
            problems = validate_document(doc, "project")
            if cache is not None and not problems:
                cache.put(key, [], [doc])
    return doc, problems


def load_project(path: str | Path | None = None, env: dict[str, str] | None = None) -> Project:
    """Load and validate the project file; with none found, a default with one local target."""
    env = dict(os.environ) if env is None else env
    found = find_project_file(str(path) if path else None, env)
    if found is None:
        from civicq_ops.core.yamlpos import load_text

        doc = load_text(_DEFAULT_PROJECT, "<default civicq-ops.yaml>")
        root = Path.cwd().resolve()
        problems = errors_in(doc.diagnostics) or validate_document(doc, "project")
    else:
        if not found.is_file():
            raise ConfigError(f"{found}: no such project file")
        root = found.resolve().parent
        doc, problems = _parsed(found, root)
    if problems or doc.data is None:
        first = problems[0] if problems else None
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = f"{first.path}:{first.line}:{first.col}: {first.message}{more}" if first else f"{doc.path}: empty"
        raise ConfigError(message)
    project = Project(root=root, path=doc.path, data=doc.data, document=doc, env=env)
    default = doc.data.get("default_target")
    if default is not None and default not in doc.data.get("targets", {}):
        line, col = doc.position(("default_target",))
        raise ConfigError(f"{doc.path}:{line}:{col}: default_target '{default}' is not one of the targets")
    if project.backups.engine == "pgbackrest" and project.backups.pgbackrest is None:
        line, col = doc.position(("backups", "engine"))
        raise ConfigError(f"{doc.path}:{line}:{col}: backups.engine is pgbackrest, but backups.pgbackrest "
                          "(stanza, repo_path) is not set")
    raw_pgbackrest = (doc.data.get("backups") or {}).get("pgbackrest") or {}
    for key in ("repo_path", "lock_path", "spool_path", "log_path", "bin", "stanza"):
        value = raw_pgbackrest.get(key)
        if isinstance(value, str) and PGBACKREST_UNSAFE & set(value):
            line, col = doc.position(("backups", "pgbackrest", key))
            raise ConfigError(f"{doc.path}:{line}:{col}: backups.pgbackrest.{key} {value!r} holds a quote, $, `, \\, % "
                              "or a line break, which archive_command and restore_command cannot carry")
    return project
