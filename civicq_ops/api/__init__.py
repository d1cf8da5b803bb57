"""The seed's Python API (utils.py and monitoring.py) for applications: sessions, raw queries,
bulk insert and update, schema introspection, CSV export and import, query timing, health.

Every identifier goes through psycopg.sql.Identifier and every value is a bind parameter.
The inspections the seed offered as functions (unused and missing indexes, slow queries, blocking,
cache ratios, bloat...) are checks of the catalogue; `run_check` returns their rows here.
"""

from civicq_ops.api.csvio import export_table_to_csv, import_csv_to_table
from civicq_ops.api.health import health_check, run_check
from civicq_ops.api.introspect import (
    get_database_size,
    get_foreign_keys,
    get_table_columns,
    get_table_indexes,
    get_table_names,
    get_table_stats,
)
from civicq_ops.api.monitor import DatabaseMonitor
from civicq_ops.api.pool import get_pool, pool_stats, pooled_session
from civicq_ops.api.query import bulk_insert, bulk_update, execute_raw_query
from civicq_ops.api.session import execute_transaction, get_db_session
from civicq_ops.api.timing import QueryPerformanceTracker

__all__ = [
    "DatabaseMonitor", "QueryPerformanceTracker", "get_pool", "pool_stats", "pooled_session",
    "bulk_insert", "bulk_update", "execute_raw_query", "execute_transaction",
    "export_table_to_csv", "get_database_size", "get_db_session", "get_foreign_keys", "get_table_columns",
    "get_table_indexes", "get_table_names", "get_table_stats", "health_check", "import_csv_to_table", "run_check",
]
