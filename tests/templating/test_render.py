"""Templated SQL: values become binds, names go through | ident, raw text only via | sql_unsafe."""

from __future__ import annotations

import pytest

from civicq_ops.core.errors import TemplateError
from civicq_ops.templating.render import render_query, render_text


def test_every_expression_becomes_a_bind():
    q = render_query("SELECT * FROM t WHERE a > {{ params.n }} AND b = {{ params.s }}", {"params": {"n": 5, "s": "x"}})
    assert q.text == "SELECT * FROM t WHERE a > %s AND b = %s" and q.binds == (5, "x")


def test_lists_are_bound_as_one_array_value():
    q = render_query("SELECT 1 WHERE s = ANY({{ params.s }})", {"params": {"s": ["a", "b"]}})
    assert q.binds == (["a", "b"],) and q.numbered() == "SELECT 1 WHERE s = ANY($1)"


def test_injection_attempts_stay_values():
    evil = "x'; DROP TABLE votes; --"
    q = render_query("SELECT {{ params.v }}", {"params": {"v": evil}})
    assert q.text == "SELECT %s" and q.binds == (evil,)
    assert q.literal() == "SELECT 'x''; DROP TABLE votes; --'"


def test_ident_quotes_each_part_of_a_dotted_name():
    q = render_query("SELECT * FROM {{ params.t | ident }}", {"params": {"t": 'public.we"ird; DROP'}})
    assert q.text == 'SELECT * FROM "public"."we""ird; DROP"' and q.binds == ()


def test_sql_unsafe_writes_raw_text_unbound():
    # Flagging it is validate's job: tests/catalog/test_validate.py::test_sql_unsafe_is_reported_as_a_notice.
    q = render_query("SELECT {{ params.expr | sql_unsafe }}", {"params": {"expr": "now()"}})
    assert q.text == "SELECT now()" and q.binds == ()


def test_literal_percent_survives_binding():
    q = render_query("SELECT 'a%b' LIKE {{ params.p }}", {"params": {"p": "a%"}})
    assert q.text == "SELECT 'a%%b' LIKE %s" and q.numbered() == "SELECT 'a%b' LIKE $1"


def test_undefined_variable_is_an_error_not_an_empty_string():
    with pytest.raises(TemplateError, match="has no attribute .missing."):
        render_query("SELECT {{ params.missing }}", {"params": {}})


def test_sandbox_refuses_python_internals():
    with pytest.raises(TemplateError):
        render_query("SELECT {{ params.__class__.__mro__ }}", {"params": {}})


def test_templates_have_no_globals():
    with pytest.raises(TemplateError):
        render_text("{{ range(10) }}", {})


def test_message_filters():
    text = render_text("{{ r | pct }} {{ b | bytes }} {{ s | duration }} {{ n | number }}",
                       {"r": 0.1234, "b": 10 * 1024**3, "s": 5400, "n": 1234567})
    assert text == "12.3% 10.0 GB 90 min 1,234,567"


def _reference_substitute(text: str) -> str:
    """The character loop the regular expression replaced: the specification it must keep."""
    out, i, n = [], 0, 0
    while i < len(text):
        if text.startswith("%%", i):
            out.append("%")
            i += 2
        elif text.startswith("%s", i):
            n += 1
            out.append(f"${n}")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("text", ["SELECT %s, %s", "a LIKE 'x%%'", "%%s", "%%%s", "%s%%", "100% sure %s", "%", "",
                                  "%%%%s%s", "s%ss%%%"])
def test_numbered_placeholders_read_escapes_left_to_right(text):
    from civicq_ops.templating.render import RenderedQuery

    assert RenderedQuery(text, ()).numbered() == _reference_substitute(text)
