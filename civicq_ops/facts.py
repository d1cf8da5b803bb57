"""The runner facts a project provides by default: connection timing and clock skew, disk usage,
and the target's backups (from the project's backups folder). Callers that run checks for a
project (the CLI, the Python API, remediation rechecks, tests) pass `default_providers(project)`
as `RunOptions.facts`; the engine itself knows no provider (engine/facts.py)."""

from __future__ import annotations

from typing import Any

from civicq_ops.config import Project
from civicq_ops.engine.facts import FactContext, FactProvider, FactUnavailable, connection_providers


def default_providers(project: Project) -> dict[str, FactProvider]:
    """Every fact the shipped checks may declare, for targets of `project`."""

    def backups(ctx: FactContext) -> dict[str, Any]:
        """This server's database's backups, as backup/inventory.py describes them (matched by system
        identifier and database, not target name); unjudgeable ones skip the backup checks."""
        # Imported when a check asks for backups: most runs do not (start-up time).
        from civicq_ops.backup.create import backups_dir
        from civicq_ops.backup.inventory import backup_facts

        facts = backup_facts(backups_dir(project), (ctx.caps.system_identifier, ctx.caps.database),
                             expect=(ctx.target.backups or {}).get("expect"))
        if not facts.get("judged", True):
            raise FactUnavailable(facts.get("unjudged_reason") or "civicq-ops cannot judge this target's backups")
        return facts

    return {**connection_providers(), "backups": backups}
