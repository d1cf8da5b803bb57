"""The seed's monitor and index commands as plain listings: every row, sortable, paged.

Each listing is one read-only SELECT whose columns are known in advance. Sorting and paging wrap
it (`SELECT * FROM (listing) l ORDER BY <column> LIMIT %s OFFSET %s`): the sort column is checked
against the listing's own columns and quoted with psycopg.sql.Identifier, limit and offset are bind
parameters. No value from the command line is ever spliced into SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from civicq_ops.core.errors import ExecutionError, InputError, first_line


@dataclass(frozen=True)
class Listing:
    name: str
    title: str
    query: str
    columns: tuple[str, ...]
    default_sort: str
    descending: bool = True
    needs_extension: str | None = None


@dataclass
class Page:
    """Rows of one listing: `total` counts every row, `rows` holds this page only."""

    listing: str
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    offset: int = 0
    sort: str = ""
    descending: bool = True
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"listing": self.listing, "total": self.total, "offset": self.offset, "sort": self.sort,
                "descending": self.descending, "columns": self.columns, "rows": self.rows}


_CONNECTIONS = """
SELECT a.pid, a.datname, a.usename, a.application_name, host(a.client_addr) AS client_addr, a.backend_type,
       a.state, a.wait_event_type, a.wait_event,
       extract(epoch FROM now() - a.backend_start)::float8 AS connected_s,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_s,
       extract(epoch FROM now() - a.query_start)::float8 AS query_s,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
"""

_LOCKS = """
SELECT l.pid, a.usename, l.locktype, CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
       l.mode, l.granted, cardinality(pg_blocking_pids(l.pid)) AS blocked_by_count,
       array_to_string(pg_blocking_pids(l.pid), ',') AS blocked_by,
       extract(epoch FROM now() - a.query_start)::float8 AS query_s,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.pid <> pg_backend_pid()
"""

_SLOW_QUERIES = """
SELECT s.queryid::text AS queryid, r.rolname AS usename, s.calls, s.total_exec_time::float8 AS total_ms,
       s.mean_exec_time::float8 AS mean_ms, s.max_exec_time::float8 AS max_ms, s.rows,
       s.shared_blks_hit::float8 / nullif(s.shared_blks_hit + s.shared_blks_read, 0) AS hit_ratio,
       s.temp_blks_written, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 300) AS query
FROM pg_stat_statements s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

_CACHE = """
SELECT t.schemaname, t.relname, t.heap_blks_read, t.heap_blks_hit,
       t.heap_blks_hit::float8 / nullif(t.heap_blks_hit + t.heap_blks_read, 0) AS heap_hit_ratio,
       t.idx_blks_read, t.idx_blks_hit,
       t.idx_blks_hit::float8 / nullif(t.idx_blks_hit + t.idx_blks_read, 0) AS index_hit_ratio,
       t.toast_blks_read, t.toast_blks_hit
FROM pg_statio_user_tables t
"""

_BLOAT = """
SELECT s.schemaname, s.relname, pg_relation_size(s.relid) AS table_bytes, s.n_live_tup, s.n_dead_tup,
       s.n_dead_tup::float8 / nullif(s.n_live_tup + s.n_dead_tup, 0) AS dead_ratio,
       (pg_relation_size(s.relid) * coalesce(s.n_dead_tup::float8 / nullif(s.n_live_tup + s.n_dead_tup, 0), 0))::bigint
         AS dead_bytes_estimate,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum
FROM pg_stat_user_tables s
"""

_INDEXES = """
SELECT s.schemaname, s.relname AS tablename, s.indexrelname AS indexname, pg_relation_size(s.indexrelid) AS size_bytes,
       s.idx_scan, s.idx_tup_read, i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
       i.indpred IS NOT NULL AS is_partial, pg_get_indexdef(s.indexrelid) AS definition
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
"""

_INDEX_USAGE = """
SELECT s.schemaname, s.relname, s.seq_scan, s.seq_tup_read, coalesce(s.idx_scan, 0) AS idx_scan,
       coalesce(s.idx_scan, 0)::float8 / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0) AS index_use_ratio,
       s.n_live_tup, pg_relation_size(s.relid) AS table_bytes,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid) AS index_count
FROM pg_stat_user_tables s
"""

