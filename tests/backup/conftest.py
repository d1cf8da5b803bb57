"""A project whose targets point at the test's databases, for the backup tests."""

from __future__ import annotations

import pytest

from civicq_ops.config import load_project
from tests.fixtures.pg import REPO


@pytest.fixture
def backup_project(tmp_path, civicq_db):
    """write(targets_yaml=None, retention=None) -> Project; target `src` is the seeded database."""

    def write(extra_targets: str = "", retention: str = "{keep_last: 1, keep_daily: 0, keep_weekly: 0, keep_monthly: 0}",
              src_extra: str = ", environment: development"):
        (tmp_path / "civicq-ops.yaml").write_text(
            f"version: 1\npaths: {{checks: ['{REPO / 'checks'}']}}\n"
            f"targets:\n  src: {{url: '{civicq_db.url}'{src_extra}}}\n{extra_targets}"
            f"default_target: src\nbackups: {{dir: backups, jobs: 2, retention: {retention}}}\n")
        return load_project(tmp_path / "civicq-ops.yaml", env={})

    return write
