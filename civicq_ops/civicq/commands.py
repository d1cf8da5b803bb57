"""The destructive `db` commands with their production guards: what `civicq-ops db rollback/seed`
run. The migration and seed functions below them stay plain (tests and fixtures use them on
throwaway databases); the commands refuse what must never happen to production by accident.

- `rollback` on production needs the target's name as confirmation and takes a safety backup first.
- `seed` refuses production outright (development data does not belong there); `reset` refuses it
  in civicq.seeding itself, embedded or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from civicq_ops.backup.create import BackupOptions, create_backup
from civicq_ops.civicq import migrations, seeding
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import InputError, PlanRefused


def is_production(target: Target) -> bool:
    return target.environment == "production"


@dataclass
class RollbackResult:
    before: str | None
    after: str | None
    safety_backup: str | None = None


def rollback(project: Project, target: Target, steps: int = 1, *, confirmed: str | None = None,
             progress=None) -> RollbackResult:
    """Undo `steps` migrations; on production only when `confirmed` names the target, after a backup."""
    backup_id = None
    if is_production(target):
        if confirmed != target.name:
            raise PlanRefused(f"rolling back production target '{target.name}' drops CivicQ tables: "
                              f"confirm with --confirm {target.name}")
        backup_id = create_backup(project, target, BackupOptions(), progress=progress).id
    result = migrations.rollback(project, target, steps)
    return RollbackResult(result.before, result.after, backup_id)


def seed(project: Project, target: Target, scale: int = 0) -> seeding.SeedResult:
    """Load the development data, never into production."""
    if is_production(target):
        raise InputError(f"refusing to seed target '{target.name}' (environment: production): development data "
                         f"does not belong in production")
    return seeding.seed(project, target, scale)