# The trigger point per table follows autovacuum's own rule (threshold + scale_factor x reltuples),
# with a table's reloptions taking precedence over the server settings.
_AUTOVACUUM = """
WITH t AS (
  SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze, s.last_autovacuum,
         s.last_autoanalyze, s.autovacuum_count, s.autoanalyze_count, c.reltuples, c.reloptions,
         coalesce((SELECT split_part(o, '=', 2)::float8 FROM unnest(c.reloptions) o
                   WHERE o LIKE 'autovacuum_vacuum_threshold=%'),
                  current_setting('autovacuum_vacuum_threshold')::float8) AS v_threshold,
         coalesce((SELECT split_part(o, '=', 2)::float8 FROM unnest(c.reloptions) o
                   WHERE o LIKE 'autovacuum_vacuum_scale_factor=%'),
                  current_setting('autovacuum_vacuum_scale_factor')::float8) AS v_scale,
         coalesce((SELECT split_part(o, '=', 2) FROM unnest(c.reloptions) o
                   WHERE o LIKE 'autovacuum_enabled=%'), 'on') AS enabled
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
)
SELECT schemaname, relname, enabled, n_live_tup, n_dead_tup,
       (v_threshold + v_scale * greatest(reltuples, 0))::bigint AS vacuum_trigger,
       n_dead_tup > v_threshold + v_scale * greatest(reltuples, 0) AS vacuum_due,
       n_mod_since_analyze, last_autovacuum, last_autoanalyze, autovacuum_count, autoanalyze_count,
       array_to_string(reloptions, ',') AS reloptions
FROM t
"""

_TABLE_STATS = """
SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_tup_hot_upd,
       s.seq_scan, coalesce(s.idx_scan, 0) AS idx_scan, pg_total_relation_size(s.relid) AS total_bytes,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum, greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze
FROM pg_stat_user_tables s
"""

_SIZES = """
SELECT n.nspname AS schemaname, c.relname,
       CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'm' THEN 'materialized view'
                      WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index' END AS kind,
       pg_total_relation_size(c.oid) AS total_bytes, pg_relation_size(c.oid) AS own_bytes,
       CASE WHEN c.relkind IN ('r', 'p', 'm') THEN pg_indexes_size(c.oid) END AS index_bytes,
       CASE WHEN c.reltoastrelid <> 0 THEN pg_total_relation_size(c.reltoastrelid) END AS toast_bytes,
       greatest(c.reltuples, 0)::bigint AS estimated_rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
"""


def _listing(name, title, query, columns, sort, descending=True, needs=None) -> Listing:
    return Listing(name, title, query, tuple(columns.split()), sort, descending, needs)


LISTINGS: dict[str, Listing] = {x.name: x for x in [
    _listing("connections", "Every server process and what it is doing", _CONNECTIONS,
             "pid datname usename application_name client_addr backend_type state wait_event_type wait_event "
             "connected_s xact_s query_s query", "xact_s"),
    _listing("locks", "Every lock held or awaited, with who blocks whom", _LOCKS,
             "pid usename locktype relation mode granted blocked_by_count blocked_by query_s query", "blocked_by_count"),
    _listing("slow-queries", "Statements of this database by total time (pg_stat_statements)", _SLOW_QUERIES,
             "queryid usename calls total_ms mean_ms max_ms rows hit_ratio temp_blks_written query", "total_ms",
             needs="pg_stat_statements"),
    _listing("cache", "Buffer cache hits per table (heap and indexes)", _CACHE,
             "schemaname relname heap_blks_read heap_blks_hit heap_hit_ratio idx_blks_read idx_blks_hit "
             "index_hit_ratio toast_blks_read toast_blks_hit", "heap_blks_read"),
    _listing("bloat", "Dead rows per table and the space they hold (estimate)", _BLOAT,
             "schemaname relname table_bytes n_live_tup n_dead_tup dead_ratio dead_bytes_estimate last_vacuum",
             "dead_bytes_estimate"),
    _listing("indexes", "Every index: size, scans, kind and definition", _INDEXES,
             "schemaname tablename indexname size_bytes idx_scan idx_tup_read is_unique is_primary is_valid "
             "is_partial definition", "size_bytes"),
    _listing("index-usage", "Sequential against index scans per table (where indexes may be missing)", _INDEX_USAGE,
             "schemaname relname seq_scan seq_tup_read idx_scan index_use_ratio n_live_tup table_bytes index_count",
             "seq_tup_read"),
    _listing("autovacuum", "Autovacuum per table: dead rows against the trigger point", _AUTOVACUUM,
             "schemaname relname enabled n_live_tup n_dead_tup vacuum_trigger vacuum_due n_mod_since_analyze "
             "last_autovacuum last_autoanalyze autovacuum_count autoanalyze_count reloptions", "n_dead_tup"),
    _listing("table-stats", "Row counts, writes and scans per table", _TABLE_STATS,
             "schemaname relname n_live_tup n_dead_tup n_tup_ins n_tup_upd n_tup_del n_tup_hot_upd seq_scan idx_scan "
             "total_bytes last_vacuum last_analyze", "total_bytes"),
    _listing("sizes", "Tables, materialized views and indexes by size", _SIZES,
             "schemaname relname kind total_bytes own_bytes index_bytes toast_bytes estimated_rows", "total_bytes"),
]}


