"""`civicq-ops diff`: a fixture repository with two commits; the catalogue differences are exactly
those of the change, and with a target the findings and plan under BASE and HEAD come from one run
of the queries (counted by the engine and by pg_stat_statements on the server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from civicq_ops.config import load_project
from civicq_ops.core.errors import InputError
from civicq_ops.report.pr_diff import diff, render

CHECKS = """version: 1
checks:
  - id: rows-high
    title: Too many rows
    category: size
    query: SELECT 'public' AS schemaname, name AS relname, n FROM counts
    subject: [schemaname, relname]
    value: n
    unit: count
    thresholds: {{warning: {{gt: 5}}, critical: {{gt: {critical}}}}}
    recommendation: ANALYZE {{{{ subject.relname }}}}
    remediation: analyze
    object: {{kind: table, schema: schemaname, name: relname}}
"""
POLICIES = """version: 1
policies:
  - id: analyze-rows-high
    when: {check: rows-high, level: critical}
    action: analyze
"""
ALERT = """alerts:
  - name: RowsHigh
    when: {check: rows-high, level: critical}
"""
PROJECT = """version: 1
paths: {checks: [checks], policies: [policies]}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                          check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Commit 1: critical above 10. Commit 2: critical above 5, and an alert rule added."""
    root = tmp_path / "repo"
    (root / "checks").mkdir(parents=True)
    (root / "policies").mkdir()
    (root / "civicq-ops.yaml").write_text(PROJECT)
    (root / "checks" / "rows.yaml").write_text(CHECKS.format(critical=10))
    (root / "policies" / "policies.yaml").write_text(POLICIES)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    (root / "checks" / "rows.yaml").write_text(CHECKS.format(critical=5))
    (root / "policies" / "policies.yaml").write_text(POLICIES + ALERT)
    git(root, "commit", "-qam", "head")
    return root


def test_the_differences_are_exactly_those_of_the_change(repo):
    project = load_project(repo / "civicq-ops.yaml", env={})
    result = diff(project, "HEAD~1")
    assert [c.sentence() for c in result.changes] == [
        "check rows-high changed: thresholds.critical: gt 10 -> gt 5",
        "alert RowsHigh added: on rows-high (critical)",
    ]
    assert result.changes[0].where == "checks/rows.yaml:3" or result.changes[0].where.endswith("checks/rows.yaml:3")
    assert diff(project, "HEAD").changes == []  # the work tree is HEAD


def test_the_work_tree_is_never_touched(repo):
    """Only the tool's own state folder (.civicq-ops/: the validated-catalogue cache, the state store,
    which a project ignores in git as this repository does) may appear."""
    def status() -> list[str]:
        return [line for line in git(repo, "status", "--porcelain", "--ignored").splitlines()
                if not line.endswith(" .civicq-ops/")]

    before = status()
    diff(load_project(repo / "civicq-ops.yaml", env={}), "HEAD~1")
    assert status() == before


def test_two_folders_compare_without_git(tmp_path, repo):
    base = tmp_path / "base"
    (base / "checks").mkdir(parents=True)
    (base / "checks" / "rows.yaml").write_text(CHECKS.format(critical=10))
    project = load_project(repo / "civicq-ops.yaml", env={})
    result = diff(project, str(base / "checks"), str(repo / "checks"))
    assert [c.sentence() for c in result.changes] == ["check rows-high changed: thresholds.critical: gt 10 -> gt 5"]


def test_an_unknown_ref_is_invalid_input(repo):
    with pytest.raises(InputError, match="unknown git ref 'nosuch'"):
        diff(load_project(repo / "civicq-ops.yaml", env={}), "nosuch")


def test_a_base_without_the_catalogue_adds_everything(repo):
    first = git(repo, "rev-list", "--max-parents=0", "HEAD").strip()
    (repo / "extra.txt").write_text("x")
    git(repo, "add", "extra.txt")
    git(repo, "commit", "-qm", "x")
    git(repo, "checkout", "-q", "--orphan", "empty")
    git(repo, "rm", "-rqf", ".")
    git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
    empty = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "-f", first)
    result = diff(load_project(repo / "civicq-ops.yaml", env={}), empty)
    assert [(c.kind, c.key, c.change) for c in result.changes] == [
        ("check", "rows-high", "added"), ("policy", "analyze-rows-high", "added")]


def _calls(conn) -> int:
    row = conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
                       "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                       "AND query LIKE '%AS relname, n FROM counts%'").fetchone()
    return int(row[0])


def test_with_a_target_findings_and_plan_come_from_one_run_of_the_queries(repo, db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE counts (name text, n int)")
        conn.execute("INSERT INTO counts VALUES ('a', 3), ('b', 7), ('c', 12)")
        for name in "abc":
            conn.execute(f"CREATE TABLE {name} (x int)")
        before = _calls(conn)
    project = load_project(repo / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": db.url})
    result = diff(project, "HEAD~1", targets=[project.target()])
    [on] = result.targets
    assert [f.sentence() for f in on.findings] == ["rows-high public.b: warning -> critical (value 7)"]
    assert [p.sentence() for p in on.plan] == ['adds analyze of public.b [policy analyze-rows-high]: ANALYZE "public"."b"']
    assert on.headline() == "turns 1 finding critical, adds analyze of public.b to the plan"
    assert (on.queries_sent, on.queries_reused) == (1, 1)
    with db.connect() as conn:
        assert _calls(conn) - before == 1  # the server saw one run's worth, not two
    markdown = render(result, "markdown")
    assert "| `rows-high` | public.b | warning | **critical** |" in markdown
    assert json.loads(render(result, "json"))["targets"][0]["headline"] == on.headline()


def test_cli_diff_prints_markdown_for_a_pull_request_comment(repo, cli):
    result = cli("diff", "HEAD~1", "--format", "markdown", cwd=repo)
    assert result.exit_code == 0, result.output
    assert "| check | `rows-high` | changed | thresholds.critical: gt 10 -> gt 5 |" in result.stdout
    bad = cli("diff", "HEAD~1", "--format", "html", cwd=repo)
    assert bad.exit_code == 2 and "--format must be one of text, markdown, json" in bad.stderr


def test_a_query_the_change_edits_runs_once_per_version(repo, db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE counts (name text, n int)")
        conn.execute("INSERT INTO counts VALUES ('b', 7)")
    rows = repo / "checks" / "rows.yaml"
    rows.write_text(rows.read_text().replace("n FROM counts", "n FROM counts WHERE n > 6"))
    project = load_project(repo / "civicq-ops.yaml", env={"CIVICQ_DATABASE_URL": db.url})
    [on] = diff(project, "HEAD", targets=[project.target()]).targets
    assert (on.queries_sent, on.queries_reused) == (2, 0)
    assert on.findings == [] and on.headline() == "changes no finding and no planned action"
