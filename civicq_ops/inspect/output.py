"""A page of a listing as text (a table), JSON or CSV."""

from __future__ import annotations

import csv
import io
import json

from civicq_ops.core.errors import InputError
from civicq_ops.core.units import format_bytes, format_duration
from civicq_ops.inspect.listings import Page

FORMATS = ("text", "json", "csv")


def render_page(page: Page, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(page.to_dict(), indent=2, default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=page.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(page.rows)
        return buf.getvalue()
    if fmt == "text":
        return _text(page)
    raise InputError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")


def _cell(column: str, value) -> str:
    """Readable units in the terminal; JSON and CSV keep the raw numbers."""
    if value is None:
        return ""
    if column.endswith("_bytes") and isinstance(value, (int, float)):
        return format_bytes(value)
    if column.endswith("_s") and isinstance(value, (int, float)):
        return format_duration(value)
    if column.endswith("_ratio") and isinstance(value, (int, float)):
        return f"{value * 100:.1f}%"
    if column.endswith("_ms") and isinstance(value, (int, float)):
        return f"{value:,.1f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _text(page: Page) -> str:
    from tabulate import tabulate

    rows = [[_cell(c, r.get(c)) for c in page.columns] for r in page.rows]
    table = tabulate(rows, headers=page.columns, tablefmt="simple", maxcolwidths=60, disable_numparse=True)
    order = "descending" if page.descending else "ascending"
    if page.rows:
        footer = (f"rows {page.offset + 1}-{page.offset + len(page.rows)} of {page.total}, "
                  f"sorted by {page.sort} ({order})")
    else:
        footer = f"no rows (of {page.total})"
    return (table + "\n" if page.rows else "") + footer + "\n"
