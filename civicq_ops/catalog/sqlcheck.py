"""Static checks of a check's SQL with pglast: ONE statement, read-only, and its output columns.

The READ ONLY transaction is the real guard at run time; this catches a writing query in review,
before it ever reaches a database, and names the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# Functions that change state, signal processes, read server files or take locks a check must not.
WRITING_FUNCTIONS = frozenset({
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "set_config",
    "nextval", "setval", "pg_advisory_lock", "pg_advisory_xact_lock", "pg_advisory_lock_shared",
    "pg_try_advisory_lock", "pg_try_advisory_xact_lock", "lo_import", "lo_export", "lo_unlink", "lo_create",
    "dblink", "dblink_exec", "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
    "pg_stat_statements_reset", "pg_switch_wal", "pg_create_restore_point", "pg_drop_replication_slot",
    "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_logical_emit_message",
    "pg_promote", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_file_write", "pg_backup_start",
    "pg_backup_stop", "pg_replication_origin_create", "pg_replication_origin_drop", "txid_current",
    "pg_current_xact_id", "pg_notify", "pg_import_system_collations", "pg_sleep",
})


@dataclass(frozen=True)
class SqlVerdict:
    problem: str | None = None
    columns: tuple[str, ...] | None = None  # None: not all output names could be known (e.g. SELECT *)


@lru_cache(maxsize=1024)
def inspect_query(text: str) -> SqlVerdict:
    """Parse `text` (placeholders as $n) and judge it. Cached: the same SQL is judged once."""
    import pglast
    from pglast import ast
    from pglast.visitors import Visitor

    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError as e:
        return SqlVerdict(problem=f"the query does not parse: {e}")
    if len(statements) != 1:
        return SqlVerdict(problem=f"the query must be one statement, not {len(statements)}")
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        return SqlVerdict(problem=f"the query must be a SELECT or WITH ... SELECT, not {_kind(stmt)}")
    problems: list[str] = []

    class Walk(Visitor):
        def visit_CommonTableExpr(self, parent, node):
            if not isinstance(node.ctequery, ast.SelectStmt):
                problems.append(f"the WITH query '{node.ctename}' modifies data ({_kind(node.ctequery)})")

        def visit_SelectStmt(self, parent, node):
            if node.intoClause is not None:
                problems.append("SELECT ... INTO creates a table")
            if node.lockingClause:
                problems.append("FOR UPDATE/SHARE takes row locks")

        def visit_FuncCall(self, parent, node):
            name = node.funcname[-1].sval.lower()
            if name in WRITING_FUNCTIONS:
                problems.append(f"function {name}() changes state or reads server files")

    Walk()(statements)
    if problems:
        return SqlVerdict(problem="the query is not read-only: " + problems[0])
    columns = _output_columns(stmt)
    return SqlVerdict(columns=tuple(columns) if columns is not None else None)


def _kind(node) -> str:
    name = type(node).__name__.removesuffix("Stmt").upper()
    return {"INSERT": "INSERT", "UPDATE": "UPDATE", "DELETE": "DELETE", "MERGE": "MERGE"}.get(name, name)


def _output_columns(stmt) -> list[str] | None:
    from pglast import ast

    while stmt.op is not None and stmt.op != 0 and getattr(stmt.op, "name", "") != "SETOP_NONE":
        stmt = stmt.larg
    if stmt.targetList is None:
        return None
    names = []
    for target in stmt.targetList:
        if target.name:
            names.append(target.name)
            continue
        val = target.val
        if isinstance(val, ast.ColumnRef):
            last = val.fields[-1]
            if isinstance(last, ast.A_Star):
                return None
            names.append(last.sval)
        elif isinstance(val, ast.FuncCall):
            names.append(val.funcname[-1].sval)
        elif isinstance(val, ast.TypeCast) and isinstance(val.arg, ast.ColumnRef):
            names.append(val.arg.fields[-1].sval)
        else:
            return None
    return names
