"""`--param` values are checked against their declaration before anything runs (issue 12 point 8,
issue 10 point 9): type, minimum/maximum, enum and pattern; a param that reaches `| sql_unsafe`
must declare an enum or a pattern, or `validate` refuses the check."""

from __future__ import annotations

import pytest

from civicq_ops.catalog.model import Check, Source
from civicq_ops.core.errors import InputError
from civicq_ops.engine.run import resolve_params
from tests.catalog.test_validate import GOOD_CHECK, codes, validate
from tests.fixtures.pg import shipped_catalog


def make(params: dict) -> Check:
    return Check.from_dict({"id": "c", "title": "C", "category": "t", "query": "SELECT 1 AS v", "value": "v",
                            "params": params}, Source("c.yaml", 1))


@pytest.mark.parametrize("spec, raw, why", [
    ({"type": "integer", "default": 1, "minimum": 0}, "-5", "below the minimum 0"),
    ({"type": "integer", "default": 1, "maximum": 10}, "11", "above the maximum 10"),
    ({"type": "number", "default": 1}, "abc", "not a number"),
    ({"type": "integer", "default": 1}, "true", "not an integer"),
    ({"type": "boolean", "default": True}, "maybe", "not true or false"),
    ({"type": "string", "default": "a", "enum": ["a", "b"]}, "c", "not one of 'a', 'b'"),
    ({"type": "string", "default": "votes", "pattern": "[a-z_]+"}, "votes; COMMIT; CREATE TABLE x (a int)",
     "does not match the pattern"),
    ({"type": "array", "items": "string", "default": [], "enum": ["a", "b"]}, "a,z", "'z' is not one of"),
    ({"type": "array", "items": "integer", "default": []}, "[1, x]", "'x' is not an integer"),
    ({"type": "duration", "default": "1s"}, "soon", "not a number with a unit"),
    ({"type": "bytes", "default": "1MB"}, "5min", "bytes"),
    ({"type": "integer", "default": 1}, "!!python/object/apply:os.system ['id']", "not an integer"),
    ({"type": "integer", "default": 1}, "[unclosed", "not an integer"),
    ({"type": "integer", "default": 1}, "9" * 5000, "not an integer"),
    ({"type": "integer", "default": 1}, "9" * 30, "out of range"),
])
def test_bad_values_are_input_errors_naming_the_param(spec, raw, why):
    with pytest.raises(InputError) as e:
        resolve_params(make({"p": spec}), {"p": raw})
    assert e.value.message.startswith("--param c.p: ") and why in e.value.message, e.value.message


@pytest.mark.parametrize("spec, raw, value", [
    ({"type": "integer", "default": 1, "minimum": 0, "maximum": 10}, "10", 10),
    ({"type": "string", "default": "a", "enum": ["a", "b"]}, "b", "b"),
    ({"type": "string", "default": "votes", "pattern": "[a-z_]+"}, "pg_class", "pg_class"),
    ({"type": "array", "items": "string", "default": []}, "a, b", ["a", "b"]),
    ({"type": "array", "items": "string", "default": []}, '["x; y", "0"]', ["x; y", "0"]),
    ({"type": "boolean", "default": True}, "false", False),
    ({"type": "duration", "default": "1s"}, "5min", "5min"),
    ({"type": "string", "default": "a"}, "123", "123"),
])
def test_good_values_are_bound(spec, raw, value):
    assert resolve_params(make({"p": spec}), {"p": raw})["p"] == value


def test_shipped_minimum_is_enforced():
    check = shipped_catalog().checks["table-dead-tuples"]
    with pytest.raises(InputError, match="below the minimum 0"):
        resolve_params(check, {"min_live_tuples": "-5"})


UNSAFE = GOOD_CHECK.replace(
    "      min_bytes: {type: integer, default: 1000}\n",
    "      min_bytes: {type: integer, default: 1000}\n      tbl: {type: string, default: pg_class}\n",
).replace("FROM pg_stat_user_tables", "FROM pg_stat_user_tables, {{ params.tbl | sql_unsafe }} AS x")


def test_validate_refuses_an_unbounded_param_reaching_sql_unsafe(tmp_path):
    assert (10, "unsafe-param-unbounded") in codes(validate(tmp_path, UNSAFE))


def test_validate_accepts_it_with_a_pattern_or_an_enum(tmp_path):
    for bound in ("pattern: '[a-z_]+'", "enum: [pg_class, pg_index]"):
        text = UNSAFE.replace("tbl: {type: string, default: pg_class}", f"tbl: {{type: string, default: pg_class, {bound}}}")
        assert "unsafe-param-unbounded" not in [c for _, c in codes(validate(tmp_path, text))]


def test_validate_refuses_sql_unsafe_on_a_variable_that_hides_the_param(tmp_path):
    text = UNSAFE.replace("{{ params.tbl | sql_unsafe }}", "{% set t = params.tbl %}{{ t | sql_unsafe }}")
    text = text.replace("tbl: {type: string, default: pg_class}", "tbl: {type: string, default: pg_class, enum: [pg_class]}")
    assert (10, "unsafe-param-unbounded") in codes(validate(tmp_path, text))


def test_validate_checks_defaults_and_patterns(tmp_path):
    text = GOOD_CHECK.replace("min_bytes: {type: integer, default: 1000}",
                              "min_bytes: {type: integer, default: 1000, maximum: 10}")
    assert codes(validate(tmp_path, text)) == [(8, "bad-default")]
    text = GOOD_CHECK.replace("min_bytes: {type: integer, default: 1000}",
                              "min_bytes: {type: integer, default: 1000}\n      other: {type: string, pattern: '[a-'}")
    assert [c for _, c in codes(validate(tmp_path, text))] == ["bad-format"]
