"""Static checks of a check's SQL with pglast: ONE statement, read-only, and its output columns.

The READ ONLY transaction is the real guard at run time; this catches a writing query in review,
before it ever reaches a database, and names the reason.
"""

from __future__ import annotations

import json
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
    """Parse `text` (placeholders as $n) and judge it. Cached: the same SQL is judged once.

    The parse tree is read as pglast's JSON rendering of PostgreSQL's own: several times faster
    than building pglast's Python AST, which matters when `validate` reads a whole catalogue.
    """
    # pglast is imported here, not at the top: a run loads the catalogue without parsing its SQL
    # (the READ ONLY transaction guards it), and importing pglast costs ~40 ms of its start-up.
    import pglast
    from pglast.parser import parse_sql_json

    try:
        tree = json.loads(parse_sql_json(text))
    except pglast.parser.ParseError as e:
        return SqlVerdict(problem=f"the query does not parse: {e}")
    statements = tree.get("stmts", [])
    if len(statements) != 1:
        return SqlVerdict(problem=f"the query must be one statement, not {len(statements)}")
    kind, stmt = next(iter(statements[0]["stmt"].items()))
    if kind != "SelectStmt":
        return SqlVerdict(problem=f"the query must be a SELECT or WITH ... SELECT, not {_kind(kind)}")
    problems: list[str] = []
    _walk(statements[0]["stmt"], problems)
    if problems:
        return SqlVerdict(problem="the query is not read-only: " + problems[0])
    columns = _output_columns(stmt)
    return SqlVerdict(columns=tuple(columns) if columns is not None else None)


def _walk(node, problems: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, problems)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "CommonTableExpr":
            query_kind = next(iter(value.get("ctequery", {"SelectStmt": None})))
            if query_kind != "SelectStmt":
                problems.append(f"the WITH query '{value.get('ctename')}' modifies data ({_kind(query_kind)})")
        elif key == "SelectStmt" and isinstance(value, dict):
            if value.get("intoClause"):
                problems.append("SELECT ... INTO creates a table")
            if value.get("lockingClause"):
                problems.append("FOR UPDATE/SHARE takes row locks")
        elif key == "FuncCall" and isinstance(value, dict):
            name = _last_name(value.get("funcname", []))
            if name and name.lower() in WRITING_FUNCTIONS:
                problems.append(f"function {name.lower()}() changes state or reads server files")
        _walk(value, problems)


def _last_name(parts: list) -> str | None:
    if parts and isinstance(parts[-1], dict) and "String" in parts[-1]:
        return parts[-1]["String"].get("sval")
    return None


def _kind(name: str) -> str:
    return name.removesuffix("Stmt").upper()


def _output_columns(select: dict) -> list[str] | None:
    while select.get("op") not in (None, "SETOP_NONE"):
        select = select["larg"]
    names = []
    for item in select.get("targetList") or []:
        target = item.get("ResTarget", {})
        if target.get("name"):
            names.append(target["name"])
            continue
        val = target.get("val", {})
        if "TypeCast" in val:
            val = val["TypeCast"].get("arg", {})
        if "ColumnRef" in val:
            last = val["ColumnRef"]["fields"][-1]
            if "A_Star" in last:
                return None
            names.append(last["String"]["sval"])
        elif "FuncCall" in val and _last_name(val["FuncCall"].get("funcname", [])):
            names.append(_last_name(val["FuncCall"]["funcname"]))
        else:
            return None
    return names if select.get("targetList") else None
