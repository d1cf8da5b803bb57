"""The capability probe: one query per target and run, and the `requires` it answers.

Like psycopg's capabilities, every unmet requirement comes with a sentence naming what is missing
and what the target has, which becomes a finding's `skipped` reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from civicq_ops.target.binaries import Version

NO_BACKUP = {"verified_count": 0, "age_s": None, "size_bytes": None, "previous_size_bytes": None, "latest_id": None}

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
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
       (SELECT coalesce(json_object_agg(n, has_table_privilege(to_regclass(n), 'SELECT')), '{}'::json)
          FROM unnest(%(relations)s::text[]) AS n WHERE to_regclass(n) IS NOT NULL),
       now(),
       pg_postmaster_start_time()
"""

# pg_control_system() and data_directory are not for every role: asked only where permitted, since a
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


@dataclass
class Capabilities:
    """What a target is and allows, as far as checks need to know."""

    name: str = "offline"
    environment: str = "development"
    version: Version = field(default_factory=lambda: Version(18, 0))
    version_text: str = "18.0"
    role: str = "primary"
    database: str = "civicq"
    user: str = "civicq"
    superuser: bool = True
    extensions: dict[str, str] = field(default_factory=dict)
    preload: list[str] = field(default_factory=list)
    roles: set[str] = field(default_factory=set)
    relations: set[str] | None = None  # None: not probed, every relation counts as present
    readable: set[str] | None = None  # relations this role may SELECT from
    stats_reset: datetime | None = None
    system_identifier: str | None = None
    local: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    probed_at: datetime | None = None
    expected_role: str = "any"
    connect_ms: float | None = None
    clock_skew_s: float | None = None
    data_directory: str | None = None
    disk_used_ratio: float | None = None
    disk_free_bytes: int | None = None
    postmaster_start: datetime | None = None
    backup: dict = field(default_factory=lambda: dict(NO_BACKUP))  # this target's backups, from the runner

    def to_context(self) -> dict:
        """What templates see as `target`."""
        return {"name": self.name, "environment": self.environment, "server_version": self.version_text,
                "server_version_num": self.version.major * 10000 + self.version.minor, "major": self.version.major,
                "role": self.role, "database": self.database, "extensions": dict(self.extensions),
                "superuser": self.superuser, "local": self.local, "expected_role": self.expected_role,
                "connect_ms": self.connect_ms, "clock_skew_s": self.clock_skew_s,
                "disk_used_ratio": self.disk_used_ratio, "disk_free_bytes": self.disk_free_bytes,
                "data_directory": self.data_directory, "backup": dict(self.backup)}

    def has_privilege(self, role: str) -> bool:
        return self.superuser or role in self.roles

    @classmethod
    def from_test_spec(cls, spec: dict | None) -> Capabilities:
        """Capabilities declared by an offline test case's `target`."""
        spec = spec or {}
        text = str(spec.get("server_version", "18.0"))
        caps = cls(name=spec.get("name", "offline"), environment=spec.get("environment", "development"),
                   version=Version.parse(text), version_text=text, role=spec.get("role", "primary"),
                   superuser=spec.get("superuser", True), local=spec.get("local", False),
                   settings={k: str(v) for k, v in (spec.get("settings") or {}).items()})
        caps.extensions = {e: "test" for e in spec.get("extensions", [])}
        caps.roles = set(spec.get("privileges", []))
        if "privileges" in spec and "superuser" not in spec:
            caps.superuser = False
        if "relations" in spec:
            caps.relations = set(spec["relations"])
        caps.expected_role = spec.get("expected_role", "any")
        caps.backup = {**NO_BACKUP, **(spec.get("backup") or {})}
        return caps


