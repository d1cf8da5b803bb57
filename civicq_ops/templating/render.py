"""Templated SQL, where every `{{ expr }}` becomes a bind parameter.

A query template is rendered in a sandboxed Jinja2 environment whose `finalize` hook sees every
`{{ }}` value: a plain value is recorded as a bind and replaced by a placeholder; a value marked by
`| ident` (a quoted identifier) or `| sql_unsafe` (raw text) is written into the SQL. So no value
from params can ever become SQL text unless a reviewer sees `| sql_unsafe` in the YAML.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from civicq_ops.core.errors import TemplateError
from civicq_ops.core.identifiers import quote_ident
from civicq_ops.core.units import format_bytes, format_duration, format_number, format_value

_MARK = "\x00civicq-bind-{}\x00"
_ESCAPES = re.compile(r"%[%s]")  # psycopg's: a literal %, a placeholder
_state = threading.local()


class NullFact(dict):
    """A stand-in for a runner fact known only at run time (validate, offline tests): every key reads
    as None, so a template renders and binds NULL."""

    def __missing__(self, key: str) -> None:
        return None


class SqlFragment(str):
    """Text that goes into SQL as is: a quoted identifier, or raw text a reviewer accepted."""

    unsafe = False


class UnsafeFragment(SqlFragment):
    unsafe = True


def _ident(value: Any) -> SqlFragment:
    """Quote a (dotted) name part by part: "public.votes" -> "public"."votes"."""
    if isinstance(value, (list, tuple)):
        parts = [str(p) for p in value]
    else:
        parts = str(value).split(".")
    if not all(parts):
        raise TemplateError(f"invalid identifier {value!r}")
    return SqlFragment(".".join(quote_ident(p) for p in parts))


def _sql_unsafe(value: Any) -> UnsafeFragment:
    return UnsafeFragment(str(value))


def _qident(value: Any, *keys: str) -> str:
    """A (schema-qualified) name as text a DBA pastes into psql, quoted as psycopg.sql.Identifier does.

    Every part is double-quoted, embedded double quotes doubled (PostgreSQL's rule, exactly), so any
    name is safe: `{{ subject | qident('schemaname', 'relname') }}` -> "public"."orders";
    `{{ row.indexname | qident }}` -> one name, never split on dots; a list gives its parts.
    For recommendations and messages (plain text); a query names things through `| ident`.
    """
    if keys:
        parts = [value[k] for k in keys]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    if not parts or any(p is None or str(p) == "" or "\x00" in str(p) for p in parts):
        raise TemplateError(f"invalid identifier {value!r}")
    return ".".join(quote_ident(str(p)) for p in parts)


def _qliteral(value: Any) -> str:
    """A string literal as text to paste (standard_conforming_strings on): quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def _finalize(value: Any) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # StrictUndefined: never bind or print an undefined value
    binds = getattr(_state, "binds", None)
    if binds is None:  # a message template: plain text
        return "" if value is None else value
    if isinstance(value, SqlFragment):
        return value
    binds.append(value)
    return _MARK.format(len(binds) - 1)


def _pct(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.{digits}f}%"


@cache
def environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, finalize=_finalize, autoescape=False,
                                        keep_trailing_newline=False)
    env.filters.update(
        ident=_ident, sql_unsafe=_sql_unsafe, pct=_pct, bytes=format_bytes, duration=format_duration,
        number=format_number, value=format_value,
    )
    env.filters.update(qident=_qident, qliteral=_qliteral)  # names and literals in recommendations
    env.globals.clear()  # no range(), lipsum(), dict() ...: templates see only their context
    return env


@cache
def compile_template(text: str):
    """The template of `text`, its code from this user's store of compiled templates when there
    (templating/compiled.py), else compiled by Jinja and added to it."""
    from jinja2 import TemplateSyntaxError

    from civicq_ops.templating.compiled import compiled_store

    env = environment()
    store = compiled_store()
    code = store.code(text) if store is not None else None
    if code is None:
        try:
            code = env.compile(text)
        except TemplateSyntaxError as e:
            raise TemplateError(f"template syntax error at template line {e.lineno}: {e.message}") from e
        if store is not None:
            store.remember(text, code)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


@dataclass(frozen=True)
class RenderedQuery:
    """SQL with %s placeholders (psycopg style) and the values to bind to them."""

    text: str
    binds: tuple

    def _substitute(self, placeholder) -> str:
        """`%%` becomes `%` and the n-th `%s` becomes placeholder(n), read left to right (one
        regular-expression pass: a loop over characters cost ~0.15 s of a `validate`)."""
        count = itertools.count()
        return _ESCAPES.sub(lambda m: "%" if m.group() == "%%" else placeholder(next(count)), self.text)

    def numbered(self) -> str:
        """The SQL with $1, $2... placeholders, as PostgreSQL and pglast read it."""
        return self._substitute(lambda n: f"${n + 1}")

    def literal(self) -> str:
        """The SQL with values inlined as SQL literals, for psql and reviews."""
        from psycopg import sql

        return self._substitute(lambda n: sql.Literal(self.binds[n]).as_string(None))


def _plain(template: str) -> bool:
    """No Jinja syntax at all: the text renders as itself (half the shipped queries; Jinja's
    compilation of each costs a run ~0.3 ms)."""
    return "{{" not in template and "{%" not in template and "{#" not in template


def render_query(template: str, context: dict[str, Any]) -> RenderedQuery:
    """Render a query template to SQL text plus bind values."""
    if _plain(template):
        return RenderedQuery(template.replace("%", "%%").strip(), ())
    from jinja2 import TemplateError as JinjaError

    tmpl = compile_template(template)
    binds: list[Any] = []
    _state.binds = binds
    try:
        text = tmpl.render(**context)
    except JinjaError as e:
        raise TemplateError(f"query template: {e}") from e
    finally:
        _state.binds = None
    # Literal % in the template's SQL must reach psycopg as %%; placeholders become %s.
    text = text.replace("%", "%%")
    for i in range(len(binds)):
        text = text.replace(_MARK.format(i), "%s", 1)
    return RenderedQuery(text.strip(), tuple(binds))


def render_text(template: str, context: dict[str, Any]) -> str:
    """Render a message or recommendation template as plain text."""
    if _plain(template):
        return " ".join(template.split())
    from jinja2 import TemplateError as JinjaError

    _state.binds = None
    try:
        return " ".join(compile_template(template).render(**context).split())
    except JinjaError as e:
        raise TemplateError(f"message template: {e}") from e
