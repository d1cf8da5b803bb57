"""Forecasts: when a value that only grows (a key, a sequence, xid and multixact age, disk use) will
reach its hard limit, from the recent history of its finding.

The fit is Theil-Sen (the median of the slopes between every pair of points): one vacuum that
drops xid age or one bulk load does not swing it the way least squares would. The spread of the
pairwise slopes (their 10th and 90th percentiles) gives the range stated in the confidence note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from civicq_ops.engine.findings import Finding

# The hard limit of each forecast source, in the unit of its finding's value.
WRAPAROUND = 2**31 - 1  # xid and multixact age where PostgreSQL stops assigning (minus a small reserve)
LIMITS: dict[str, tuple[float, str]] = {
    "sequence-exhaustion": (1.0, "the sequence reaches the largest value its column holds"),
    "integer-key-capacity": (1.0, "the key reaches the largest value of its integer type"),
    "database-xid-age": (WRAPAROUND, "transaction id wraparound: PostgreSQL stops accepting writes"),
    "table-xid-age": (WRAPAROUND, "transaction id wraparound: PostgreSQL stops accepting writes"),
    "database-multixact-age": (WRAPAROUND, "multixact wraparound: PostgreSQL stops accepting writes"),
    "table-multixact-age": (WRAPAROUND, "multixact wraparound: PostgreSQL stops accepting writes"),
    "disk-usage": (1.0, "the data directory's filesystem is full"),
}

MIN_POINTS = 5
MAX_PAIRS_POINTS = 240  # the fit is O(n^2): evenly thinned beyond this


SOON_S = 10 * 365 * 86400  # forecasts further out than this are listed apart, as "nothing in sight"


@dataclass
class Horizon:
    """Forecasts closer than these are findings: `critical` first, then `warning`."""

    warning_s: float = 90 * 86400
    critical_s: float = 30 * 86400
    window_s: float = 14 * 86400


@dataclass
class Forecast:
    finding_id: str
    check: str
    target: str
    subject: dict | None
    limit: float
    limit_note: str
    points: int
    window_s: float = 0.0
    current: float | None = None
    slope_per_day: float | None = None
    eta: datetime | None = None
    seconds_left: float | None = None
    seconds_left_range: tuple[float | None, float | None] = (None, None)
    confidence: str = "low"
    note: str = ""
    fitted: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, value): the fit line to the limit

    @property
    def enough(self) -> bool:
        return self.slope_per_day is not None

    @property
    def soon(self) -> bool:
        """Runs out within SOON_S: worth a row of its own in the report."""
        return self.seconds_left is not None and self.seconds_left < SOON_S

    def to_dict(self) -> dict:
        return {"finding_id": self.finding_id, "check": self.check, "target": self.target, "subject": self.subject,
                "limit": self.limit, "limit_note": self.limit_note, "points": self.points, "window_s": self.window_s,
                "current": self.current, "slope_per_day": self.slope_per_day,
                "eta": self.eta.isoformat() if self.eta else None, "seconds_left": self.seconds_left,
                "seconds_left_range": list(self.seconds_left_range), "confidence": self.confidence, "note": self.note}


def theil_sen(xs: list[float], ys: list[float]) -> tuple[float, float, float, float]:
    """(slope, intercept, slope at the 10th percentile, slope at the 90th) of the pairwise slopes."""
    n = len(xs)
    if n > MAX_PAIRS_POINTS:
        step = (n - 1) / (MAX_PAIRS_POINTS - 1)
        keep = sorted({round(i * step) for i in range(MAX_PAIRS_POINTS)})
        xs, ys, n = [xs[i] for i in keep], [ys[i] for i in keep], len(keep)
    slopes = sorted((ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(n) for j in range(i + 1, n) if xs[j] != xs[i])
    if not slopes:
        raise ValueError("all points share one time")
    slope = _quantile(slopes, 0.5)
    intercept = _quantile(sorted(y - slope * x for x, y in zip(xs, ys, strict=True)), 0.5)
    return slope, intercept, _quantile(slopes, 0.1), _quantile(slopes, 0.9)


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def forecast(finding_id: str, check: str, target: str, subject: dict | None, points: list[tuple[float, float]],
             now: float, window_s: float) -> Forecast:
    """Fit the points (epoch seconds, value) of the last `window_s` and project them to the check's limit."""
    limit, note = LIMITS[check]
    recent = sorted(p for p in points if p[0] >= now - window_s)
    fc = Forecast(finding_id, check, target, subject, limit, note, points=len(recent), window_s=window_s,
                  current=recent[-1][1] if recent else None)
    if len(recent) < MIN_POINTS or recent[-1][0] - recent[0][0] <= 0:
        fc.note = f"not enough history: {len(recent)} point(s) in the window, {MIN_POINTS} needed"
        return fc
    xs = [p[0] for p in recent]
    ys = [p[1] for p in recent]
    slope, intercept, lo, hi = theil_sen(xs, ys)
    fc.slope_per_day = slope * 86400
    span = xs[-1] - xs[0]
    if slope <= 0:
        fc.confidence = "high" if len(recent) >= 10 else "low"
        fc.note = f"not growing over {len(recent)} points in {_span(span)} (Theil-Sen slope {fc.slope_per_day:.3g}/day)"
        return fc
    last_x = xs[-1]
    fitted_now = slope * last_x + intercept
    left = max(0.0, (limit - fitted_now) / slope)
    fc.seconds_left = left
    # Beyond a millennium the date means nothing (and overflows time_t): keep only the duration.
    fc.eta = datetime.fromtimestamp(last_x + left).astimezone() if left < 1000 * 365 * 86400 else None
    fc.seconds_left_range = (
        max(0.0, (limit - fitted_now) / hi) if hi > 0 else None,
        max(0.0, (limit - fitted_now) / lo) if lo > 0 else None,
    )
    spread_wide = lo <= 0 or hi / lo > 2
    fc.confidence = "high" if len(recent) >= 10 and not spread_wide and left <= span * 20 else "low"
    fc.note = (f"Theil-Sen over {len(recent)} points in {_span(span)}; 80% of pairwise slopes put it between "
               f"{_span(fc.seconds_left_range[0])} and {_span(fc.seconds_left_range[1])}")
    if span * 20 < left < 100 * 365 * 86400:
        fc.note += f"; a projection {left / span:.0f}x longer than the history behind it"
    fc.fitted = [(xs[0], slope * xs[0] + intercept), (last_x + left, limit)]
    return fc


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "never (not growing)"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 100 * 365 * 86400:
        return "more than 100 years"
    return f"{seconds / (365 * 86400):.1f} years"


