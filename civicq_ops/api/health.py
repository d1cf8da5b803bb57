"""health_check and run_check: the catalogue's checks from Python."""

from __future__ import annotations

from typing import Any

from civicq_ops.catalog.load import project_catalog
from civicq_ops.config import load_project
from civicq_ops.core.errors import ExitCode
from civicq_ops.engine.run import RunOptions, Selection, run_checks
from civicq_ops.facts import default_providers


def run_check(check_id: str, target: str | None = None, params: dict | None = None, config: str | None = None):
    """Run one check of the catalogue (e.g. "unused-indexes", "slow-queries") and return its findings."""
    project = load_project(config)
    catalog = project_catalog(project).catalog
    result = run_checks(project, [project.target(target)], catalog, Selection(checks=[check_id]),
                        RunOptions(params={check_id: params or {}}, facts=default_providers(project)))
    return result.findings


def health_check(target: str | None = None, full: bool = False, config: str | None = None) -> dict[str, Any]:
    """The quick checks (or all): {"healthy": bool, "summary": {...}, "problems": [...]}."""
    project = load_project(config)
    catalog = project_catalog(project).catalog
    result = run_checks(project, [project.target(target)], catalog, Selection(tags=[] if full else ["quick"]),
                        RunOptions(facts=default_providers(project)))
    problems = [{"check": f.check, "status": f.status, "message": f.message or f.reason,
                 "recommendation": f.recommendation} for f in result.findings if f.status in ("warning", "critical", "error")]
    return {"healthy": result.exit_code == ExitCode.OK and not problems, "summary": result.summary.to_dict(),
            "problems": problems}
