"""Shared set-up of the remediation tests: a project on a test database, bloated tables, plans."""

from __future__ import annotations

import time

from civicq_ops.catalog.load import project_catalog
from civicq_ops.config import load_project
from tests.fixtures.pg import REPO

ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "24:00"}


def make_project(tmp_path, url: str, policies: str | None = None, environment: str = "staging",
                 extra_checks: str | None = None):
    pdir = tmp_path / "policies"
    pdir.mkdir(exist_ok=True)
    if policies is None:
        for f in (REPO / "policies").glob("*.yaml"):
            (pdir / f.name).write_text(f.read_text())
    else:
        (pdir / "p.yaml").write_text(policies)
    checks = [str(REPO / "checks")]
    if extra_checks is not None:
        (tmp_path / "checks").mkdir(exist_ok=True)
        (tmp_path / "checks" / "extra.yaml").write_text(extra_checks)
        checks.append("checks")
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\npaths: {{checks: {checks!r}, policies: [policies]}}\n"
        f"targets:\n  db: {{url: '{url}', environment: {environment}}}\n"
        f"  other: {{url: '{url}', environment: {environment}}}\ndefault_target: db\nstate: {{url: 'sqlite:///state.db'}}\n")
    project = load_project(tmp_path / "civicq-ops.yaml", env={})
    return project, project.target("db")


def plan_for(project, target, checks: list[str] | None = None, now=None):
    """The plan `civicq-ops plan` makes, through the same library function."""
    from civicq_ops.remediation.plan import plan_target
    from civicq_ops.state.store import open_store

    catalog = project_catalog(project).catalog
    made = plan_target(project, target, catalog, open_store(project), checks=checks, now=now)
    return made.plan, catalog


def bloat(db, name: str = "bloated", rows: int = 40000) -> None:
    with db.connect() as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, pad text) WITH (autovacuum_enabled = false)")
        conn.execute(f"INSERT INTO {name} SELECT g, md5(g::text) FROM generate_series(1, {rows}) g")
        conn.execute(f"DELETE FROM {name} WHERE id % 2 = 0")
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.2)
