"""The closed set of actions a policy may take. Each builds its statement from typed options with
psycopg.sql (identifiers quoted, values bound), and declares the lock it takes and whether
PostgreSQL lets it run inside a transaction block. There is no way to run free SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from civicq_ops.core.errors import InputError

# Applications a terminate/cancel never touches, whatever a policy says (plus the policy's own list).
ALWAYS_ALLOWED_APPS = ("civicq-ops",)


@dataclass(frozen=True)
class Statement:
    """One statement of an action, ready to execute, with the text shown in plans and audits."""

    query: sql.Composed | sql.SQL
    params: tuple = ()
    text: str = ""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    lock: str
    in_transaction: bool
    target_kind: str  # relation | index | matview | backend | database
    description: str


SPECS: dict[str, ActionSpec] = {s.name: s for s in [
    ActionSpec("vacuum", "SHARE UPDATE EXCLUSIVE", False, "relation", "VACUUM: dead tuples become reusable space"),
    ActionSpec("analyze", "SHARE UPDATE EXCLUSIVE", True, "relation", "ANALYZE: fresh planner statistics"),
    ActionSpec("vacuum_full", "ACCESS EXCLUSIVE", False, "relation",
               "VACUUM FULL: rewrites the table; blocks reads and writes while it runs"),
    ActionSpec("reindex", "SHARE UPDATE EXCLUSIVE", False, "index", "REINDEX CONCURRENTLY: a fresh copy, then a swap"),
    ActionSpec("drop_invalid_index", "SHARE UPDATE EXCLUSIVE", False, "index", "DROP INDEX CONCURRENTLY of an INVALID index"),
    ActionSpec("refresh_matview", "EXCLUSIVE", True, "matview",
               "REFRESH MATERIALIZED VIEW (CONCURRENTLY when a unique index allows: readers go on)"),
    ActionSpec("cancel_backend", "none", True, "backend", "pg_cancel_backend: cancel the running statement"),
    ActionSpec("terminate_backend", "none", True, "backend", "pg_terminate_backend: end the session"),
    ActionSpec("set_autovacuum", "SHARE UPDATE EXCLUSIVE", True, "relation", "ALTER TABLE ... SET/RESET autovacuum reloptions"),
    ActionSpec("backup", "ACCESS SHARE", False, "database", "civicq-ops backup create"),
]}

_RELOPTION = __import__("re").compile(r"^(toast\.)?autovacuum_[a-z_]+$")


def object_of(spec: ActionSpec, subject: dict | None, evidence: dict) -> dict:
    """What the action works on, from a finding's subject (and evidence for backends)."""
    subject = subject or {}
    if spec.target_kind == "backend":
        pid = evidence.get("head_pid") or subject.get("pid") or subject.get("blocked_pid")
        if not isinstance(pid, int):
            raise InputError(f"{spec.name} needs a finding with a pid")
        return {"pid": pid}
    if spec.target_kind == "database":
        return {}
    schema = subject.get("schemaname", "public")
    keys = {"index": ("indexname",), "matview": ("matviewname", "relname"), "relation": ("relname", "tablename")}
    for key in keys[spec.target_kind]:
        if key in subject:
            return {"schema": schema, "name": subject[key]}
    raise InputError(f"{spec.name} needs a finding whose subject names a {spec.target_kind} "
                     f"(one of {', '.join(keys[spec.target_kind])}); got {sorted(subject)}")


def object_name(obj: dict) -> str:
    if "pid" in obj:
        return f"pid {obj['pid']}"
    if not obj:
        return "database"
    return f"{obj['schema']}.{obj['name']}"


