"""The engine against real PostgreSQL 15 and 18: provoked problems become findings with the
right subject and level; runs stay read-only, bounded in time, and injection-proof."""

from __future__ import annotations

import time
from datetime import date

import psycopg
import pytest

from civicq_ops.catalog.model import Catalog, Check, Source, Waiver
from civicq_ops.core.thresholds import Thresholds
from tests.fixtures.pg import failed_concurrent_index, run_on, shipped_catalog


def only(result, check: str) -> list:
    return [f for f in result.findings if f.check == check]


def test_idle_in_transaction_session_is_found_with_its_pid(db):
    with db.connect(autocommit=False) as idle:
        idle.execute("SELECT 1")  # opens the transaction, then the session goes idle
        pid = idle.info.backend_pid
        time.sleep(1.2)
        catalog = shipped_catalog()
        check = catalog.checks["idle-in-transaction"]
        check.thresholds = Thresholds.parse({"warning": {"gte": "1s"}, "critical": {"gte": "1h"}}, "seconds")
        result = run_on(db, ["idle-in-transaction"], catalog=catalog, params={"idle-in-transaction": {"min_idle": "0s"}})
    [finding] = only(result, "idle-in-transaction")
    assert finding.subject == {"pid": pid} and finding.status == "warning"
    assert finding.value >= 1.0 and f"pg_terminate_backend({pid})" in finding.recommendation


def test_connection_saturation_warns_when_slots_run_out(db):
    with db.connect() as conn:
        available = conn.execute("SELECT current_setting('max_connections')::int "
                                 "- current_setting('superuser_reserved_connections')::int").fetchone()[0]
        used = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]
    extra = [db.connect() for _ in range(int(available * 0.92) - used)]
    try:
        result = run_on(db, ["connection-saturation"])
    finally:
        for c in extra:
            c.close()
    [finding] = only(result, "connection-saturation")
    assert finding.status in ("warning", "critical") and finding.value >= 0.9


def test_dead_tuples_are_found_on_the_bloated_table(db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE bloated (id int, pad text) WITH (autovacuum_enabled = false)")
        conn.execute("INSERT INTO bloated SELECT g, repeat('x', 50) FROM generate_series(1, 20000) g")
        conn.execute("DELETE FROM bloated WHERE id % 2 = 0")
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.2)
    result = run_on(db, ["table-dead-tuples"], params={"table-dead-tuples": {"min_live_tuples": "1000"}})
    [finding] = [f for f in only(result, "table-dead-tuples") if f.subject == {"schemaname": "public", "relname": "bloated"}]
    assert finding.status == "critical" and finding.value == pytest.approx(0.5, abs=0.01)
    assert finding.remediation == "vacuum"


def test_invalid_index_left_by_a_failed_concurrent_build(db):
    failed_concurrent_index(db)
    result = run_on(db, ["invalid-index"])
    [finding] = only(result, "invalid-index")
    assert finding.subject == {"schemaname": "public", "indexname": "dup_a_key"} and finding.status == "warning"


def test_integer_column_fed_by_a_sequence_near_its_limit(db):
    with db.connect() as conn:
        conn.execute("CREATE TABLE legacy (id serial PRIMARY KEY, b bigserial)")
        conn.execute("SELECT setval('legacy_id_seq', 2100000000), setval('legacy_b_seq', 2100000000)")
    result = run_on(db, ["sequence-exhaustion"], list_ok=True)  # as --verbose: ok sequences listed too
    by_seq = {f.subject["sequencename"]: f for f in only(result, "sequence-exhaustion")}
    assert by_seq["legacy_id_seq"].status == "critical"  # an int column: 97.8% of 2^31
    assert by_seq["legacy_b_seq"].status == "ok"  # a bigint column: far from its limit


def test_clean_database_is_quiet_for_the_engine_checks(db):
    result = run_on(db, ["connection-saturation", "idle-in-transaction", "table-dead-tuples", "invalid-index",
                         "sequence-exhaustion"])
    assert [f for f in result.findings if f.status not in ("ok", "skipped")] == []
    assert result.exit_code == 0


def _adhoc(query: str, **extra) -> Catalog:
    data = {"id": "adhoc", "title": "Ad hoc", "category": "test", "query": query, "value": "v",
            "thresholds": {"warning": {"gt": 0}}, **extra}
    return Catalog(checks={"adhoc": Check.from_dict(data, Source("adhoc.yaml", 1))})


def test_a_writing_query_is_stopped_by_the_read_only_transaction(db):
    with db.connect() as conn:
        conn.execute("CREATE SEQUENCE s")
    catalog = _adhoc("SELECT nextval('s') AS v")  # validation would refuse it; the transaction is the last guard
    result = run_on(db, catalog=catalog)
    [finding] = result.findings
    assert finding.status == "error" and "read-only" in finding.reason
    assert result.exit_code == 3
    with db.connect() as conn:
        assert conn.execute("SELECT last_value, is_called FROM s").fetchone() == (1, False)


def test_a_slow_check_times_out_and_the_others_go_on(db):
    slow = Check.from_dict({"id": "slow", "title": "Slow", "category": "test", "query": "SELECT pg_sleep(5) AS v",
                            "timeout": "300ms"}, Source("adhoc.yaml", 1))
    catalog = shipped_catalog()
    catalog.checks["slow"] = slow
    started = time.monotonic()
    result = run_on(db, ["slow", "invalid-index", "sequence-exhaustion"], catalog=catalog)
    assert time.monotonic() - started < 4
    [timed_out] = only(result, "slow")
    assert timed_out.status == "error" and "timed out after 0.3s" in timed_out.reason
    assert only(result, "invalid-index")[0].status == "ok"
    assert result.exit_code == 3


