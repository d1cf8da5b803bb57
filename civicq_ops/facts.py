"""The runner facts a project provides by default: connection timing and clock skew, disk usage,
and the target's backups (from the project's backups folder). Callers that run checks for a
project (the CLI, the Python API, remediation rechecks, tests) pass `default_providers(project)`
as `RunOptions.facts`; the engine itself knows no provider (engine/facts.py)."""

from __future__ import annotations

from typing import Any

from civicq_ops.backup.create import backups_dir
from civicq_ops.backup.inventory import backup_facts
from civicq_ops.config import Project
from civicq_ops.engine.facts import FactContext, FactProvider, connection_providers


def default_providers(project: Project) -> dict[str, FactProvider]:
    """Every fact the shipped checks may declare, for targets of `project`."""
    root = backups_dir(project)

    def backups(ctx: FactContext) -> dict[str, Any]:
        """This target's backups, as backup/inventory.py describes them."""
        return backup_facts(root, ctx.target.name)

    return {**connection_providers(), "backups": backups}
