"""The closed set of actions a policy may take: a table of specs, one builder each.

Each builder makes its statements from typed options with psycopg.sql (identifiers quoted, values
bound) and each spec declares the lock it takes, whether PostgreSQL lets it run inside a
transaction block, which kinds of object it works on, and its options (the JSON Schema in
policies.schema.json, `$defs/options/<action>`: the same declaration `validate` enforces). There is
no way to run free SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from civicq_ops.catalog.structure import load_schema
from civicq_ops.core.errors import InputError

# Applications a terminate/cancel never touches, whatever a policy says (plus the policy's own list).
ALWAYS_ALLOWED_APPS = ("civicq-ops",)
DEFAULT_STATES = ("idle in transaction", "idle in transaction (aborted)", "active")


@dataclass(frozen=True)
class Statement:
    """One statement of an action, ready to execute, with the text shown in plans and audits."""

    query: sql.Composable
    params: tuple = ()
    text: str = ""


@dataclass(frozen=True)
class Server:
    """What a builder needs to know about the server and the object (asked of the database by the planner)."""

    major: int = 18
    minor: int = 0
    can_refresh_concurrently: bool = True


Builder = Callable[[dict, dict, Server], list[Statement]]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    lock: str
    in_transaction: bool
    kinds: tuple[str, ...]  # the object kinds it works on: table | index | matview | backend | database
    description: str
    builder: Builder
    concurrent_build: bool = False  # waits for every older snapshot (REINDEX/CREATE INDEX CONCURRENTLY)


def _rel(obj: dict) -> sql.Composable:
    if "name" not in obj or "schema" not in obj:
        return sql.SQL("")  # the whole database (a database object, or a manual request)
    return sql.SQL("{}.{}").format(sql.Identifier(obj["schema"]), sql.Identifier(obj["name"]))


def _stmt(query: sql.Composable) -> Statement:
    return Statement(query, (), query.as_string(None).strip())


def _join(*parts: sql.Composable) -> sql.Composable:
    return sql.SQL(" ").join([p for p in parts if p.as_string(None)])


def _vacuum(obj: dict, options: dict, server: Server) -> list[Statement]:
    flags = ["VERBOSE"]
    if options.get("analyze", True):
        flags.append("ANALYZE")
    if options.get("freeze"):
        flags.append("FREEZE")
    if "index_cleanup" in options:
        flags.append("INDEX_CLEANUP " + ("ON" if options["index_cleanup"] else "OFF"))
    return [_stmt(_join(sql.SQL("VACUUM ({})").format(sql.SQL(", ".join(flags))), _rel(obj)))]


def _analyze(obj: dict, options: dict, server: Server) -> list[Statement]:
    return [_stmt(_join(sql.SQL("ANALYZE"), _rel(obj)))]


def _vacuum_full(obj: dict, options: dict, server: Server) -> list[Statement]:
    if "name" not in obj:
        raise InputError("VACUUM FULL of a whole database is refused: name a table with --table")
    flags = "FULL, ANALYZE" if options.get("analyze", True) else "FULL"
    return [_stmt(_join(sql.SQL("VACUUM ({})").format(sql.SQL(flags)), _rel(obj)))]


def _reindex(obj: dict, options: dict, server: Server) -> list[Statement]:
    concurrently = options.get("concurrently", True)
    if concurrently and server.major == 14 and server.minor < 4:
        # 14.0 to 14.3 could corrupt indexes built concurrently (fixed in 14.4).
        raise InputError("REINDEX CONCURRENTLY is refused on PostgreSQL 14.0 to 14.3: upgrade to 14.4 or later")
    word = sql.SQL(" CONCURRENTLY") if concurrently else sql.SQL("")
    return [_stmt(sql.SQL("REINDEX INDEX{} {}").format(word, _rel(obj)))]


def _drop_invalid_index(obj: dict, options: dict, server: Server) -> list[Statement]:
    return [_stmt(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(_rel(obj)))]


def _refresh_matview(obj: dict, options: dict, server: Server) -> list[Statement]:
    concurrently = options.get("concurrently", True) and server.can_refresh_concurrently
    word = sql.SQL(" CONCURRENTLY") if concurrently else sql.SQL("")
    return [_stmt(sql.SQL("REFRESH MATERIALIZED VIEW{} {}").format(word, _rel(obj)))]


def _signal(function: str) -> Builder:
    def build(obj: dict, options: dict, server: Server) -> list[Statement]:
        fn = sql.Identifier(function)
        allow = [*ALWAYS_ALLOWED_APPS, *options.get("allowlist", [])]
        states = list(options.get("states", DEFAULT_STATES))
        # Everything is checked again in the same statement that signals: the pid may belong to another
        # session by now. Never a superuser, never an allowlisted application, never this runner.
        query = sql.SQL(
            "SELECT {}(a.pid) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid "
            "WHERE a.pid = %s AND a.backend_type = 'client backend' AND NOT r.rolsuper "
            "AND a.pid <> pg_backend_pid() AND a.state = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM unnest(%s::text[]) p(app) WHERE a.application_name LIKE p.app || '%%')"
        ).format(fn)
        return [Statement(query, (obj["pid"], states, allow),
                          f"SELECT {function}({obj['pid']}) -- only if still a non-superuser client backend "
                          f"in state {'/'.join(states)}, not {', '.join(allow)}")]
    return build


def _set_autovacuum(obj: dict, options: dict, server: Server) -> list[Statement]:
    out = []
    settings = options.get("set") or {}
    if settings:
        parts = sql.SQL(", ").join(sql.SQL("{} = {}").format(_reloption(k), sql.Literal(v)) for k, v in settings.items())
        out.append(_stmt(sql.SQL("ALTER TABLE {} SET ({})").format(_rel(obj), parts)))
    reset = options.get("reset") or ([] if settings else ["autovacuum_enabled"])
    if reset:
        keys = sql.SQL(", ").join(_reloption(k) for k in reset)
        out.append(_stmt(sql.SQL("ALTER TABLE {} RESET ({})").format(_rel(obj), keys)))
    return out


def _reloption(key: str) -> sql.SQL:
    """A reloption name from the closed list of the schema (checked by check_options before this)."""
    if key not in _RELOPTIONS:
        raise InputError(f"set_autovacuum changes autovacuum reloptions only, not {key!r}")
    return sql.SQL(key)


def _backup(obj: dict, options: dict, server: Server) -> list[Statement]:
    return [Statement(sql.SQL("-- civicq-ops backup create"), (),
                      f"civicq-ops backup create --format {options.get('format', 'directory')}")]


SPECS: dict[str, ActionSpec] = {s.name: s for s in [
    ActionSpec("vacuum", "SHARE UPDATE EXCLUSIVE", False, ("table", "matview", "database"),
               "VACUUM: dead tuples become reusable space", _vacuum),
    ActionSpec("analyze", "SHARE UPDATE EXCLUSIVE", True, ("table", "matview", "database"),
               "ANALYZE: fresh planner statistics", _analyze),
    ActionSpec("vacuum_full", "ACCESS EXCLUSIVE", False, ("table", "matview"),
               "VACUUM FULL: rewrites the table; blocks reads and writes while it runs", _vacuum_full),
    ActionSpec("reindex", "SHARE UPDATE EXCLUSIVE", False, ("index",),
               "REINDEX CONCURRENTLY: a fresh copy, then a swap", _reindex, concurrent_build=True),
    ActionSpec("drop_invalid_index", "SHARE UPDATE EXCLUSIVE", False, ("index",),
               "DROP INDEX CONCURRENTLY of an INVALID index", _drop_invalid_index),
    ActionSpec("refresh_matview", "EXCLUSIVE", True, ("matview",),
               "REFRESH MATERIALIZED VIEW (CONCURRENTLY when a unique index allows: readers go on)", _refresh_matview),
    ActionSpec("cancel_backend", "none", True, ("backend",), "pg_cancel_backend: cancel the running statement",
               _signal("pg_cancel_backend")),
    ActionSpec("terminate_backend", "none", True, ("backend",), "pg_terminate_backend: end the session",
               _signal("pg_terminate_backend")),
    ActionSpec("set_autovacuum", "SHARE UPDATE EXCLUSIVE", True, ("table", "matview"),
               "ALTER TABLE ... SET/RESET autovacuum reloptions", _set_autovacuum),
    ActionSpec("backup", "ACCESS SHARE", False, ("database",), "civicq-ops backup create", _backup),
]}

_RELOPTIONS = frozenset(load_schema("policies")["$defs"]["reloption"]["enum"])


def option_errors(action: str, options: Any) -> list[str]:
    """What is wrong with `options` for `action`, against the declared option schema (path: message)."""
    import jsonschema

    schema = load_schema("policies")
    resolver_schema = {**schema["$defs"]["options"][action], "$defs": schema["$defs"]}
    # The option schemas refer to #/$defs/...: validate with the whole $defs beside them.
    validator = jsonschema.Draft202012Validator(resolver_schema)
    out = []
    for err in sorted(validator.iter_errors(options), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = ", ".join(sorted(err.schema.get("properties", {}))) or "none"
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            out.append(f"action {action} has no option {', '.join(extra)}" + (f" in {where}" if where else "")
                       + f" (it takes: {allowed})")
        else:
            out.append(f"{action} option {where or 'options'}: {err.message}")
    return out


def check_options(action: str, options: Any) -> None:
    if action not in SPECS:
        raise InputError(f"unknown action {action} (one of {', '.join(SPECS)})")
    problems = option_errors(action, options)
    if problems:
        raise InputError(problems[0])


def object_name(obj: dict) -> str:
    if "pid" in obj:
        return f"pid {obj['pid']}"
    if "schema" in obj:
        return f"{obj['schema']}.{obj['name']}"
    if obj.get("database"):
        return f"database {obj['database']}"
    return "database"


def build(action: str, obj: dict, options: dict[str, Any], server_major: int = 18, can_concurrently: bool = True,
          server_minor: int = 0) -> list[Statement]:
    """The statements of `action` on `obj`. Options are checked here against the declared schema."""
    check_options(action, options)
    return SPECS[action].builder(obj, options, Server(server_major, server_minor, can_concurrently))