def test_run_budget_stops_cleanly(db):
    catalog = shipped_catalog()
    catalog.checks["slow"] = Check.from_dict({"id": "slow", "title": "Slow", "category": "test",
                                              "query": "SELECT pg_sleep(2) AS v"}, Source("adhoc.yaml", 1))
    started = time.monotonic()
    result = run_on(db, catalog=catalog, budget_s=0.5, pool_size=1)
    assert time.monotonic() - started < 3
    assert any(f.status == "error" and ("budget" in (f.reason or "") or "timed out" in (f.reason or ""))
               for f in result.findings)


def test_params_with_quotes_and_semicolons_are_bound_not_executed(db):
    evil = "public'; DROP TABLE victim; --"
    with db.connect() as conn:
        conn.execute("CREATE TABLE victim (a int)")
    result = run_on(db, ["table-dead-tuples"], params={"table-dead-tuples": {"schemas": f"[\"{evil}\"]",
                                                                              "min_live_tuples": "0"}})
    assert result.exit_code == 0
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.victim') IS NOT NULL").fetchone()[0]


def test_identifier_filter_quotes_hostile_object_names(db):
    name = 'we"ird; DROP TABLE victim; --'
    with db.connect() as conn:
        conn.execute("CREATE TABLE victim (a int)")
        conn.execute(psycopg.sql.SQL("CREATE TABLE {} (a int)").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("INSERT INTO {} VALUES (1), (2)").format(psycopg.sql.Identifier(name)))
    catalog = _adhoc("SELECT count(*) AS v FROM {{ params.t | ident }}",
                     params={"t": {"type": "string", "default": name}})
    [finding] = run_on(db, catalog=catalog).findings
    assert finding.value == 2 and finding.status == "warning"
    with db.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.victim') IS NOT NULL").fetchone()[0]


def test_missing_extension_gives_skipped_with_the_reason(db):
    catalog = _adhoc("SELECT 1 AS v", requires={"extensions": ["pg_trgm"]})
    [finding] = run_on(db, catalog=catalog).findings
    assert finding.status == "skipped" and "CREATE EXTENSION pg_trgm" in finding.reason


def test_variant_is_chosen_by_server_version(db, pg_cluster):
    catalog = _adhoc("SELECT 1 AS v", variants=[{"when": {"server_version": ">=16"}, "query": "SELECT 2 AS v"}])
    [finding] = run_on(db, catalog=catalog).findings
    assert finding.value == (2 if int(pg_cluster.major) >= 16 else 1)


def _invalid_index(db) -> None:
    failed_concurrent_index(db)


def test_gate_level_decides_the_exit_code(db):
    _invalid_index(db)
    assert run_on(db, ["invalid-index"]).exit_code == 0  # a warning, gate at critical
    assert run_on(db, ["invalid-index"], fail_on="warning").exit_code == 1


def test_waived_finding_does_not_fail_the_gate_and_an_expired_waiver_stops_waiving(db):
    _invalid_index(db)
    catalog = shipped_catalog()
    catalog.waivers = [Waiver(check="invalid-index", subject={"indexname": "dup_a_key"}, reason="rebuilt on Sunday",
                              owner="dba", expires="2099-01-01", source=Source("w.yaml", 3))]
    result = run_on(db, ["invalid-index"], catalog=catalog, fail_on="warning")
    [finding] = result.findings
    assert finding.waived and finding.waiver["owner"] == "dba" and result.exit_code == 0
    catalog.waivers[0].expires = "2020-01-01"
    result = run_on(db, ["invalid-index"], catalog=catalog, fail_on="warning")
    assert not result.findings[0].waived and result.exit_code == 1
    assert [n["code"] for n in result.notices] == ["waiver-expired"]


def test_waiver_matching_nothing_is_reported_stale(db):
    catalog = shipped_catalog()
    catalog.waivers = [Waiver(check="invalid-index", subject={"indexname": "gone"}, reason="r", owner="o",
                              expires=str(date(2099, 1, 1)), source=Source("w.yaml", 3))]
    result = run_on(db, ["invalid-index"], catalog=catalog)
    assert [n["code"] for n in result.notices] == ["waiver-stale"]


def test_baseline_fails_only_on_new_findings(db, tmp_path):
    from civicq_ops.engine.baseline import write_baseline

    _invalid_index(db)
    first = run_on(db, ["invalid-index", "sequence-exhaustion"], fail_on="warning")
    path = tmp_path / "baseline.json"
    assert write_baseline(first.findings, path, first.targets) == 1
    assert run_on(db, ["invalid-index", "sequence-exhaustion"], fail_on="warning", baseline=str(path)).exit_code == 0
    with db.connect() as conn:
        conn.execute("CREATE TABLE legacy (id serial PRIMARY KEY)")
        conn.execute("SELECT setval('legacy_id_seq', 2100000000)")
    again = run_on(db, ["invalid-index", "sequence-exhaustion"], fail_on="warning", baseline=str(path))
    assert again.exit_code == 1 and len(again.gate_failures) == 1


def test_finding_ids_survive_threshold_edits(db):
    _invalid_index(db)
    first = run_on(db, ["invalid-index"]).findings[0].id
    catalog = shipped_catalog()
    catalog.checks["invalid-index"].level = "critical"
    assert run_on(db, ["invalid-index"], catalog=catalog).findings[0].id == first
