"""Checks must not act (issue 11 point 9): functions with side effects that a READ ONLY transaction
still allows are refused by `validate` and, on the final rendered SQL, by the engine before it runs.
One case per known bypass."""

from __future__ import annotations

import pytest

from civicq_ops.catalog.sqlcheck import SIDE_EFFECTS, inspect_query, side_effect
from tests.catalog.test_validate import GOOD_CHECK, codes, validate

BYPASSES = {
    "plain call": "SELECT pg_terminate_backend(1) AS v",
    "query_to_xml runs SQL from text": "SELECT query_to_xml('SELECT pg_terminate_backend(1)', true, false, '') AS v",
    "query_to_xml_and_xmlschema": "SELECT query_to_xml_and_xmlschema('SELECT 1', true, false, '') AS v",
    "cursor_to_xml": "SELECT cursor_to_xml('c', 1, true, false, '') AS v",
    "table_to_xml": "SELECT table_to_xml('pg_class', true, false, '') AS v",
    "ts_stat runs SQL from text": "SELECT * FROM ts_stat('SELECT pg_terminate_backend(1)::text::tsvector')",
    "ts_rewrite runs SQL from text": "SELECT ts_rewrite('a'::tsquery, 'SELECT pg_cancel_backend(1)') AS v",
    "schema-qualified": "SELECT pg_catalog.pg_terminate_backend(1) AS v",
    "quoted identifier": 'SELECT "pg_terminate_backend"(1) AS v',
    "quoted and qualified": 'SELECT "pg_catalog"."pg_cancel_backend"(1) AS v',
    "unicode-escaped identifier": 'SELECT U&"pg\\005fterminate\\005fbackend"(1) AS v',
    "upper case": "SELECT PG_TERMINATE_BACKEND(1) AS v",
    "inside a CTE": "WITH x AS (SELECT pg_reload_conf() AS v) SELECT v FROM x",
    "inside a subquery": "SELECT (SELECT pg_rotate_logfile()) AS v",
    "inside a lateral": "SELECT v FROM pg_stat_activity a, LATERAL (SELECT pg_cancel_backend(a.pid) AS v) l",
    "as a table function": "SELECT * FROM pg_ls_dir('.') AS v",
    "ROWS FROM": "SELECT * FROM ROWS FROM (pg_read_file('/etc/passwd')) AS v",
    "in WHERE": "SELECT 1 AS v FROM pg_stat_activity WHERE pg_terminate_backend(pid)",
    "in CASE": "SELECT CASE WHEN true THEN pg_notify('c', 'x') END AS v",
    "in ORDER BY": "SELECT 1 AS v FROM pg_stat_activity ORDER BY pg_advisory_lock(pid)",
    "in a UNION arm": "SELECT 1 AS v UNION ALL SELECT pg_try_advisory_xact_lock(1)::int",
    "in a window function argument": "SELECT count(pg_cancel_backend(pid)) OVER () AS v FROM pg_stat_activity",
    "in an aggregate FILTER": "SELECT count(*) FILTER (WHERE pg_reload_conf()) AS v FROM pg_class",
    "large object": "SELECT lo_import('/etc/passwd') AS v",
    "set_config lifts the timeouts": "SELECT set_config('statement_timeout', '0', false) AS v",
    "nextval": "SELECT nextval('s') AS v",
    "xid assignment": "SELECT pg_current_xact_id() AS v",
    "txid_current": "SELECT txid_current() AS v",
    "dblink": "SELECT * FROM dblink('dbname=x', 'DELETE FROM t') AS t(v int)",
    "replication slot": "SELECT pg_create_logical_replication_slot('s', 'test_decoding') AS v",
    "WAL switch": "SELECT pg_switch_wal() AS v",
    "collations import": "SELECT pg_import_system_collations('pg_catalog') AS v",
    "stats reset": "SELECT pg_stat_reset() AS v",
    "signal family": "SELECT pg_log_backend_memory_contexts(1) AS v",
}


@pytest.mark.parametrize("query", list(BYPASSES.values()), ids=list(BYPASSES))
def test_each_bypass_is_refused_in_review_and_at_run_time(query):
    for review in (True, False):
        verdict = inspect_query(query, review=review)
        assert verdict.problem and "not read-only" in verdict.problem, (query, verdict)


@pytest.mark.parametrize("name", ["pg_stat_get_activity", "current_setting", "txid_current_if_assigned",
                                  "pg_current_xact_id_if_assigned", "pg_relation_size", "currval", "lower",
                                  "pg_size_pretty", "pg_stat_statements", "pgstattuple_approx"])
def test_harmless_functions_are_allowed(name):
    assert side_effect(name) is None


