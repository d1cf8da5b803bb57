"""`db lint` (issue 16.1): squawk's rules over a migration's SQL, each finding at its revision file
and line with the lock it takes and the live size of the table, the risk weighed by that size; a
type change a view still uses is high on any size; offline it says what it could not know."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from civicq_ops.civicq.migration_lint import lint
from civicq_ops.config import load_project

REPO = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = REPO / "tests" / "fixtures" / "sarif-schema-2.1.0.json"

RISKY = '''"""lint demo: four risky changes in one revision

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lint_demo", sa.Column("token", sa.Uuid(), server_default=sa.text("gen_random_uuid()")))
    op.create_index("lint_demo_weight_idx", "lint_demo", ["weight"])
    op.execute("DROP VIEW lint_demo_heavy")
    op.alter_column("lint_demo", "weight", type_=sa.BigInteger(), existing_type=sa.Integer())
    op.execute("CREATE VIEW lint_demo_heavy AS SELECT id, weight FROM lint_demo WHERE weight > 50")
    op.alter_column("lint_demo", "note", nullable=False, existing_type=sa.Text())


def downgrade() -> None:
    pass
'''


def line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


LINE = {"token": line_of(RISKY, '"token"'), "index": line_of(RISKY, "create_index"),
        "type": line_of(RISKY, "type_="), "not-null": line_of(RISKY, "nullable=False")}

TYPE_ONLY = RISKY.split("def upgrade")[0] + '''def upgrade() -> None:
    op.alter_column("lint_demo", "weight", type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    pass
'''


def make_project(tmp_path: Path, url: str | None, migration: str = RISKY, settings: str = "") -> Path:
    """A project folder with the shipped migrations plus one test revision 0005 (never shipped)."""
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(REPO / "migrations" / name, tmp_path / "migrations" / name)
    for path in (REPO / "migrations" / "versions").glob("000*.py"):
        shutil.copy(path, versions / path.name)
    shutil.copytree(REPO / "sql", tmp_path / "sql")
    (versions / "0005_lint_demo.py").write_text(migration)
    target = f"targets: {{t: {{url: '{url}', environment: staging}}}}\ndefault_target: t\n" if url else ""
    (tmp_path / "civicq-ops.yaml").write_text(f"version: 1\n{target}{settings}")
    return tmp_path / "civicq-ops.yaml"


def seed_demo(database, rows: int) -> None:
    with database.connect() as conn:
        conn.execute("CREATE TABLE lint_demo (id bigint PRIMARY KEY, weight int, note text)")
        conn.execute("INSERT INTO lint_demo SELECT g, g %% 100, 'n' || g FROM generate_series(1, %s) g", (rows,))
        conn.execute("CREATE VIEW lint_demo_heavy AS SELECT id, weight FROM lint_demo WHERE weight > 50")
        conn.execute("ANALYZE lint_demo")


def by_rule(result, rule: str):
    found = [f for f in result.findings if f.rule == rule]
    assert found, f"no {rule} finding in {[f.rule for f in result.findings]}"
    return found[0]


def context_of(result, finding):
    return next(c for c in result.statements if c.index == finding.statement)


EXPECTED = {  # squawk rule -> (line in 0005, lock, work)
    "adding-field-with-default": ("token", "ACCESS EXCLUSIVE", "rewrite"),
    "require-concurrent-index-creation": ("index", "SHARE", "index build"),
    "changing-column-type": ("type", "ACCESS EXCLUSIVE", "rewrite"),
    "adding-not-nullable-field": ("not-null", "ACCESS EXCLUSIVE", "scan"),
}


def test_each_risky_change_is_flagged_at_its_line_with_its_lock_and_live_size_and_a_small_table_is_low_risk(
        tmp_path, civicq_db):
    seed_demo(civicq_db, 200)
    project = load_project(make_project(tmp_path, civicq_db.url))
    result = lint(project, project.target())
    assert result.online and result.revisions == ["0005"]
    for rule, (where, lock, work) in EXPECTED.items():
        f = by_rule(result, rule)
        assert (Path(f.path).name, f.line) == ("0005_lint_demo.py", LINE[where]), rule
        ctx = context_of(result, f)
        assert (ctx.lock, ctx.work, ctx.rows) == (lock, work, 200), rule
        assert ctx.total_bytes > 0 and ctx.estimate_s is not None, rule
        assert f.risk == "low", (rule, ctx.reasons)
    type_change = context_of(result, by_rule(result, "changing-column-type"))
    assert type_change.breaks == ["lint_demo_heavy (view)"] and type_change.breaks_handled
    assert result.verdict == "low" and not result.failed


def test_the_same_migration_on_a_large_table_is_high_risk_and_fails_the_gate(tmp_path, civicq_db, cli):
    seed_demo(civicq_db, 150_000)
    cfg = make_project(tmp_path, civicq_db.url)
    result = cli("--config", str(cfg), "db", "lint", "-f", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "high" and doc["fails_gate"]
    risks = {f["rule"]: f["risk"] for f in doc["findings"]}
    assert all(risks[rule] == "high" for rule in EXPECTED), risks
    rewrite = next(s for s in doc["statements"] if s["kind"].startswith("ADD COLUMN with a volatile default"))
    assert rewrite["rows"] >= 100_000 and rewrite["rewrites"] and rewrite["file"].endswith("0005_lint_demo.py")


def test_a_type_change_of_a_column_a_view_uses_fails_at_deploy_so_it_is_high_on_any_size(tmp_path, civicq_db):
    seed_demo(civicq_db, 10)
    project = load_project(make_project(tmp_path, civicq_db.url, TYPE_ONLY))
    result = lint(project, project.target())
    f = by_rule(result, "breaks-dependent-view")
    assert f.risk == "high" and "lint_demo_heavy" in f.message and f.line == line_of(TYPE_ONLY, "type_=")
    assert result.failed


def test_a_session_holding_a_conflicting_lock_is_named(tmp_path, civicq_db):
    seed_demo(civicq_db, 10)
    project = load_project(make_project(tmp_path, civicq_db.url))
    with civicq_db.connect(autocommit=False) as holder:
        holder.execute("SELECT 1 FROM lint_demo LIMIT 1")
        pid = holder.info.backend_pid
        result = lint(project, project.target())
    blocked = by_rule(result, "blocked-now")
    assert f"pid {pid}" in blocked.message and blocked.risk == "medium"


def test_offline_it_runs_squawk_at_the_same_lines_and_says_what_it_could_not_know(tmp_path, cli):
    cfg = make_project(tmp_path, None)
    result = cli("--config", str(cfg), "db", "lint", "--offline", "0004:0005")
    assert result.exit_code == 1, result.output  # sizes unknown: the gate cannot clear a blocking change
    for rule, (where, _, _) in EXPECTED.items():
        assert f"migrations/versions/0005_lint_demo.py:{LINE[where]}: unknown [{rule}]" in result.stdout, rule
    assert "not known: table sizes, rows and write rates" in result.stdout


@pytest.mark.parametrize("fmt", ["sarif", "github", "markdown"])
def test_every_format_points_at_the_migration_file_and_line(tmp_path, cli, fmt):
    cfg = make_project(tmp_path, None)
    result = cli("--config", str(cfg), "db", "lint", "--offline", "0005", "-f", fmt)
    assert result.exit_code == 1, result.output
    where = {"sarif": '"uri": "migrations/versions/0005_lint_demo.py"',
             "github": f"file=migrations/versions/0005_lint_demo.py,line={LINE['token']}",
             "markdown": f"`migrations/versions/0005_lint_demo.py:{LINE['token']}`"}[fmt]
    assert where in result.stdout
    if fmt == "sarif":
        doc = json.loads(result.stdout)
        jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(doc)
        assert doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] == LINE["token"]


def test_the_size_thresholds_come_from_the_project_file(tmp_path, civicq_db):
    seed_demo(civicq_db, 200)
    settings = "migrations: {lint: {rows: {medium: 50, high: 100}}}\n"
    project = load_project(make_project(tmp_path, civicq_db.url, settings=settings))
    result = lint(project, project.target())
    assert by_rule(result, "adding-field-with-default").risk == "high" and result.failed


def test_a_threshold_that_is_not_a_number_is_a_config_error_at_its_line(tmp_path, cli):
    cfg = make_project(tmp_path, None, settings="migrations:\n  lock_timeout: soon\n")
    result = cli("--config", str(cfg), "db", "lint", "--offline")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "civicq-ops.yaml:3" in result.stderr, result.stderr


def test_the_shipped_migrations_lint_clean_with_a_live_target(civicq_db):
    """Their speed is bench/db_lint.py's: a test only says they pass the gate."""
    project, target = civicq_db.project()
    result = lint(project, target, "base:head")
    assert result.online and result.revisions == ["0001", "0002", "0003", "0004"]
    assert not result.failed, [(f.rule, f.risk, f.line) for f in result.findings if f.risk not in ("info", "low")]


def test_nothing_pending_is_a_pass(civicq_db):
    project, target = civicq_db.project()
    result = lint(project, target)
    assert result.revisions == [] and not result.findings and not result.failed


def test_statements_built_from_a_list_of_index_definitions_point_at_their_entry():
    from civicq_ops.civicq.migration_render import render_range

    project = load_project(REPO / "civicq-ops.yaml")
    rendered = render_range(project, "0001", "0002")
    source = (REPO / "migrations" / "versions" / "0002_comprehensive_indexes.py").read_text()
    build = next(s for s in rendered.statements if "users_city_role_idx" in s.sql)
    assert build.line == line_of(source, '"users_city_role_idx"')


def test_an_unreachable_target_is_exit_3_and_offline_is_asked_for_by_name(tmp_path, cli):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cfg = make_project(tmp_path, f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=2")
    result = cli("--config", str(cfg), "db", "lint", "0005")
    assert result.exit_code == 3, result.output
    assert "target 't' is unreachable" in result.stderr and "--offline" in result.stderr
    offline = cli("--config", str(cfg), "db", "lint", "--offline", "0005")
    assert offline.exit_code == 1, offline.output
    assert f"0005_lint_demo.py:{LINE['token']}: unknown [adding-field-with-default]" in offline.stdout


@pytest.mark.parametrize("args", [
    ["db", "lint", "--offline", "0001:0003:0004"],
    ["db", "lint", "--offline", "0001:nosuch"],
    ["db", "migrate", "--sql", "--from", "0001:0002"],
    ["db", "migrate", "--sql", "--from", "0003", "0001"],
    ["db", "migrate", "--sql", "--from", "base", "nosuch"],
    ["db", "migrate", "--sql", "nosuch"],
])
def test_a_revision_range_that_is_not_one_is_exit_2_naming_the_known_ones(cli, args):
    result = cli("--config", str(REPO / "civicq-ops.yaml"), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and ("unknown revision" in result.stderr or "range" in result.stderr
                                                or "comes after" in result.stderr), result.stderr
