"""The analysis report (the seed's analyze): one run of the checks, plain listings of the server,
the state store's history and the forecasts drawn from it, arranged in the sections a DBA reads.

`analyze()` is the one library call behind `civicq-ops report`; `build_analysis()` is the pure
part (no database), which the HTML, Markdown and JSON renderers all read, so the three say the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.core.units import format_value
from civicq_ops.engine.findings import Finding, Summary
from civicq_ops.engine.run import RunResult, decide_exit, gate_failures
from civicq_ops.inspect.listings import Page
from civicq_ops.report.advice import Recommendation, recommendations
from civicq_ops.report.charts import Chart, Line
from civicq_ops.report.forecast import LIMITS, WRAPAROUND, Forecast, Horizon, forecast, forecast_finding
from civicq_ops.report.history import History, Series

FORMAT_VERSION = "1.0"

# (key, title, categories): every category not named lands in "other".
SECTIONS = [
    ("sizes", "Sizes", ("space",)),
    ("cache", "Cache", ("cache",)),
    ("indexes", "Indexes", ("indexes",)),
    ("bloat", "Bloat", ("bloat",)),
    ("vacuum", "Vacuum and freezing", ("vacuum",)),
    ("connections", "Connections and locks", ("connections", "locks")),
    ("queries", "Queries", ("queries",)),
    ("replication", "Replication", ("replication",)),
    ("backups", "Backups", ("backup",)),
    ("capacity", "Capacity and forecasts", ("sequences", "forecast")),
    ("other", "Other checks", ()),
]

# Listings shown in a section: (section, listing, title, row filter, rows shown, columns).
_TABLE_KINDS = ("table", "partitioned table", "materialized view")
LISTING_VIEWS = [
    ("sizes", "sizes", "Largest tables", lambda r: r.get("kind") in _TABLE_KINDS, 10,
     ["schemaname", "relname", "kind", "total_bytes", "own_bytes", "index_bytes", "toast_bytes", "estimated_rows"]),
    ("sizes", "sizes", "Largest indexes", lambda r: r.get("kind") not in _TABLE_KINDS, 10,
     ["schemaname", "relname", "total_bytes", "estimated_rows"]),
    ("cache", "cache", "Tables reading the most blocks from disk", None, 10,
     ["schemaname", "relname", "heap_blks_read", "heap_blks_hit", "heap_hit_ratio", "index_hit_ratio"]),
    ("bloat", "bloat", "Dead rows per table", None, 10,
     ["schemaname", "relname", "table_bytes", "n_dead_tup", "dead_ratio", "dead_bytes_estimate", "last_vacuum"]),
    ("vacuum", "autovacuum", "Autovacuum: dead rows against the trigger point", None, 10,
     ["schemaname", "relname", "n_dead_tup", "vacuum_trigger", "vacuum_due", "last_autovacuum", "last_autoanalyze"]),
    ("connections", "connections", "Server processes", None, 20,
     ["pid", "usename", "application_name", "backend_type", "state", "wait_event", "xact_s", "query"]),
    ("queries", "slow-queries", "Top statements by total time (pg_stat_statements)", None, None,
     ["queryid", "calls", "total_ms", "mean_ms", "rows", "hit_ratio", "query"]),
]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list]  # raw values; renderers format them by column name
    note: str = ""
    total: int | None = None

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note, "total": self.total}


@dataclass
class Section:
    key: str
    title: str
    findings: list[Finding] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def worst(self) -> str:
        return max((f.status for f in self.findings), key=lambda s: SEVERITY[s], default="ok")


@dataclass
class Analysis:
    generated_at: datetime
    target: str
    server_version: str | None
    result: RunResult
    recommendations: list[Recommendation]
    sections: list[Section]
    forecasts: list[Forecast]
    history: History
    trends: dict[str, list[tuple[datetime, float]]]  # finding id -> points (each finding's value over time)
    history_note: str

    @property
    def summary(self) -> Summary:
        return self.result.summary

    @property
    def gate(self) -> str:
        return {0: "passed", 1: "failed", 3: "could not run every check"}.get(self.result.exit_code, "?")


def history_note(history: History) -> str:
    if history.empty:
        return ("no history yet: this is the first recorded run, so there are no trends or forecasts "
                "(each `run checks` or `report` adds one)")
    span = (history.last - history.first) if history.first and history.last else timedelta()
    return (f"{history.runs} recorded run(s) from {history.first:%Y-%m-%d %H:%M} to {history.last:%Y-%m-%d %H:%M} UTC "
            f"({_days(span)}), one point per {history.bucket} in the charts")


def _days(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours" if hours >= 1 else f"{span.total_seconds():.0f} s"


def make_forecasts(result: RunResult, recent: dict[str, Series], horizon: Horizon, now: datetime) -> list[Forecast]:
    """One forecast per finding of a forecast source (current findings only: a dropped sequence is not forecast)."""
    current = {f.id: f for f in result.findings if f.check in LIMITS and f.status not in ("error", "skipped")}
    out = []
    for fid, f in current.items():
        series = recent.get(fid)
        points = [(t.timestamp(), v) for t, v in series.points] if series else []
        out.append(forecast(fid, f.check, f.target, f.subject, points, now.timestamp(), horizon.window_s))
    out.sort(key=lambda fc: (fc.seconds_left is None, fc.seconds_left or 0, fc.check))
    return out


def _section_of(category: str) -> str:
    for key, _title, cats in SECTIONS:
        if category in cats:
            return key
    return "other"


def _top_series(series: list[Series], n: int) -> list[Series]:
    return sorted(series, key=lambda s: -(s.points[-1][1] if s.points else 0))[:n]


def _charts(history: History, forecasts: list[Forecast], horizon_s: float) -> dict[str, list[Chart]]:
    charts: dict[str, list[Chart]] = {"sizes": [], "vacuum": [], "capacity": []}
    db = history.of_check("database-size")
    charts["sizes"].append(Chart("Database size", "bytes", [Line(s.label, s.points) for s in db]))
    tables = _top_series(history.of_check("largest-tables"), 6)
    charts["sizes"].append(Chart("Growth of the largest tables (with indexes and TOAST)", "bytes",
                                 [Line(s.label, s.points) for s in tables]))
    xid = _top_series(history.of_check("database-xid-age"), 6)
    charts["vacuum"].append(Chart("Transaction id age per database (wraparound at 2.1 billion)", "xids",
                                  [Line(s.label, s.points) for s in xid]))
    mxid = _top_series(history.of_check("database-multixact-age"), 6)
    if mxid:
        charts["vacuum"].append(Chart("Multixact age per database", "xids", [Line(s.label, s.points) for s in mxid]))
    for fc in forecasts:
        series = history.series.get(fc.finding_id)
        if not fc.enough or fc.seconds_left is None or series is None or len(series.points) < 2:
            continue
        # Drawn only where the projection is near enough to read on the same axis as the history.
        span = (series.points[-1][0] - series.points[0][0]).total_seconds()
        if fc.seconds_left > max(3 * span, 0) and fc.seconds_left > horizon_s:
            continue
        unit = "xids" if fc.limit == WRAPAROUND else "ratio"
        fitted = [(datetime.fromtimestamp(x, UTC), y) for x, y in fc.fitted]
        label = ".".join(str(v) for v in (fc.subject or {}).values()) or fc.target
        charts["capacity"].append(Chart(f"{fc.check}: {label}, projected to its limit", unit,
                                        [Line("measured", series.points), Line("Theil-Sen fit", fitted, dashed=True)],
                                        limit=fc.limit, limit_label="limit"))
    return charts


def _problem_charts(findings: list[Finding], history: History, cap: int = 40) -> dict[str, list[Chart]]:
    """A full chart of each warning or critical finding that has history (the sparklines cover the rest)."""
    out: dict[str, list[Chart]] = {}
    shown = 0
    for f in sorted(findings, key=lambda f: -SEVERITY[f.status]):
        series = history.series.get(f.id)
        if f.status not in ("warning", "critical") or series is None or len(series.points) < 2 or shown >= cap:
            continue
        title = f"{f.check}: {f.subject_text() if f.subject else f.target}"
        out.setdefault(_section_of(f.category), []).append(Chart(title, f.unit, [Line(series.label, series.points)]))
        shown += 1
    return out


def _listing_tables(listings: dict[str, Page | str]) -> dict[str, list[Table]]:
    out: dict[str, list[Table]] = {}
    for section, name, title, keep, count, cols in LISTING_VIEWS:
        page = listings.get(name)
        if page is None:
            continue
        if isinstance(page, str):  # the listing could not run: say why
            out.setdefault(section, []).append(Table(title, [], [], note=page))
            continue
        rows = [r for r in page.rows if keep is None or keep(r)]
        shown = rows if count is None else rows[:count]
        out.setdefault(section, []).append(Table(title, cols, [[r.get(c) for c in cols] for r in shown],
                                                 total=len(rows), note=f"`civicq-ops inspect {name}` lists every row"))
    return out


def build_analysis(result: RunResult, history: History, recent: dict[str, Series], listings: dict[str, Page | str],
                   horizon: Horizon | None = None, now: datetime | None = None) -> Analysis:
    """Arrange a run, its listings and its history into the report (pure: no database)."""
    horizon = horizon or Horizon()
    now = now or datetime.now(UTC)
    forecasts = make_forecasts(result, recent, horizon, now)
    result.findings = [f for f in result.findings if f.check != "forecast-exhaustion"]
    result.findings += [forecast_finding(fc, horizon) for fc in forecasts]
    result.gate_failures = gate_failures(result.findings, result.fail_on, None)
    result.exit_code = decide_exit(result)
    target = result.targets[0] if result.targets else None
    major = int(target.server_version.split(".")[0]) if target and target.server_version else 18
    sections = {key: Section(key, title) for key, title, _cats in SECTIONS}
    for f in result.findings:
        sections[_section_of(f.category)].findings.append(f)
    for key, charts in _charts(history, forecasts, horizon.warning_s).items():
        sections[key].charts += [c for c in charts if c.lines]
    for key, charts in _problem_charts(result.findings, history).items():
        sections[key].charts += charts
    for key, tables in _listing_tables(listings).items():
        sections[key].tables += tables
    if not any(fc.enough for fc in forecasts):
        sections["capacity"].notes.append(
            "not enough history for a forecast yet: each needs at least 5 recorded runs in the last "
            f"{horizon.window_s / 86400:g} days")
    trends = {fid: s.points for fid, s in history.series.items() if len(s.points) >= 2}
    return Analysis(generated_at=now, target=target.name if target else "", server_version=target.server_version
                    if target else None, result=result, recommendations=recommendations(result.findings, major, result.checks),
                    sections=[s for s in sections.values() if s.findings or s.tables or s.charts],
                    forecasts=forecasts, history=history, trends=trends, history_note=history_note(history))


def analyze(project, target, catalog, *, fail_on: str = "critical", horizon: Horizon | None = None,
            top: int = 10, store=None, record: bool = True, progress=None) -> Analysis:
    """Run every check on one target, record the run, read the listings and the history, and build the report."""
    from civicq_ops.engine.run import RunOptions, Selection, run_checks
    from civicq_ops.facts import default_providers
    from civicq_ops.report.history import load_history, recent_series

    horizon = horizon or Horizon()
    result = run_checks(project, [target], catalog, Selection(), RunOptions(fail_on=fail_on, facts=default_providers(project)),
                         progress=progress)
    if store is not None and record:
        from civicq_ops.report.history import TRENDED

        store.record_run(result, keep_ok=TRENDED)
    listings = read_listings(project, target, top)
    if store is not None:
        history = load_history(store, target.name)
        since = datetime.now(UTC) - timedelta(seconds=horizon.window_s)
        recent = recent_series(store, target.name, list(LIMITS), since)
    else:
        history, recent = History(target.name, 0, None, None, "run"), {}
    return build_analysis(result, history, recent, listings, horizon)


def read_listings(project, target, top: int) -> dict[str, Page | str]:
    """The listings the sections show; one that fails becomes its reason (a note), never the report's failure."""
    from civicq_ops.core.errors import CivicqError
    from civicq_ops.inspect.listings import fetch
    from civicq_ops.postgres.connect import connect

    out: dict[str, Page | str] = {}
    try:
        conn = connect(project, target)
    except CivicqError as e:
        return {name: e.message for _s, name, *_ in LISTING_VIEWS}
    with conn:
        for name in dict.fromkeys(name for _s, name, *_ in LISTING_VIEWS):
            limit = top if name == "slow-queries" else 200
            try:
                out[name] = fetch(conn, name, limit=limit)
            except CivicqError as e:
                out[name] = e.message
    return out


def cell(column: str, value) -> str:
    """A listing or finding value as a person reads it (shared by the HTML and Markdown renderers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        for suffix, unit in (("_bytes", "bytes"), ("_s", "seconds"), ("_ratio", "ratio")):
            if column.endswith(suffix):
                return format_value(value, unit)
        if column.endswith("_ms"):
            return f"{value:,.1f} ms"
        return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    return str(value)
