"""Recording a run: one transaction per run (one commit, one sync), values for findings that are not
ok and for the ok findings the report draws, one aggregate row per check for the other ok ones, and
history retention applied when a run is recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from civicq_ops.core.errors import ConfigError
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunResult, Selection, TargetRun
from civicq_ops.report.history import TRENDED, load_history, recent_series
from civicq_ops.state.store import KEEP_OK_TOP, StateStore


def _finding(check: str, subject: str, status: str, value: float) -> Finding:
    return Finding(check=check, category="capacity", target="local", subject={"relname": subject}, status=status,
                   value=value)


def _result(run_id: str, at: datetime, findings: list[Finding], ok_counts: dict | None = None) -> RunResult:
    return RunResult(id=run_id, started_at=at, duration_s=0.1, fail_on="critical",
                     targets=[TargetRun("local", ok_counts=ok_counts or {})], findings=findings, checks={})


def _traced(store: StateStore) -> list[str]:
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    return statements


def _outside_transaction(statements: list[str]) -> list[str]:
    """Writes that SQLite committed on their own (each one its own sync)."""
    inside, loose = False, []
    for s in statements:
        word = s.split()[0].upper()
        inside = True if word == "BEGIN" else False if word in ("COMMIT", "ROLLBACK") else inside
        if word in ("INSERT", "UPDATE", "DELETE") and not inside:
            loose.append(s)
    return loose


def test_a_run_of_thousands_of_findings_is_one_commit(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    findings = [_finding("table-bloat", f"t{i}", "warning" if i % 10 == 0 else "ok", i) for i in range(3000)]
    statements = _traced(store)
    store.record_run(_result("r1", datetime.now(UTC), findings), keep_ok=TRENDED)
    assert sum(s.startswith("COMMIT") for s in statements) == 1
    assert sum(s.startswith("BEGIN") for s in statements) == 1 and _outside_transaction(statements) == []
    assert store.execute("SELECT count(*) FROM findings") == [(300,)]  # the warnings; the ok ones are aggregated


def test_ok_findings_become_one_aggregate_row_per_check_with_the_counted_ones(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    findings = [_finding("table-bloat", f"t{i}", "ok", i) for i in range(1, 5)]
    findings.append(_finding("table-bloat", "hot", "critical", 99))
    store.record_run(_result("r1", datetime.now(UTC), findings, ok_counts={"table-bloat": 1000}),
                     keep_ok=TRENDED)
    [agg] = store.check_aggregates("table-bloat", "local")
    assert (agg["ok"], agg["values"], agg["min"], agg["max"], agg["sum"]) == (1004, 4, 1, 4, 10)
    assert [r[0] for r in store.execute("SELECT status FROM findings")] == ["critical"]


def test_ok_findings_of_drawn_checks_keep_their_values_for_the_greatest_few(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    findings = [_finding("integer-key-capacity", f"t{i}", "ok", i / 1000) for i in range(KEEP_OK_TOP + 30)]
    store.record_run(_result("r1", datetime.now(UTC), findings), keep_ok=TRENDED)
    kept = store.execute("SELECT min(value), count(*) FROM findings WHERE check_id = 'integer-key-capacity'")
    assert kept == [(30 / 1000, KEEP_OK_TOP)]


def test_a_recorder_that_names_no_drawn_checks_keeps_every_value(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.record_run(_result("r1", datetime.now(UTC), [_finding("table-bloat", f"t{i}", "ok", i) for i in range(80)]))
    assert store.execute("SELECT count(*) FROM findings") == [(80,)]


def test_trends_and_forecasts_still_read_the_kept_values(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    now = datetime.now(UTC)
    for i in range(6):
        findings = [_finding("integer-key-capacity", "votes", "ok", 0.1 + i / 100),
                    _finding("table-bloat", "votes", "ok", 0.2)]
        store.record_run(_result(f"r{i}", now - timedelta(hours=6 - i), findings), keep_ok=TRENDED)
    history = load_history(store, "local")
    assert history.runs == 6
    [series] = history.series.values()  # the ok table-bloat finding is only in its check's aggregate
    assert series.check == "integer-key-capacity"
    assert [round(v, 2) for _, v in series.points] == [0.1, 0.11, 0.12, 0.13, 0.14, 0.15]
    recent = recent_series(store, "local", ["integer-key-capacity"], now - timedelta(days=1))
    assert len(recent[series.finding_id].points) == 6


def test_retention_deletes_older_runs_with_their_findings_when_a_run_is_recorded(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}", retention_s=86400)
    now = datetime.now(UTC)
    old = [_finding("table-bloat", "a", "warning", 1), _finding("table-bloat", "b", "ok", 1)]
    store.record_run(_result("old", now - timedelta(days=3), old))
    store.record_run(_result("new", now, [_finding("table-bloat", "a", "warning", 2)]))
    assert [r["id"] for r in store.runs()] == ["new"]
    assert store.execute("SELECT DISTINCT run_id FROM findings") == [("new",)]
    assert store.execute("SELECT count(*) FROM check_aggregates WHERE run_id = 'old'") == [(0,)]


def test_state_retention_is_read_from_the_project_with_a_ninety_day_default(project_file):
    from civicq_ops.config import load_project

    assert load_project(project_file("version: 1\n")).state.retention_s == 90 * 86400
    assert load_project(project_file("version: 1\nstate: {retention: 7d}\n")).state.retention_s == 7 * 86400
    assert load_project(project_file("version: 1\nstate: {retention: forever}\n")).state.retention_s is None
    with pytest.raises(ConfigError):
        load_project(project_file("version: 1\nstate: {retention: soon}\n"))


def test_run_and_report_opens_one_store_and_commits_once(civicq_db, tmp_path, monkeypatch):
    from civicq_ops.report.deliver import RunRequest, run_and_report

    project, target = civicq_db.project()
    with civicq_db.connect() as conn:  # some heap block accesses, so the delta check has counters to keep
        conn.execute("SELECT count(*) FROM votes")
        conn.execute("SELECT pg_stat_force_next_flush()")
    opened: list[str] = []
    monkeypatch.setattr("civicq_ops.report.deliver.open_store", lambda p: opened.append("x"))
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    statements = _traced(store)
    request = RunRequest(selection=Selection(checks=["integer-key-capacity", "table-cache-hit-ratio",
                                                     "database-size"]), fmt="json")
    delivered = run_and_report(project, [target], request, store=store)
    assert delivered.notices == [] and opened == []
    writes = [s for s in statements if s.split()[0] in ("INSERT", "UPDATE", "DELETE")]
    assert writes and sum(s.startswith("COMMIT") for s in statements) == 1
    assert _outside_transaction(statements) == []
    assert store.execute("SELECT count(*) FROM check_counters")[0][0] > 0  # delta counters, same commit
    assert [r["id"] for r in store.runs()] == [delivered.result.id]


def test_a_postgresql_store_records_aggregates_and_applies_retention(db):
    store = StateStore(db.url, retention_s=86400)
    now = datetime.now(UTC)
    store.record_run(_result("old", now - timedelta(days=3), [_finding("table-bloat", "a", "warning", 1)]))
    findings = [_finding("table-bloat", f"t{i}", "ok", i) for i in range(1, 5)]
    findings.append(_finding("table-bloat", "hot", "critical", 99))
    store.record_run(_result("new", now, findings, ok_counts={"table-bloat": 10}), keep_ok=TRENDED)
    assert [r["id"] for r in store.runs()] == ["new"]
    assert store.execute("SELECT run_id, status FROM findings") == [("new", "critical")]
    [agg] = store.check_aggregates("table-bloat", "local")
    assert (agg["ok"], agg["max"]) == (14, 4)
    store.close()
