"""Every `# yaml-language-server: $schema=...` modeline in the repository points at a schema that
exists, so editors validate the shipped YAML as they open it."""

from __future__ import annotations

import re

from tests.fixtures.pg import REPO

MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.M)


def test_every_modeline_points_at_an_existing_schema():
    files = [*REPO.glob("checks/*.yaml"), *REPO.glob("policies/*.yaml"), REPO / "civicq-ops.yaml"]
    seen = 0
    for path in files:
        for target in MODELINE.findall(path.read_text()):
            seen += 1
            assert (path.parent / target).resolve().is_file(), f"{path.relative_to(REPO)}: {target} does not exist"
    assert seen >= 10