def listing(name: str) -> Listing:
    if name not in LISTINGS:
        raise InputError(f"unknown listing '{name}' (choose from {', '.join(LISTINGS)})")
    return LISTINGS[name]


def page_query(item: Listing, sort: str | None, descending: bool | None) -> tuple[sql.Composed, str, bool]:
    """The listing wrapped with ORDER BY the (checked, quoted) column, LIMIT and OFFSET placeholders."""
    column = sort or item.default_sort
    if column not in item.columns:
        raise InputError(f"--sort: listing '{item.name}' has no column '{column}' (it has: {', '.join(item.columns)})")
    desc = item.descending if descending is None else descending
    direction = sql.SQL("DESC NULLS LAST" if desc else "ASC NULLS LAST")
    # The listing's text is a constant of this module; %% keeps its literal percent signs.
    body = sql.SQL(item.query.replace("%", "%%"))
    tie = sql.Identifier(item.columns[0])
    query = sql.SQL("SELECT *, count(*) OVER () AS total_rows FROM ({}) AS listing ORDER BY {} {}, {} "
                    "LIMIT %(limit)s OFFSET %(offset)s").format(body, sql.Identifier(column), direction, tie)
    return query, column, desc


def fetch(conn, name: str, *, sort: str | None = None, descending: bool | None = None, limit: int | None = None,
          offset: int = 0) -> Page:
    """Run one listing on an open connection (read-only transaction, short lock_timeout)."""
    import psycopg

    from civicq_ops.engine.findings import jsonable

    item = listing(name)
    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1")
    if offset < 0:
        raise InputError("--offset must not be negative")
    query, column, desc = page_query(item, sort, descending)
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SELECT set_config('lock_timeout', '1000ms', true), set_config('statement_timeout', '30s', true)")
            if item.needs_extension and not conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s",
                                                         (item.needs_extension,)).fetchone():
                raise ExecutionError(f"listing '{name}' needs the {item.needs_extension} extension in database "
                                     f"'{conn.info.dbname}' (CREATE EXTENSION {item.needs_extension}; it must be in "
                                     "shared_preload_libraries)")
            cur = conn.execute(query, {"limit": limit, "offset": offset})
            names = [d.name for d in cur.description or []]
            raw = cur.fetchall()
    except psycopg.Error as e:
        raise ExecutionError(f"listing '{name}' failed: {first_line(e)}") from e
    rows = [{k: jsonable(v) for k, v in zip(names, r, strict=True) if k != "total_rows"} for r in raw]
    total = int(raw[0][-1]) if raw else _count_without_page(conn, item) if offset else 0
    return Page(listing=name, columns=list(item.columns), rows=rows, total=total, offset=offset, sort=column,
                descending=desc)


def _count_without_page(conn, item: Listing) -> int:
    """An offset past the end returns no rows (and so no window count): count separately."""
    body = sql.SQL(item.query.replace("%", "%%"))
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        row = conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS listing").format(body)).fetchone()
    return int(row[0]) if row else 0


def inspect_target(project, target, name: str, *, sort: str | None = None, descending: bool | None = None,
                   limit: int | None = None, offset: int = 0) -> Page:
    """Connect to a target and fetch one page of a listing (what `civicq-ops inspect NAME` prints)."""
    from civicq_ops.postgres.connect import connect

    listing(name)  # an unknown name is an input error before any connection
    if sort is not None and not sort.strip():
        raise InputError("--sort needs a column name (see the listing's columns)")
    with connect(project, target) as conn:
        return fetch(conn, name, sort=sort, descending=descending, limit=limit, offset=offset)
