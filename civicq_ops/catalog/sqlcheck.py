"""Static checks of a check's SQL with pglast: ONE statement, read-only, and its output columns.

The READ ONLY transaction is the real guard at run time; this catches a writing query in review,
before it ever reaches a database, and names the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

# Functions a check must never call, by what they would do. A READ ONLY transaction refuses writes
# to tables but allows every one of these (signals, reloads, file reads, xid assignment, SQL run
# from text...), so `validate` refuses them and the engine scans each check's final SQL again before
# it runs (a `| sql_unsafe` value or a `--param` could bring one in). Names are matched whatever
# the schema (pg_catalog.x, "x"); a prefix ending in `*` covers a family.
#
# `set_config` is denied too: the engine calls it itself, in its own statement, to set each
# check's statement_timeout and lock_timeout; a check that called it could lift those guards for
# itself or (is_local false) for every later check on the same pooled connection.
SIDE_EFFECTS: dict[str, tuple[str, ...]] = {
    "signals a server process": (
        "pg_terminate_backend", "pg_cancel_backend", "pg_signal_*", "pg_reload_conf", "pg_rotate_logfile*",
        "pg_log_backend_memory_contexts", "pg_promote", "pg_wal_replay_pause", "pg_wal_replay_resume",
    ),
    "reads or writes server files": (
        "pg_read_file", "pg_read_binary_file", "pg_ls_*", "pg_stat_file", "pg_file_*", "pg_logdir_ls",
    ),
    "uses large objects": ("lo_*", "loread", "lowrite", "be_lo_*"),
    "takes advisory locks": ("pg_advisory*", "pg_try_advisory*"),
    "connects to another database": ("dblink*",),
    "runs SQL from text": (
        "query_to_xml*", "query_to_xmlschema", "cursor_to_xml*", "table_to_xml*", "schema_to_xml*",
        "database_to_xml*", "ts_stat", "ts_rewrite",
    ),
    "changes settings": ("set_config",),
    "changes sequences": ("nextval", "setval"),
    "assigns a transaction id": ("txid_current", "pg_current_xact_id"),
    "sends a notification": ("pg_notify",),
    "changes WAL, backups or replication": (
        "pg_switch_wal", "pg_create_restore_point", "pg_*_replication_slot", "pg_replication_slot_advance",
        "pg_logical_slot_*", "pg_logical_emit_message", "pg_replication_origin_*", "pg_backup_start",
        "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "pg_export_snapshot", "pg_sync_replication_slots",
    ),
    "changes the catalog or statistics": (
        "pg_import_system_collations", "pg_stat_reset*", "pg_stat_statements_reset", "pg_extension_config_dump",
        "pg_restore_relation_stats", "pg_restore_attribute_stats", "pg_clear_relation_stats",
        "pg_clear_attribute_stats", "pg_prewarm",
    ),
}

# Refused in review only: no check needs to sleep, but a sleep changes nothing and the run's
# statement_timeout bounds it, so the run-time scan lets it through (tests use it to be slow).
REVIEW_ONLY: dict[str, tuple[str, ...]] = {
    "sleeps while holding a connection": ("pg_sleep", "pg_sleep_for", "pg_sleep_until"),
}


def side_effect(name: str, review: bool = True) -> str | None:
    """What calling function `name` (any case, unqualified) would do, or None if a check may call it."""
    return _side_effect(name.lower(), review)


@lru_cache(maxsize=4096)
def _side_effect(name: str, review: bool) -> str | None:
    for reason, exact, wildcards in _patterns(review):
        if name in exact or any(name.startswith(head) and name.endswith(tail) and len(name) >= len(head) + len(tail)
                                for head, tail in wildcards):
            return reason
    return None


@lru_cache(maxsize=2)
def _patterns(review: bool) -> tuple[tuple[str, frozenset[str], tuple[tuple[str, str], ...]], ...]:
    """Per reason: the exact names, and (head, tail) of each pattern with one `*` (no regular
    expressions: fnmatch compiled one per pattern, ~70 of them, in every run)."""
    groups = {**SIDE_EFFECTS, **REVIEW_ONLY} if review else SIDE_EFFECTS
    table = []
    for reason, patterns in groups.items():
        exact = frozenset(p for p in patterns if "*" not in p)
        wildcards = tuple((p.split("*")[0], p.split("*")[1]) for p in patterns if "*" in p)
        table.append((reason, exact, wildcards))
    return tuple(table)


@dataclass(frozen=True)
class SqlVerdict:
    problem: str | None = None
    columns: tuple[str, ...] | None = None  # None: not all output names could be known (e.g. SELECT *)


@lru_cache(maxsize=1024)
def inspect_query(text: str, review: bool = True) -> SqlVerdict:
    """Parse `text` (placeholders as $n) and judge it. Cached: the same SQL is judged once.
    `review=False` is the run-time scan of a final query (see REVIEW_ONLY).

    The parse tree is read as pglast's JSON rendering of PostgreSQL's own: several times faster
    than building pglast's Python AST, which matters when `validate` reads a whole catalogue.
    """
    # pglast is imported here, not at the top: a run loads the catalogue without parsing its SQL
    # (the READ ONLY transaction guards it), and importing pglast costs ~40 ms of its start-up.
    import pglast
    from pglast.parser import parse_sql_json

    try:
        rendering = parse_sql_json(text)
    except pglast.parser.ParseError as e:
        return SqlVerdict(problem=f"the query does not parse: {e}")
    tree = json.loads(rendering)
    statements = tree.get("stmts", [])
    if len(statements) != 1:
        return SqlVerdict(problem=f"the query must be one statement, not {len(statements)}")
    kind, stmt = next(iter(statements[0]["stmt"].items()))
    if kind != "SelectStmt":
        return SqlVerdict(problem=f"the query must be a SELECT or WITH ... SELECT, not {_kind(kind)}")
    problems = _scan(rendering, review)
    if problems is None:  # a shape the scan does not know: the walk over the whole tree decides
        problems = []
        _walk(statements[0]["stmt"], problems, review)
    if problems:
        return SqlVerdict(problem="the query is not read-only: " + problems[0])
    columns = _output_columns(stmt)
    return SqlVerdict(columns=tuple(columns) if columns is not None else None)


# The scan reads the JSON text itself. Its keys cannot be imitated by the query's own text: inside a
# JSON string every quote is escaped (\"), so `"funcname":[` only ever starts a key.
_STRING = r'"(?:[^"\\]|\\.)*"'
_FUNCNAME = re.compile(r'"funcname":\[((?:\{"String":\{"sval":' + _STRING + r'\}\},?)+)\]')
_SVAL = re.compile(r'"sval":(' + _STRING + ")")
_CTE_QUERY = re.compile(r'"ctename":(' + _STRING + r')(?:,"\w+":(?:"\w*"|\w+))*,"ctequery":\{"(\w+)"')
_MARKERS = ('"funcname":', '"ctequery":', '"intoClause":', '"lockingClause":')


def _scan(rendering: str, review: bool) -> list[str] | None:
    """The problems `_walk` finds, read with regular expressions from the JSON text in one pass
    each (a walk in Python over every node was two thirds of judging a catalogue), in the order
    the walk meets them; None when a marker appears in a shape the expressions do not match."""
    found: list[tuple[int, str]] = []
    names = list(_FUNCNAME.finditer(rendering))
    ctes = list(_CTE_QUERY.finditer(rendering))
    if len(names) != rendering.count(_MARKERS[0]) or len(ctes) != rendering.count(_MARKERS[1]):
        return None
    for m in names:
        name = json.loads(_SVAL.findall(m.group(1))[-1])
        effect = side_effect(name, review)
        if effect:
            found.append((m.start(), f"function {name.lower()}() {effect}"))
    for m in ctes:
        if m.group(2) != "SelectStmt":
            found.append((m.start(), f"the WITH query '{json.loads(m.group(1))}' modifies data ({_kind(m.group(2))})"))
    for marker, problem in (('"intoClause":', "SELECT ... INTO creates a table"),
                            ('"lockingClause":', "FOR UPDATE/SHARE takes row locks")):
        at = rendering.find(marker)
        while at != -1:
            found.append((at, problem))
            at = rendering.find(marker, at + 1)
    return [problem for _, problem in sorted(found)]


def _walk(node, problems: list[str], review: bool) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, problems, review)
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
            effect = side_effect(name, review) if name else None
            if effect and name:
                problems.append(f"function {name.lower()}() {effect}")
        _walk(value, problems, review)


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
