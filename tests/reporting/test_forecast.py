"""Forecasts: the robust fit on its own, and a time to exhaustion predicted from real runs while a
database grows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from civicq_ops.report.forecast import Horizon, forecast, forecast_finding, theil_sen
from tests.fixtures.pg import run_on

INT_MAX = 2_147_483_647


def test_theil_sen_ignores_an_outlier_that_least_squares_follows():
    xs = [float(i) for i in range(20)]
    ys = [2.0 * x + 1 for x in xs]
    ys[10] = 500.0  # one vacuum-free spike, one bulk load
    slope, intercept, lo, hi = theil_sen(xs, ys)
    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(1.0)
    assert lo <= slope <= hi


def test_too_few_points_say_not_enough_history():
    fc = forecast("f", "sequence-exhaustion", "t", {"sequencename": "s"}, [(0.0, 0.1), (60.0, 0.2)], 60.0, 86400)
    assert not fc.enough and fc.seconds_left is None
    assert fc.note.startswith("not enough history: 2 point(s)")
    assert forecast_finding(fc, Horizon()).status == "ok"


def test_a_shrinking_value_is_not_growing_and_never_runs_out():
    points = [(float(i * 3600), 0.5 - i * 0.01) for i in range(12)]
    fc = forecast("f", "database-xid-age", "t", None, points, 12 * 3600.0, 14 * 86400)
    assert fc.enough and fc.seconds_left is None and "not growing" in fc.note


def test_the_horizon_turns_a_forecast_into_a_finding():
    day = 86400.0
    points = [(i * day, 0.5 + i * 0.01) for i in range(10)]  # 1%/day from 59%: 41 days to go
    fc = forecast("f", "integer-key-capacity", "t", {"tablename": "votes"}, points, 9 * day, 30 * day)
    assert fc.seconds_left / day == pytest.approx(41, abs=0.01)
    assert forecast_finding(fc, Horizon(warning_s=90 * day, critical_s=30 * day)).status == "warning"
    assert forecast_finding(fc, Horizon(warning_s=90 * day, critical_s=60 * day)).status == "critical"
    assert forecast_finding(fc, Horizon(warning_s=20 * day, critical_s=10 * day)).status == "ok"


def test_forecast_from_real_runs_predicts_sequence_exhaustion(civicq_db, store):
    """Checks run against a real database while it grows: rows are added between runs and an integer
    sequence advances at a known rate (value = base + rate x elapsed seconds). The forecast must put
    exhaustion within 10% (of the time left) of when that rate reaches 2,147,483,647.
    Tolerance: the runs' timestamps are taken a few milliseconds after the sequence moves, over
    about 3 s of history projected about 30 s ahead, so 10% leaves room for a slow, shared machine."""
    from civicq_ops.report.analysis import make_forecasts
    from civicq_ops.report.history import recent_series

    rate = 50_000_000.0  # values per second: about 40 s from the base to the type's maximum
    base = 200_000_000
    with civicq_db.connect() as conn:
        conn.execute("CREATE TABLE tickets (id serial PRIMARY KEY, note text)")
        t0 = time.time()
        result = None
        for step in range(8):
            conn.execute("INSERT INTO tickets (note) SELECT 'n' FROM generate_series(1, %s)", (500 * (step + 1),))
            conn.execute("SELECT setval('tickets_id_seq', %s)", (int(base + rate * (time.time() - t0)),))
            result = run_on(civicq_db, ["sequence-exhaustion", "database-size", "database-xid-age"])
            store.record_run(result)
            time.sleep(0.3)
    expected = t0 + (INT_MAX - base) / rate
    now = datetime.now(UTC)
    recent = recent_series(store, result.targets[0].name, ["sequence-exhaustion", "database-xid-age"],
                           now - timedelta(days=1))
    forecasts = make_forecasts(result, recent, Horizon(), now)
    fc = next(f for f in forecasts if f.subject == {"schemaname": "public", "sequencename": "tickets_id_seq"})
    assert fc.points == 8 and fc.enough
    predicted = fc.eta.timestamp()
    left = expected - time.time()
    assert abs(predicted - expected) <= 0.10 * max(left, 1.0) + 0.5, (predicted - expected, left, fc.note)
    finding = forecast_finding(fc, Horizon())
    assert finding.status == "critical" and finding.check == "forecast-exhaustion"
    assert "Theil-Sen over 8 points" in finding.message
    # The database's size grew too, but has no hard limit of its own here: no forecast for it.
    assert all(f.check != "database-size" for f in forecasts)
