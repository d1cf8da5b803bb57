"""Checks must not act, on real PostgreSQL 15 and 18 (issue 11 point 9, issue 12 point 8): the
final SQL is scanned before it runs, and `--param` values are checked before anything runs."""

from __future__ import annotations

import psycopg
import pytest

from civicq_ops.catalog.model import Catalog, Check, Source
from tests.fixtures.pg import run_on


def adhoc(query: str, **extra) -> Catalog:
    data = {"id": "adhoc", "title": "Ad hoc", "category": "test", "query": query, "value": "v",
            "thresholds": {"warning": {"gt": 0}}, **extra}
    return Catalog(checks={"adhoc": Check.from_dict(data, Source("adhoc.yaml", 1))})


@pytest.fixture
def victim(db):
    """A session that a side-effecting check would terminate."""
    with db.connect() as conn:
        yield conn.info.backend_pid, conn


def alive(conn: psycopg.Connection) -> bool:
    try:
        return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_query_to_xml_cannot_terminate_a_backend(db, victim):
    pid, conn = victim
    # A catalogue that skipped `validate`: the run-time scan is the guard.
    catalog = adhoc(f"SELECT length(query_to_xml('SELECT pg_terminate_backend({pid})', true, false, '')::text) AS v")
    result = run_on(db, catalog=catalog)
    [finding] = result.findings
    assert finding.status == "error" and "refused before running" in finding.reason
    assert "query_to_xml() runs SQL from text" in finding.reason
    assert alive(conn) and result.exit_code == 3


def test_a_loosely_bounded_sql_unsafe_param_cannot_bring_in_a_signal(db, victim):
    pid, conn = victim
    catalog = adhoc("SELECT count(*) AS v FROM {{ params.src | sql_unsafe }}",
                    params={"src": {"type": "string", "default": "pg_class", "pattern": ".*"}})
    result = run_on(db, catalog=catalog,
                    params={"adhoc": {"src": f"pg_class, LATERAL pg_catalog.\"pg_terminate_backend\"({pid}) t"}})
    [finding] = result.findings
    assert finding.status == "error" and "pg_terminate_backend() signals a server process" in finding.reason
    assert alive(conn)


def test_a_bounded_sql_unsafe_param_still_runs(db):
    catalog = adhoc("SELECT count(*) AS v FROM {{ params.src | sql_unsafe }}",
                    params={"src": {"type": "string", "default": "pg_class", "pattern": "pg_[a-z_]+"}})
    [finding] = run_on(db, catalog=catalog, params={"adhoc": {"src": "pg_namespace"}}).findings
    assert finding.status == "warning" and finding.value > 0


CHECK_FILE = """\
version: 1
checks:
  - id: rows-in
    title: Rows in a table
    category: test
    params:
      table: {type: string, default: pg_class, pattern: "[a-z_]+"}
      min: {type: integer, default: 0, minimum: 0}
    query: SELECT count(*) AS v FROM {{ params.table | sql_unsafe }} HAVING count(*) >= {{ params.min }}
    value: v
    thresholds: {warning: {gt: 1000000000}}
    recommendation: none
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "rows.yaml").write_text(CHECK_FILE)
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\npaths: {checks: [checks]}\n"
                                              "targets: {t: {url: '${DB_URL}'}}\ndefault_target: t\n")
    return tmp_path


@pytest.mark.parametrize("param, why", [
    ("rows-in.table=pg_class; COMMIT; CREATE TABLE pwned (a int)", "does not match the pattern"),
    ("rows-in.min=-5", "below the minimum 0"),
    ("rows-in.min=!!python/object/apply:os.system [id]", "not an integer"),
])
def test_cli_refuses_a_bad_param_before_anything_runs(cli, db, project, param, why):
    result = cli("run", "checks", "--param", param, env={"DB_URL": db.url}, cwd=project)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --param rows-in.") and why in result.stderr
    assert "Traceback" not in result.output and "unexpected" not in result.output
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.pwned')").fetchone() == (None,)
    assert not (project / ".civicq-ops" / "state.db").exists()  # nothing ran, nothing recorded