def test_every_family_names_its_effect():
    assert side_effect("pg_advisory_unlock_all") == "takes advisory locks"
    assert side_effect("lo_from_bytea") == "uses large objects"
    assert side_effect("dblink_exec") == "connects to another database"
    assert side_effect("pg_drop_replication_slot") == "changes WAL, backups or replication"
    assert side_effect("PG_LS_WALDIR") == "reads or writes server files"
    assert all(patterns for patterns in SIDE_EFFECTS.values())


def test_sleep_is_refused_in_review_only():
    assert inspect_query("SELECT pg_sleep(1) AS v").problem
    assert inspect_query("SELECT pg_sleep(1) AS v", review=False).problem is None


def test_validate_names_the_function_and_its_effect(tmp_path):
    text = GOOD_CHECK.replace("SELECT relname, pg_total_relation_size(relid) AS bytes",
                              "SELECT relname, length(query_to_xml('SELECT pg_terminate_backend(1)', true, false, "
                              "'')::text) AS bytes")
    diags = validate(tmp_path, text)
    assert codes(diags) == [(9, "not-read-only")]
    assert "query_to_xml() runs SQL from text" in diags[0].message


def test_the_deny_list_matches_as_fnmatch_would():
    """The deny list is matched without regular expressions (exact names, one `*` at most): the
    same answers as fnmatch's for every pattern and names around each."""
    from fnmatch import fnmatchcase

    from civicq_ops.catalog.sqlcheck import REVIEW_ONLY, SIDE_EFFECTS, side_effect

    groups = {**SIDE_EFFECTS, **REVIEW_ONLY}
    patterns = [p for ps in groups.values() for p in ps]
    assert all(p.count("*") <= 1 for p in patterns)
    names = {n for p in patterns for n in (p.replace("*", ""), p.replace("*", "x_y"), p.replace("*", "") + "s",
                                            "x" + p.replace("*", ""), p.split("*")[0])}
    names |= {"pg_stat_get_live_tuples", "pg_size_pretty", "lower", "pg_relation_size", "pg_", "pg_replication_slot"}
    for name in sorted(names):
        expected = next((reason for reason, ps in groups.items() if any(fnmatchcase(name, p) for p in ps)), None)
        assert side_effect(name.upper()) == expected, name


EXTRA_SHAPES = [
    "WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x",
    "WITH a AS MATERIALIZED (SELECT 1), b (c) AS (DELETE FROM t RETURNING 1) SELECT * FROM a, b",
    "SELECT * INTO new_t FROM t", "SELECT * FROM t FOR UPDATE", "SELECT * FROM t FOR SHARE SKIP LOCKED",
    """SELECT "Weird]""name"('a"]'), pg_catalog.nextval('s'), x.setval FROM x""",
    "SELECT 'FuncCall\":{\"funcname\":[' AS trap, lower('\"intoClause\":')",
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) OVER (PARTITION BY 1) FROM pg_stat_activity",
    "SELECT (SELECT pg_reload_conf()) UNION ALL SELECT pg_sleep(1)::text::bool",
]


def _queries() -> list[str]:
    from pathlib import Path

    from civicq_ops.catalog.load import load_catalog

    repo = Path(__file__).resolve().parents[2]
    catalog = load_catalog([repo / "checks"], include_tests=False).catalog
    texts = [q for c in catalog.checks.values() for q in [c.query, *(v.query for v in c.variants)]]
    return [*texts, *BYPASSES.values(), *EXTRA_SHAPES]


def test_the_text_scan_finds_what_the_tree_walk_finds():
    """The judge reads the parse tree's JSON text with regular expressions (issue 14); on every
    shipped query, every bypass and odd shapes (names and strings that imitate keys, CTEs with
    column lists) it finds the same problems, in the same order, as a walk over the whole tree."""
    import json

    from pglast.parser import parse_sql_json

    from civicq_ops.catalog.sqlcheck import _scan, _walk
    from civicq_ops.templating.render import environment

    scanned = 0
    for template in _queries():
        try:
            text = environment().from_string(template).render(params={}, target={}, facts={}, run={}) \
                if "{" in template else template
            rendering = parse_sql_json(text.replace("%s", "NULL"))
        except Exception:  # noqa: BLE001 - a template that needs its context: not this test's concern
            continue
        for review in (True, False):
            walked: list[str] = []
            _walk(json.loads(rendering)["stmts"][0]["stmt"], walked, review)
            fast = _scan(rendering, review)
            if fast is not None:
                scanned += 1
                assert fast == walked, text
    assert scanned >= 2 * 50  # the scan, not the walk, judges almost every query
