"""The capability probe: one query per target and run, and the `requires` it answers.

Like psycopg's capabilities, every unmet requirement comes with a sentence naming what is missing
and what the target has, which becomes a finding's `skipped` reason.
"""

from __future__ import annotations

from civicq_ops.core.capabilities import Capabilities
from civicq_ops.core.version import Version

PREDEFINED_ROLES = ("pg_monitor", "pg_read_all_stats", "pg_read_all_settings", "pg_signal_backend",
                    "pg_maintain", "pg_read_server_files", "pg_stat_scan_tables")

_PROBE = """
SELECT current_setting('server_version_num')::int,
       current_setting('server_version'),
       pg_is_in_recovery(),
       current_database(),
       current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       (SELECT coalesce(json_object_agg(extname, extversion), '{}'::json) FROM pg_extension),
       (SELECT coalesce(json_agg(r.rolname), '[]'::json) FROM pg_roles r
         WHERE r.rolname = ANY(%(roles)s) AND pg_has_role(current_user, r.oid, 'USAGE')),
       (SELECT coalesce(json_object_agg(n, has_table_privilege(to_regclass(n), 'SELECT')), '{}'::json)
          FROM unnest(%(relations)s::text[]) AS n WHERE to_regclass(n) IS NOT NULL)
"""

# pg_control_system() and shared_preload_libraries are not for every role: asked only where permitted, since a
# permission check fails the whole statement even inside a CASE branch that is never taken.
_PRIVILEGED = """
SELECT has_function_privilege('pg_control_system()', 'EXECUTE'),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
         OR pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')
"""


def system_identifier(conn, allowed: bool | None = None) -> str | None:
    """The cluster's system identifier, or None where this role may not read it."""
    if allowed is None:
        allowed = conn.execute(_PRIVILEGED).fetchone()[0]
    if not allowed:
        return None
    return conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]


def probe(conn, *, name: str, environment: str, local: bool, relations: list[str],
          settings: list[str] | None = None, expected_role: str = "any") -> Capabilities:
    """Ask the server everything `requires` may need, in one round trip (plus named settings)."""
    with conn.transaction():
        row = conn.execute(_PROBE, {"roles": list(PREDEFINED_ROLES), "relations": sorted(set(relations))}).fetchone()
        control_allowed, settings_allowed = conn.execute(_PRIVILEGED).fetchone()
        sysid = system_identifier(conn, control_allowed)
        preload = None
        if settings_allowed:
            preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
        values = {}
        for setting in settings or []:
            got = conn.execute("SELECT current_setting(%s, true)", (setting,)).fetchone()[0]
            if got is not None:
                values[setting] = got
    num, text, in_recovery, database, user, superuser, exts, roles, rels = row
    return Capabilities(
        name=name, environment=environment, version=Version(num // 10000, num % 10000), version_text=text.split()[0],
        role="standby" if in_recovery else "primary", database=database, user=user, superuser=bool(superuser),
        extensions=dict(exts), preload=[p.strip() for p in (preload or "").split(",") if p.strip()], roles=set(roles),
        relations=set(rels), readable={r for r, ok in rels.items() if ok},
        system_identifier=sysid, local=local, settings=values, expected_role=expected_role,
    )
