"""A plain-text table for the terminal: cells are text and stay text.

tabulate guesses numbers in cells, and 0.10 crashes on grouped ones ("5,000") once columns are
wrapped; a report only ever holds preformatted text, so the table here never parses a cell.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Callable, Sequence


def width(text: str) -> int:
    """Columns a string takes on a terminal: wide East Asian characters take two, combining ones none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrap(text: str, limit: int | None) -> list[str]:
    lines = text.split("\n") or [""]
    if not limit:
        return lines
    out = []
    for line in lines:
        out += textwrap.wrap(line, limit, break_on_hyphens=False) or [""]
    return out


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], limits: Sequence[int | None] = (),
                 style: Callable[[int, int, str], str] | None = None) -> str:
    """Rows of text under headers, each column wrapped to its limit (None: no limit).

    `style(row, col, padded_text)` may decorate a cell (colour) after padding, so escapes never
    count towards a column's width.
    """
    limits = list(limits) + [None] * (len(headers) - len(limits))
    cells = [[_wrap(str(c), limits[i]) for i, c in enumerate(row)] for row in rows]
    widths = [max([width(h)] + [width(line) for row in cells for line in row[i]]) for i, h in enumerate(headers)]

    def pad(text: str, i: int) -> str:
        return text + " " * (widths[i] - width(text))

    out = ["  ".join(pad(h, i) for i, h in enumerate(headers)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r, row in enumerate(cells):
        for k in range(max(len(lines) for lines in row)):
            parts = []
            for i, lines in enumerate(row):
                text = pad(lines[k] if k < len(lines) else "", i)
                parts.append(style(r, i, text) if style and k == 0 else text)
            out.append("  ".join(parts).rstrip())
    return "\n".join(out)