def probe(conn, *, name: str, environment: str, local: bool, relations: list[str],
          settings: list[str] | None = None, expected_role: str = "any") -> Capabilities:
    """Ask the server everything `requires` may need, in one round trip (plus named settings)."""
    import time

    with conn.transaction():
        sent = time.time()
        row = conn.execute(_PROBE, {"roles": list(PREDEFINED_ROLES), "relations": sorted(set(relations))}).fetchone()
        received = time.time()
        control_allowed, settings_allowed = conn.execute(_PRIVILEGED).fetchone()
        sysid = system_identifier(conn, control_allowed)
        data_directory = preload = None
        if settings_allowed:
            data_directory, preload = conn.execute(
                "SELECT current_setting('data_directory'), current_setting('shared_preload_libraries')").fetchone()
        values = {}
        for setting in settings or []:
            got = conn.execute("SELECT current_setting(%s, true)", (setting,)).fetchone()[0]
            if got is not None:
                values[setting] = got
    num, text, in_recovery, database, user, superuser, exts, roles, stats_reset, rels, now, started = row
    # The server's now() was read between sent and received; the midpoint bounds the error by half the RTT.
    skew = now.timestamp() - (sent + received) / 2
    caps = Capabilities(
        name=name, environment=environment, version=Version(num // 10000, num % 10000), version_text=text.split()[0],
        role="standby" if in_recovery else "primary", database=database, user=user, superuser=bool(superuser),
        extensions=dict(exts), preload=[p.strip() for p in (preload or "").split(",") if p.strip()], roles=set(roles),
        relations=set(rels), readable={r for r, ok in rels.items() if ok}, stats_reset=stats_reset,
        system_identifier=sysid, local=local, settings=values,
        probed_at=now, expected_role=expected_role, clock_skew_s=round(skew, 3), data_directory=data_directory,
        postmaster_start=started,
    )
    if local and data_directory:
        _disk_usage(caps, data_directory)
    return caps


def _disk_usage(caps: Capabilities, data_directory: str) -> None:
    """Only meaningful when the server's files are on this machine (an embedded target)."""
    import shutil

    try:
        usage = shutil.disk_usage(data_directory)
    except OSError:
        return
    caps.disk_used_ratio = round(usage.used / usage.total, 4) if usage.total else None
    caps.disk_free_bytes = usage.free


_VERSION_CLAUSE = re.compile(r"^\s*(>=|<=|>|<|==|=)?\s*(\d+)(?:\.(\d+))?\s*$")


def version_matches(spec: str, version: Version) -> bool:
    """'>=13', '<17', '>=13,<17', '14.4'; a bare major compares majors only."""
    for clause in spec.split(","):
        m = _VERSION_CLAUSE.match(clause)
        if not m:
            raise ValueError(f"bad version requirement {clause!r}")
        op, major, minor = m.group(1) or "==", int(m.group(2)), m.group(3)
        have = (version.major, version.minor) if minor is not None else (version.major,)
        want = (major, int(minor)) if minor is not None else (major,)
        ok = {">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want,
              "==": have == want, "=": have == want}[op]
        if not ok:
            return False
    return True


def unmet_requirement(requires: dict, caps: Capabilities) -> str | None:
    """Why `caps` does not satisfy `requires`, or None when it does."""
    spec = requires.get("server_version")
    if spec and not version_matches(spec, caps.version):
        return f"needs PostgreSQL {spec} (the server is {caps.version_text})"
    role = requires.get("role", "any")
    if role != "any" and role != caps.role:
        return f"needs a {role} (target '{caps.name}' is a {caps.role})"
    for ext in requires.get("extensions", []):
        if ext not in caps.extensions:
            hint = ""
            if ext == "pg_stat_statements" and ext not in caps.preload:
                hint = "; it must also be in shared_preload_libraries"
            return f"needs extension {ext} (not installed in database {caps.database}: CREATE EXTENSION {ext}{hint})"
    for priv in requires.get("privileges", []):
        if not caps.has_privilege(priv):
            return f"needs privilege {priv} (role {caps.user} is not a member: GRANT {priv} TO {caps.user})"
    if caps.relations is not None:
        for rel in requires.get("relations", []):
            if rel not in caps.relations:
                return f"needs relation {rel} (not found in database {caps.database})"
            if caps.readable is not None and rel not in caps.readable:
                return f"needs SELECT on {rel} (role {caps.user} may not read it: GRANT SELECT ON {rel} TO {caps.user})"
    for name, want in (requires.get("settings") or {}).items():
        have = caps.settings.get(name)
        if have is None or str(have).lower() != str(want).lower():
            return f"needs setting {name} = {want} (it is {have if have is not None else 'unset'})"
    if requires.get("local") and not caps.local:
        return "needs the database to run on this machine (the target is remote)"
    return None
