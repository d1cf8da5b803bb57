"""Checks over thousands of objects count the ok ones in SQL (an `ok_count` row) instead of returning
a row, and a finding, each; `--verbose` (RunOptions.list_ok) lists them all. On a real server."""

from __future__ import annotations

import json

from tests.fixtures.pg import run_on

CHECK = "integer-key-capacity"


def _keys(db, analyzed: int, near: bool = True, unanalyzed: bool = False) -> None:
    with db.connect() as conn:
        for i in range(analyzed):
            conn.execute(f"CREATE TABLE small_{i} (id int PRIMARY KEY)")
        if near:
            conn.execute("CREATE TABLE near_top (id int PRIMARY KEY)")
            conn.execute("INSERT INTO near_top SELECT generate_series(1999999000, 2000000000)")
        conn.execute("ANALYZE")
        if unanalyzed:  # created after the ANALYZE: reltuples -1, no statistics
            conn.execute("CREATE TABLE never_analyzed (id int PRIMARY KEY)")


def test_keys_far_from_their_limit_are_counted_not_returned(db):
    _keys(db, 30)
    result = run_on(db, [CHECK])
    assert [(f.subject["tablename"], f.status) for f in result.findings] == [("near_top", "critical")]
    assert result.ok_counts == {(CHECK, result.targets[0].name): 30}
    assert result.summary.ok == 30 and result.summary.critical == 1


def test_list_ok_returns_every_key_as_a_finding(db):
    _keys(db, 30)
    result = run_on(db, [CHECK], list_ok=True)
    assert len(result.findings) == 31 and result.ok_counts == {}
    assert sum(f.status == "ok" for f in result.findings) == 30


def test_only_counted_keys_give_one_ok_finding_that_says_how_many(db):
    _keys(db, 5, near=False)
    [finding] = run_on(db, [CHECK]).findings
    assert finding.status == "ok" and "5 ok, none near the thresholds" in finding.message


def test_a_key_without_statistics_is_still_listed_as_low_confidence(db):
    _keys(db, 3, near=False, unanalyzed=True)
    result = run_on(db, [CHECK])
    [finding] = [f for f in result.findings if f.subject]
    assert finding.subject["tablename"] == "never_analyzed" and finding.confidence == "low"
    assert result.summary.ok == 4  # 3 counted, and the low-confidence one (ok, listed)


def test_counted_keys_are_kept_in_the_state_store_aggregate(db, tmp_path):
    from civicq_ops.state.store import StateStore

    _keys(db, 30)
    result = run_on(db, [CHECK])
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.record_run(result, keep_ok=())
    [agg] = store.check_aggregates(CHECK, result.targets[0].name)
    assert agg["ok"] == 30


def test_json_is_one_line_by_default_and_indented_with_pretty(db):
    from civicq_ops.report import json_report

    _keys(db, 2)
    result = run_on(db, [CHECK])
    compact, pretty = json_report.render(result), json_report.render(result, pretty=True)
    assert compact.count("\n") == 1 and pretty.count("\n") > 20
    assert json.loads(compact) == json.loads(pretty)


def test_run_checks_verbose_lists_the_counted_keys(db, tmp_path):
    from civicq_ops.engine.run import Selection
    from civicq_ops.report.deliver import RunRequest, run_and_report
    from civicq_ops.state.store import StateStore

    _keys(db, 4)
    project, target = db.project()
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    quiet = run_and_report(project, [target], RunRequest(selection=Selection(checks=[CHECK])), store=store)
    verbose = run_and_report(project, [target], RunRequest(selection=Selection(checks=[CHECK]), verbose=True),
                             store=store)
    assert len(quiet.result.findings) == 1 and "4 ok" in quiet.text
    assert len(verbose.result.findings) == 5 and "small_3" in verbose.text


def test_sequences_far_from_their_limit_are_counted_and_listed_with_verbose(db):
    with db.connect() as conn:
        for i in range(6):
            conn.execute(f"CREATE TABLE counted_{i} (id serial PRIMARY KEY)")
            conn.execute(f"SELECT nextval('counted_{i}_id_seq')")
        conn.execute("CREATE TABLE nearly_full (id serial PRIMARY KEY)")
        conn.execute("SELECT setval('nearly_full_id_seq', 2100000000)")
    result = run_on(db, ["sequence-exhaustion"])
    assert [(f.subject["sequencename"], f.status) for f in result.findings] == [("nearly_full_id_seq", "critical")]
    assert result.findings[0].evidence["column_type"] == "integer"
    assert result.summary.ok == 6
    listed = run_on(db, ["sequence-exhaustion"], list_ok=True)
    assert len(listed.findings) == 7 and listed.ok_counts == {}
