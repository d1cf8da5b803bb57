"""What a target is and allows, and the sentence saying why a check's `requires` is not met.

The probe (postgres/probe.py) fills it; the catalogue, the engine and offline tests read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from civicq_ops.core.version import Version, version_matches

NO_BACKUP = {"verified_count": 0, "age_s": None, "size_bytes": None, "previous_size_bytes": None, "latest_id": None,
             "judged": True, "unjudged_reason": None}


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
    if requires.get("backup_evidence") and not caps.backup.get("judged", True):
        return caps.backup.get("unjudged_reason") or "civicq-ops cannot judge this target's backups"
    if requires.get("local") and not caps.local:
        return "needs the database to run on this machine (the target is remote)"
    return None
