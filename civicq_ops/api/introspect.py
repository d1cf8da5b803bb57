"""Schema introspection from the catalogs (the seed's get_table_* functions)."""

from __future__ import annotations

from typing import Any

from civicq_ops.api.query import execute_raw_query


def get_table_names(conn, schema: str = "public") -> list[str]:
    rows = execute_raw_query(conn, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                   "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1", (schema,))
    return [r["relname"] for r in rows]


def get_table_columns(conn, table: str, schema: str = "public") -> list[dict[str, Any]]:
    return execute_raw_query(conn, """
        SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
               pg_get_expr(d.adbin, d.adrelid) AS default
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum""", (schema, table))


def get_table_indexes(conn, table: str, schema: str = "public") -> list[dict[str, Any]]:
    return execute_raw_query(conn, """
        SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition, x.indisunique AS unique,
               x.indisprimary AS primary, x.indisvalid AS valid, pg_relation_size(i.oid) AS size_bytes
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s ORDER BY 1""", (schema, table))


def get_foreign_keys(conn, table: str, schema: str = "public") -> list[dict[str, Any]]:
    return execute_raw_query(conn, """
        SELECT k.conname AS name, pg_get_constraintdef(k.oid) AS definition,
               k.confrelid::regclass::text AS references
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND n.nspname = %s AND c.relname = %s ORDER BY 1""", (schema, table))


def get_table_stats(conn, schema: str = "public") -> list[dict[str, Any]]:
    """Rows, dead rows, sizes, scans and maintenance times per table."""
    return execute_raw_query(conn, """
        SELECT relname AS table, n_live_tup AS live_rows, n_dead_tup AS dead_rows, seq_scan, idx_scan,
               pg_total_relation_size(relid) AS total_bytes, last_vacuum, last_autovacuum, last_analyze,
               last_autoanalyze
        FROM pg_stat_user_tables WHERE schemaname = %s ORDER BY total_bytes DESC""", (schema,))


def get_database_size(conn) -> int:
    return execute_raw_query(conn, "SELECT pg_database_size(current_database()) AS size")[0]["size"]
