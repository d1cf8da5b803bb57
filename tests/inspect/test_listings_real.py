"""`civicq-ops inspect`: every row of each listing on real PostgreSQL 15 and 18, sorted and paged."""

from __future__ import annotations

import csv
import io
import json

import pytest

from civicq_ops.core.errors import ExecutionError, InputError
from civicq_ops.inspect.listings import LISTINGS, fetch
from civicq_ops.inspect.output import render_page


@pytest.mark.parametrize("name", list(LISTINGS))
def test_every_listing_runs_and_returns_its_columns(civicq_db, name):
    with civicq_db.connect(autocommit=False) as conn:
        conn.execute("SELECT count(*) FROM questions")  # something for slow-queries to list
        conn.commit()
        page = fetch(conn, name)
    assert page.total == len(page.rows)
    if name not in ("locks", "connections"):  # the fetching session excludes itself
        assert page.rows, name
    for row in page.rows:
        assert list(row) == list(LISTINGS[name].columns)
    text = render_page(page, "text")
    assert text.rstrip().endswith("(descending)") or "no rows" in text
    assert json.loads(render_page(page, "json"))["total"] == page.total
    assert len(list(csv.DictReader(io.StringIO(render_page(page, "csv"))))) == len(page.rows)


def test_indexes_lists_every_index_not_only_problems(civicq_db):
    with civicq_db.connect(autocommit=False) as conn:
        expected = conn.execute("SELECT count(*) FROM pg_stat_user_indexes").fetchone()[0]
        page = fetch(conn, "indexes")
    assert page.total == expected > 100


def test_sort_and_pages_walk_the_whole_listing(civicq_db):
    with civicq_db.connect(autocommit=False) as conn:
        whole = fetch(conn, "sizes", sort="relname", descending=False)
        first = fetch(conn, "sizes", sort="relname", descending=False, limit=7)
        second = fetch(conn, "sizes", sort="relname", descending=False, limit=7, offset=7)
        past_end = fetch(conn, "sizes", limit=5, offset=100_000)
    names = [r["relname"] for r in whole.rows]
    assert names == sorted(names)
    assert [r["relname"] for r in first.rows + second.rows] == names[:14]
    assert first.total == second.total == whole.total == past_end.total
    assert past_end.rows == []


def test_an_unknown_sort_column_is_an_input_error_before_any_query(civicq_db):
    with civicq_db.connect(autocommit=False) as conn, pytest.raises(InputError, match="has no column 'size; drop'"):
        fetch(conn, "sizes", sort="size; drop")


def test_slow_queries_without_the_extension_says_what_is_missing(civicq_db):
    with civicq_db.connect() as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
    with civicq_db.connect(autocommit=False) as conn, pytest.raises(ExecutionError, match="needs the pg_stat_statements"):
        fetch(conn, "slow-queries")


def test_cli_inspect_csv_json_and_errors(civicq_db, cli):
    env = {"CIVICQ_DATABASE_URL": civicq_db.url}
    out = cli("inspect", "sizes", "--format", "csv", "--sort", "total_bytes", "--limit", "3", env=env)
    assert out.exit_code == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 3 and int(rows[0]["total_bytes"]) >= int(rows[1]["total_bytes"]) >= int(rows[2]["total_bytes"])
    out = cli("inspect", "table-stats", "--format", "json", "--asc", "--sort", "n_live_tup", env=env)
    doc = json.loads(out.stdout)
    assert doc["sort"] == "n_live_tup" and not doc["descending"] and doc["total"] == len(doc["rows"])
    text = cli("inspect", "autovacuum", env=env)
    assert text.exit_code == 0 and "sorted by n_dead_tup (descending)" in text.stdout
    bad = cli("inspect", "sizes", "--sort", "nope", env=env)
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        "error: --sort: listing 'sizes' has no column 'nope' (it has: schemaname, relname, kind, total_bytes, "
        "own_bytes, index_bytes, toast_bytes, estimated_rows)"]
    fmt = cli("inspect", "locks", "--format", "xml", env=env)
    assert fmt.exit_code == 2 and fmt.stderr.splitlines() == ["error: unknown format 'xml' (choose from text, json, csv)"]
