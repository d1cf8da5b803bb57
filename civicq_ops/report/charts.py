"""Charts as inline SVG, drawn here in Python: the report needs no script, no network and no
library at view time, prints well, and reads the same with JavaScript disabled.

A chart is a few `<path>` elements (one per series), axis labels in the series' unit, and a
`<title>` per series for a tooltip. Series are downsampled to at most MAX_POINTS before drawing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from civicq_ops.core.units import format_value

MAX_POINTS = 120
PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7b83", "#57606a")


@dataclass
class Line:
    label: str
    points: list[tuple[datetime, float]]
    dashed: bool = False


@dataclass
class Chart:
    title: str
    unit: str | None
    lines: list[Line] = field(default_factory=list)
    limit: float | None = None  # a horizontal rule (a hard limit)
    limit_label: str = ""

    @property
    def drawable(self) -> bool:
        return any(len(line.points) >= 2 for line in self.lines)


def thin(points: list[tuple[datetime, float]], max_points: int = MAX_POINTS) -> list[tuple[datetime, float]]:
    """At most max_points, keeping the first and last and each stretch's extreme (spikes survive)."""
    if len(points) <= max_points:
        return points
    size = len(points) / (max_points - 2)
    out = [points[0]]
    for i in range(max_points - 2):
        chunk = points[1 + int(i * size): 1 + int((i + 1) * size)] or [points[min(len(points) - 1, 1 + int(i * size))]]
        out.append(max(chunk, key=lambda p: p[1]))
    out.append(points[-1])
    return out


def _fmt(value: float, unit: str | None) -> str:
    return format_value(value, unit)


def render_chart(chart: Chart, width: int = 640, height: int = 220) -> str:
    """The chart as one <svg> element (empty of paths when there is nothing to draw)."""
    left, right, top, bottom = 78, 12, 26, 34
    lines = [Line(line.label, thin(line.points), line.dashed) for line in chart.lines if line.points]
    xs = [p[0].timestamp() for line in lines for p in line.points]
    ys = [p[1] for line in lines for p in line.points]
    if chart.limit is not None:
        ys.append(chart.limit)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(chart.title)}"><title>{escape(chart.title)}</title>'
            f'<text x="{left}" y="16" class="ct">{escape(chart.title)}</text>')
    if not xs:
        return head + f'<text x="{left}" y="{height // 2}" class="cn">no history yet</text></svg>'
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [head, f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="cf"/>']
    for frac in (0.0, 0.5, 1.0):
        yv = y0 + (y1 - y0) * frac
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" class="cg"/>'
                     f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" class="cy">{escape(_fmt(yv, chart.unit))}</text>')
    first, last = datetime.fromtimestamp(x0).astimezone(), datetime.fromtimestamp(x1).astimezone()
    stamp = "%Y-%m-%d %H:%M" if (x1 - x0) < 3 * 86400 else "%Y-%m-%d"
    parts.append(f'<text x="{left}" y="{height - 10}" class="cx">{first:{stamp}}</text>'
                 f'<text x="{left + pw}" y="{height - 10}" class="cx" text-anchor="end">{last:{stamp}}</text>')
    if chart.limit is not None:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(chart.limit):.1f}" y2="{sy(chart.limit):.1f}" '
                     f'class="cl"/><text x="{left + pw - 4}" y="{sy(chart.limit) - 4:.1f}" class="cx" '
                     f'text-anchor="end">{escape(chart.limit_label)}</text>')
    for i, line in enumerate(lines):
        colour = PALETTE[i % len(PALETTE)]
        d = " ".join(f"{'M' if j == 0 else 'L'}{sx(t.timestamp()):.1f},{sy(v):.1f}" for j, (t, v) in enumerate(line.points))
        if len(line.points) == 1:
            x, y = sx(line.points[0][0].timestamp()), sy(line.points[0][1])
            d = f"M{x - 3:.1f},{y:.1f} L{x + 3:.1f},{y:.1f}"
        dash = ' stroke-dasharray="5 4"' if line.dashed else ""
        parts.append(f'<path d="{d}" stroke="{colour}" fill="none" stroke-width="1.8"{dash}>'
                     f'<title>{escape(line.label)}: {escape(_fmt(line.points[-1][1], chart.unit))}</title></path>')
    if len(lines) > 1 or (lines and lines[0].dashed):
        lx = left + 8
        for i, line in enumerate(lines[:8]):
            colour = PALETTE[i % len(PALETTE)]
            parts.append(f'<rect x="{lx}" y="{top + 6 + i * 14}" width="10" height="3" fill="{colour}"/>'
                         f'<text x="{lx + 14}" y="{top + 10 + i * 14}" class="cx">{escape(line.label[:48])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline(points: list[tuple[datetime, float]], width: int = 120, height: int = 24) -> str:
    """A small trend line for a table cell; an empty string with fewer than two points."""
    points = thin(points, 60)
    if len(points) < 2:
        return ""
    xs = [p[0].timestamp() for p in points]
    ys = [p[1] for p in points]
    x0, x1, y0, y1 = xs[0], xs[-1], min(ys), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    d = " ".join(f"{'M' if i == 0 else 'L'}{(x - x0) / (x1 - x0) * (width - 2) + 1:.1f},"
                 f"{height - 2 - (y - y0) / (y1 - y0) * (height - 4):.1f}" for i, (x, y) in enumerate(zip(xs, ys, strict=True)))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="trend"><path d="{d}" stroke="#1f6feb" '
            f'fill="none" stroke-width="1.2"/></svg>')