def forecast_finding(fc: Forecast, horizon: Horizon) -> Finding:
    """A forecast as a finding: critical or warning when the limit is nearer than the horizon."""
    subject = {"check": fc.check, **(fc.subject or {})}
    what = ".".join(str(v) for v in (fc.subject or {}).values()) or fc.target
    status = "ok"
    if fc.seconds_left is not None:
        if fc.seconds_left < horizon.critical_s:
            status = "critical"
        elif fc.seconds_left < horizon.warning_s:
            status = "warning"
    if fc.seconds_left is not None:
        message = f"{what}: {fc.limit_note} in about {_span(fc.seconds_left)} ({fc.note})"
    else:
        message = f"{what}: {fc.note}"
    return Finding(check="forecast-exhaustion", category="forecast", target=fc.target, subject=subject, status=status,
                   title="Time to exhaustion (forecast)", value=fc.seconds_left, unit="seconds",
                   threshold={"critical": {"lt": horizon.critical_s}, "warning": {"lt": horizon.warning_s}},
                   confidence=fc.confidence, confidence_reason=None if fc.confidence == "high" else fc.note,
                   message=message, evidence=fc.to_dict(),
                   recommendation=(f"{what} runs out ({fc.limit_note}) around {fc.eta:%Y-%m-%d %H:%M %Z}: "
                                   f"act before then (see {fc.check})") if fc.eta and status != "ok" else None)


def eta_text(fc: Forecast) -> str:
    if fc.seconds_left is None:
        return fc.note
    if fc.eta is None:
        return _span(fc.seconds_left)
    return f"{_span(fc.seconds_left)} (around {fc.eta:%Y-%m-%d %H:%M})"


def horizon_from(section: dict) -> Horizon:
    """`report: {forecast: {window: 14d, warning: 90d, critical: 30d}}` from civicq-ops.yaml."""
    from civicq_ops.core.errors import ConfigError
    from civicq_ops.core.units import parse_duration

    raw = section.get("forecast") or {}
    h = Horizon()
    try:
        for key, attr in (("window", "window_s"), ("warning", "warning_s"), ("critical", "critical_s")):
            if key in raw:
                setattr(h, attr, parse_duration(raw[key]))
    except ValueError as e:
        raise ConfigError(f"civicq-ops.yaml: report.forecast: {e}") from e
    if h.critical_s > h.warning_s:
        raise ConfigError("civicq-ops.yaml: report.forecast: critical must not be longer than warning")
    return h
