"""The report on months of history: downsampled, drawn, and under 2 MB for 90 days of hourly runs."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import synthesize_history
from tests.fixtures.pg import run_on
from tests.reporting.browser import visit
from tests.reporting.test_report_real import validate_analysis


def test_ninety_days_of_hourly_runs_stay_under_two_megabytes(civicq_db, store, chromium, tmp_path):
    from civicq_ops.report.analysis import LIMITS, build_analysis, read_listings
    from civicq_ops.report.analysis_formats import json_text, markdown
    from civicq_ops.report.history import load_history, recent_series
    from civicq_ops.report.html import render

    result = run_on(civicq_db)
    runs = synthesize_history(store, result, days=90)
    assert runs == 2160
    project, target = civicq_db.project()
    t0 = time.perf_counter()
    history = load_history(store, target.name)
    recent = recent_series(store, target.name, list(LIMITS), datetime.now(UTC) - timedelta(days=14))
    analysis = build_analysis(result, history, recent, read_listings(project, target, 10))
    html = render(analysis)
    elapsed = time.perf_counter() - t0
    assert history.runs == 2160 and "2160 recorded run(s)" in analysis.history_note
    assert len(html.encode()) < 2_000_000, len(html)
    assert len(json_text(analysis).encode()) < 2_000_000
    validate_analysis(json.loads(json_text(analysis)))
    assert "90.0 days" in markdown(analysis)
    assert elapsed < 3, elapsed  # the in-process part; bench/report.py times the whole command
    # Every chart is downsampled: no path has more than 120 points.
    for d in re.findall(r'<path d="([^"]+)"', html):
        assert len(re.findall(r"[ML]", d)) <= 120
    # The forecasts saw the synthetic growth: keys and xid ages are projected.
    assert any(fc.enough and fc.points > 100 for fc in analysis.forecasts)
    path = Path("/tmp/civicq-report-months.html")  # kept for a person to look at
    path.write_text(html)
    seen = visit(chromium, path, tmp_path / "profile", javascript=False)
    assert seen.errors == []
    Path("/tmp/civicq-report-months.png").write_bytes(seen.png)
    assert len(re.findall(r'<svg[^>]*class="chart"', seen.dom)) >= 3
