"""CSV export and import through COPY: streamed, so tables larger than memory work."""

from __future__ import annotations

from pathlib import Path

from psycopg import sql

from civicq_ops.api.query import _table


def export_table_to_csv(conn, table: str, path: str | Path, columns: list[str] | None = None) -> int:
    """Write `table` (with a header row) to `path`; returns the number of bytes written."""
    cols = sql.SQL(" ({})").format(sql.SQL(", ").join(map(sql.Identifier, columns))) if columns else sql.SQL("")
    query = sql.SQL("COPY {}{} TO STDOUT WITH (FORMAT csv, HEADER true)").format(_table(table), cols)
    written = 0
    tmp = Path(str(path) + ".partial")
    with open(tmp, "wb") as f, conn.cursor() as cur, cur.copy(query) as copy:
        for block in copy:
            f.write(block)
            written += len(block)
    tmp.replace(path)
    return written


def import_csv_to_table(conn, table: str, path: str | Path) -> int:
    """Load a CSV with a header row naming the columns; returns the number of rows loaded."""
    with open(path, "rb") as f:
        header = f.readline().decode().strip()
        columns = [c.strip().strip('"') for c in header.split(",")]
        query = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            _table(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
        with conn.cursor() as cur:
            with cur.copy(query) as copy:
                while block := f.read(1 << 16):
                    copy.write(block)
            return cur.rowcount
