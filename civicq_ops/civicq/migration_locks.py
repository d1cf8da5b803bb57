"""The lock a schema change takes and the work it does under it, per statement kind.

The table follows the PostgreSQL documentation (the "Explicit Locking" chapter and each command's
reference page): which lock mode a statement takes on which table, and whether it rewrites the
table, scans it (to validate), builds an index, or only changes the catalogue. The work is what
decides how long the lock is held; the lock mode decides who waits meanwhile.

| statement | lock | work |
| --- | --- | --- |
| ADD COLUMN, no default or a non-volatile default (PG 11+) | ACCESS EXCLUSIVE | catalogue only |
| ADD COLUMN with a volatile default (random(), gen_random_uuid(), clock_timestamp(), nextval) | ACCESS EXCLUSIVE | rewrite |
| ADD COLUMN ... GENERATED ALWAYS AS (...) STORED, identity, serial | ACCESS EXCLUSIVE | rewrite |
| ALTER COLUMN TYPE (not binary-coercible) | ACCESS EXCLUSIVE | rewrite, indexes rebuilt |
| ALTER COLUMN SET NOT NULL | ACCESS EXCLUSIVE | full scan (none with a valid CHECK (col IS NOT NULL), PG 12+) |
| ADD CONSTRAINT CHECK / FOREIGN KEY | ACCESS EXCLUSIVE / SHARE ROW EXCLUSIVE (both tables) | full scan |
| ADD CONSTRAINT ... NOT VALID | same lock | catalogue only |
| VALIDATE CONSTRAINT | SHARE UPDATE EXCLUSIVE | full scan (reads and writes go on) |
| ADD PRIMARY KEY / UNIQUE (without USING INDEX) | ACCESS EXCLUSIVE | index build |
| CREATE INDEX | SHARE (blocks writes) | index build |
| CREATE INDEX CONCURRENTLY (and DROP, REINDEX) | SHARE UPDATE EXCLUSIVE | index build, after older transactions |
| DROP COLUMN, SET/DROP DEFAULT, DROP NOT NULL, RENAME, DROP TABLE, DROP INDEX | ACCESS EXCLUSIVE | catalogue only |
| SET STATISTICS, SET (storage parameters) | SHARE UPDATE EXCLUSIVE | catalogue only |
| CREATE OR REPLACE VIEW, DROP VIEW | ACCESS EXCLUSIVE (the view) | catalogue only |
| REFRESH MATERIALIZED VIEW [CONCURRENTLY] | ACCESS EXCLUSIVE [EXCLUSIVE] | rewrite |
| VACUUM FULL, CLUSTER, TRUNCATE | ACCESS EXCLUSIVE | rewrite / none |
| UPDATE, DELETE | ROW EXCLUSIVE | writes the rows it touches |
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Modes from weakest to strongest, and which modes each conflicts with (the documentation's
# "Conflicting Lock Modes" table).
MODES = ["ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
         "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"]
CONFLICTS: dict[str, set[str]] = {
    "ACCESS SHARE": {"ACCESS EXCLUSIVE"},
    "ROW SHARE": {"EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "ROW EXCLUSIVE": {"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE UPDATE EXCLUSIVE": {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE": {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE ROW EXCLUSIVE": {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
                            "ACCESS EXCLUSIVE"},
    "EXCLUSIVE": {"ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
                  "ACCESS EXCLUSIVE"},
    "ACCESS EXCLUSIVE": set(MODES),
}
# What normal traffic a mode stops while it is held (or queued).
BLOCKS = {"ACCESS EXCLUSIVE": "reads and writes wait", "EXCLUSIVE": "writes wait, reads go on",
          "SHARE ROW EXCLUSIVE": "writes wait, reads go on", "SHARE": "writes wait, reads go on"}

# Work under the lock, from none to the heaviest.
WORK = ["none", "scan", "index build", "rewrite"]
VOLATILE = {"random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v4", "uuidv4", "uuidv7",
            "clock_timestamp", "timeofday", "nextval", "txid_current", "statement_timestamp"}
_SERIAL = {"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"}


def pg_mode(mode: str) -> str:
    """pg_locks' `AccessExclusiveLock` as the documentation's `ACCESS EXCLUSIVE`."""
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", " ", mode.removesuffix("Lock")).upper()


def conflicts(held: str, wanted: str) -> bool:
    return held in CONFLICTS.get(wanted, set())


@dataclass
class LockEffect:
    """What one statement does to one table."""

    kind: str                       # "ADD COLUMN with a volatile default"
    table: tuple[str | None, str]   # (schema as written or None, name)
    lock: str
    work: str = "none"
    column: str | None = None       # the column whose type changes (dependent views)
    new_type: str | None = None
    functions: list[str] = field(default_factory=list)  # functions in an added default
    note: str = ""

    @property
    def blocks(self) -> str:
        return BLOCKS.get(self.lock, "reads and writes go on (schema changes and VACUUM wait)")

    @property
    def blocks_traffic(self) -> bool:
        return self.lock in BLOCKS


def _names(node) -> list[str]:
    return [getattr(n, "sval", "") for n in (node or ())]


def _funcs(expr) -> list[str]:
    """Names of the functions called anywhere in a raw expression."""
    from pglast import ast

    found: list[str] = []

    def walk(n) -> None:
        if isinstance(n, ast.FuncCall):
            found.append(_names(n.funcname)[-1])
        if isinstance(n, ast.Node):
            for attr in n:
                walk(getattr(n, attr))
        elif isinstance(n, tuple | list):
            for x in n:
                walk(x)

    walk(expr)
    return found


def _rel(rv) -> tuple[str | None, str]:
    return (rv.schemaname or None, rv.relname)


def _type_name(tn) -> str:
    names = [n for n in _names(tn.names) if n != "pg_catalog"]
    return ".".join(names)


def _cmd_effect(table: tuple[str | None, str], cmd) -> LockEffect | None:
    from pglast import ast, enums

    t = enums.AlterTableType
    sub = cmd.subtype
    if sub == t.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        col = cmd.def_
        typ = _type_name(col.typeName) if col.typeName else ""
        for c in col.constraints or ():
            if c.contype == enums.ConstrType.CONSTR_DEFAULT:
                funcs = _funcs(c.raw_expr)
                return LockEffect("ADD COLUMN with a default", table, "ACCESS EXCLUSIVE", "none", col.colname,
                                  functions=funcs)
            if c.contype in (enums.ConstrType.CONSTR_GENERATED, enums.ConstrType.CONSTR_IDENTITY):
                return LockEffect("ADD COLUMN generated or identity", table, "ACCESS EXCLUSIVE", "rewrite", col.colname)
        if typ in _SERIAL:
            return LockEffect("ADD COLUMN serial", table, "ACCESS EXCLUSIVE", "rewrite", col.colname)
        return LockEffect("ADD COLUMN", table, "ACCESS EXCLUSIVE", "none", col.colname)
    if sub == t.AT_AlterColumnType:
        new = _type_name(cmd.def_.typeName) if isinstance(cmd.def_, ast.ColumnDef) and cmd.def_.typeName else None
        return LockEffect("ALTER COLUMN TYPE", table, "ACCESS EXCLUSIVE", "rewrite", cmd.name, new_type=new)
    if sub == t.AT_SetNotNull:
        return LockEffect("SET NOT NULL", table, "ACCESS EXCLUSIVE", "scan", cmd.name)
    if sub == t.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        c = cmd.def_
        ct = enums.ConstrType
        not_valid = bool(c.skip_validation)
        if c.contype == ct.CONSTR_FOREIGN:
            return LockEffect("ADD FOREIGN KEY" + (" NOT VALID" if not_valid else ""), table, "SHARE ROW EXCLUSIVE",
                              "none" if not_valid else "scan")
        if c.contype == ct.CONSTR_CHECK:
            return LockEffect("ADD CHECK" + (" NOT VALID" if not_valid else ""), table, "ACCESS EXCLUSIVE",
                              "none" if not_valid else "scan")
        if c.contype in (ct.CONSTR_PRIMARY, ct.CONSTR_UNIQUE, ct.CONSTR_EXCLUSION):
            using_index = bool(c.indexname)
            return LockEffect("ADD PRIMARY KEY/UNIQUE" + (" USING INDEX" if using_index else ""), table,
                              "ACCESS EXCLUSIVE", "none" if using_index else "index build")
        return LockEffect("ADD CONSTRAINT", table, "ACCESS EXCLUSIVE", "scan")
    if sub == t.AT_ValidateConstraint:
        return LockEffect("VALIDATE CONSTRAINT", table, "SHARE UPDATE EXCLUSIVE", "scan")
    if sub in (t.AT_SetStatistics, t.AT_SetRelOptions, t.AT_ResetRelOptions, t.AT_SetOptions, t.AT_ResetOptions,
               t.AT_ClusterOn, t.AT_DropCluster):
        return LockEffect("SET STATISTICS/OPTIONS", table, "SHARE UPDATE EXCLUSIVE", "none")
    if sub in (t.AT_SetTableSpace, t.AT_SetLogged, t.AT_SetUnLogged, t.AT_SetAccessMethod):
        return LockEffect("SET TABLESPACE/LOGGED/ACCESS METHOD", table, "ACCESS EXCLUSIVE", "rewrite")
    names = {t.AT_DropColumn: "DROP COLUMN", t.AT_ColumnDefault: "SET/DROP DEFAULT", t.AT_DropNotNull: "DROP NOT NULL",
             t.AT_DropConstraint: "DROP CONSTRAINT"}
    return LockEffect(names.get(sub, "ALTER TABLE"), table, "ACCESS EXCLUSIVE", "none",
                      cmd.name if sub == t.AT_DropColumn else None)


def effects(node) -> list[LockEffect]:
    """The lock effects of one parsed statement on existing tables (empty: it takes none worth
    reporting, e.g. CREATE TABLE, SET, BEGIN)."""
    from pglast import ast, enums

    if isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        table = _rel(node.relation)
        out = [e for e in (_cmd_effect(table, c) for c in node.cmds or ()) if e is not None]
        if node.objtype == enums.ObjectType.OBJECT_INDEX:
            return [LockEffect("ALTER INDEX", table, "ACCESS EXCLUSIVE", "none")]
        return out
    if isinstance(node, ast.IndexStmt) and node.relation is not None:
        if node.concurrent:
            return [LockEffect("CREATE INDEX CONCURRENTLY", _rel(node.relation), "SHARE UPDATE EXCLUSIVE", "index build",
                               note="waits for every older transaction first")]
        return [LockEffect("CREATE INDEX", _rel(node.relation), "SHARE", "index build")]
    if isinstance(node, ast.RenameStmt) and node.relation is not None:
        return [LockEffect("RENAME", _rel(node.relation), "ACCESS EXCLUSIVE", "none")]
    if isinstance(node, ast.ViewStmt) and node.replace:
        return [LockEffect("CREATE OR REPLACE VIEW", _rel(node.view), "ACCESS EXCLUSIVE", "none")]
    if isinstance(node, ast.RefreshMatViewStmt):
        if node.concurrent:
            return [LockEffect("REFRESH MATERIALIZED VIEW CONCURRENTLY", _rel(node.relation), "EXCLUSIVE", "rewrite")]
        return [LockEffect("REFRESH MATERIALIZED VIEW", _rel(node.relation), "ACCESS EXCLUSIVE", "rewrite")]
    if isinstance(node, ast.TruncateStmt):
        return [LockEffect("TRUNCATE", _rel(r), "ACCESS EXCLUSIVE", "none") for r in node.relations or ()]
    if isinstance(node, ast.ClusterStmt) and node.relation is not None:
        return [LockEffect("CLUSTER", _rel(node.relation), "ACCESS EXCLUSIVE", "rewrite")]
    if isinstance(node, ast.UpdateStmt) and node.relation is not None:
        return [LockEffect("UPDATE", _rel(node.relation), "ROW EXCLUSIVE", "rewrite" if node.whereClause is None else "scan",
                           note="writes every row it matches")]
    if isinstance(node, ast.DeleteStmt) and node.relation is not None:
        return [LockEffect("DELETE", _rel(node.relation), "ROW EXCLUSIVE", "scan")]
    if isinstance(node, ast.DropStmt) and node.removeType in (enums.ObjectType.OBJECT_TABLE,
                                                               enums.ObjectType.OBJECT_VIEW,
                                                               enums.ObjectType.OBJECT_MATVIEW):
        out = []
        for obj in node.objects or ():
            parts = _names(obj)
            if parts:
                out.append(LockEffect("DROP " + node.removeType.name.removeprefix("OBJECT_"),
                                      (parts[-2] if len(parts) > 1 else None, parts[-1]), "ACCESS EXCLUSIVE", "none"))
        return out
    return []


def created_relation(node) -> tuple[str | None, str] | None:
    """The table, materialized view or view a statement creates (objects new in the range are empty)."""
    from pglast import ast

    if isinstance(node, ast.CreateStmt) and node.relation is not None:
        return _rel(node.relation)
    if isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
        return _rel(node.into.rel)
    if isinstance(node, ast.ViewStmt) and not node.replace:
        return _rel(node.view)
    return None


def dropped_views(node) -> list[tuple[str | None, str]]:
    from pglast import ast, enums

    if isinstance(node, ast.DropStmt) and node.removeType in (enums.ObjectType.OBJECT_VIEW,
                                                               enums.ObjectType.OBJECT_MATVIEW):
        return [(p[-2] if len(p) > 1 else None, p[-1]) for p in (_names(o) for o in node.objects or ()) if p]
    return []


def strongest(effects_: list[LockEffect]) -> LockEffect | None:
    if not effects_:
        return None
    return max(effects_, key=lambda e: (MODES.index(e.lock) if e.lock in MODES else 0, WORK.index(e.work)))