def build(action: str, obj: dict, options: dict[str, Any], server_major: int = 18, can_concurrently: bool = True,
          server_minor: int = 0) -> list[Statement]:
    """The statements of `action` on `obj`. Options are checked here, against a closed list."""
    ident = sql.Identifier
    rel: sql.Composable | None = (sql.SQL("{}.{}").format(ident(obj.get("schema", "public")), ident(obj["name"]))
                                  if "name" in obj else None)
    allowed = {"vacuum": {"analyze", "freeze", "index_cleanup"}, "analyze": set(), "vacuum_full": {"analyze"},
               "reindex": {"concurrently"}, "drop_invalid_index": set(), "refresh_matview": {"concurrently"},
               "cancel_backend": {"allowlist", "states"}, "terminate_backend": {"allowlist", "states"},
               "set_autovacuum": {"set", "reset"}, "backup": {"format", "jobs"}}[action]
    unknown = set(options) - allowed
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise InputError(f"action {action} has no option {', '.join(sorted(unknown))} (it takes: {takes})")
    whole = rel if rel is not None else sql.SQL("")  # no object: the whole database (a manual request)
    if action == "vacuum":
        flags = ["VERBOSE"]
        if options.get("analyze", True):
            flags.append("ANALYZE")
        if options.get("freeze"):
            flags.append("FREEZE")
        if "index_cleanup" in options:
            flags.append("INDEX_CLEANUP " + ("ON" if options["index_cleanup"] else "OFF"))
        return [_stmt(sql.SQL(" ").join([sql.SQL("VACUUM ({})").format(sql.SQL(", ".join(flags))), whole]))]
    if action == "analyze":
        return [_stmt(sql.SQL(" ").join([sql.SQL("ANALYZE"), whole]))]
    if action == "vacuum_full":
        full = "FULL, ANALYZE" if options.get("analyze", True) else "FULL"
        return [_stmt(sql.SQL(" ").join([sql.SQL("VACUUM ({})").format(sql.SQL(full)), whole]))]
    if action == "reindex":
        concurrently = options.get("concurrently", True)
        if concurrently and server_major == 14 and server_minor < 4:
            # 14.0 to 14.3 could corrupt indexes built concurrently (fixed in 14.4).
            raise InputError("REINDEX CONCURRENTLY is refused on PostgreSQL 14.0 to 14.3: upgrade to 14.4 or later")
        word = sql.SQL(" CONCURRENTLY") if concurrently else sql.SQL("")
        return [_stmt(sql.SQL("REINDEX INDEX{} {}").format(word, rel))]
    if action == "drop_invalid_index":
        return [_stmt(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(rel))]
    if action == "refresh_matview":
        word = sql.SQL(" CONCURRENTLY") if options.get("concurrently", True) and can_concurrently else sql.SQL("")
        return [_stmt(sql.SQL("REFRESH MATERIALIZED VIEW{} {}").format(word, rel))]
    if action in ("cancel_backend", "terminate_backend"):
        fn = sql.Identifier("pg_cancel_backend" if action == "cancel_backend" else "pg_terminate_backend")
        allow = [*ALWAYS_ALLOWED_APPS, *options.get("allowlist", [])]
        states = options.get("states", ["idle in transaction", "idle in transaction (aborted)", "active"])
        # Everything is checked again in the same statement that signals: the pid may belong to another
        # session by now. Never a superuser, never an allowlisted application, never this runner.
        query = sql.SQL(
            "SELECT {}(a.pid) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid "
            "WHERE a.pid = %s AND a.backend_type = 'client backend' AND NOT r.rolsuper "
            "AND a.pid <> pg_backend_pid() AND a.state = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM unnest(%s::text[]) p(app) WHERE a.application_name LIKE p.app || '%%')"
        ).format(fn)
        return [Statement(query, (obj["pid"], list(states), allow),
                          f"SELECT {fn.as_string(None)}({obj['pid']}) -- only if still a non-superuser client backend "
                          f"in state {'/'.join(states)}, not {', '.join(allow)}")]
    if action == "set_autovacuum":
        out = []
        settings = options.get("set") or {}
        for key in settings:
            if not _RELOPTION.match(key):
                raise InputError(f"set_autovacuum sets autovacuum_* reloptions only, not {key}")
        if settings:
            parts = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.SQL(k), sql.Literal(v)) for k, v in settings.items())
            out.append(_stmt(sql.SQL("ALTER TABLE {} SET ({})").format(rel, parts)))
        reset = options.get("reset") or ([] if settings else ["autovacuum_enabled"])
        for key in reset:
            if not _RELOPTION.match(key):
                raise InputError(f"set_autovacuum resets autovacuum_* reloptions only, not {key}")
        if reset:
            out.append(_stmt(sql.SQL("ALTER TABLE {} RESET ({})").format(rel, sql.SQL(", ").join(sql.SQL(k) for k in reset))))
        return out
    if action == "backup":
        return [Statement(sql.SQL("-- civicq-ops backup create"), (), "civicq-ops backup create "
                          f"--format {options.get('format', 'directory')}")]
    raise InputError(f"unknown action {action}")


def _stmt(query: sql.Composed | sql.SQL) -> Statement:
    return Statement(query, (), query.as_string(None).strip())
