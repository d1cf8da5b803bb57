"""SQL identifiers written as text (for psql scripts, messages a DBA pastes, rendered SQL): quoted as
psycopg.sql.Identifier and PostgreSQL's quote_ident() quote them, whatever the name holds."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """`name` double-quoted, embedded double quotes doubled (PostgreSQL's rule, exactly)."""
    return '"' + name.replace('"', '""') + '"'
