"""Thresholds with units; the most severe matching level wins."""

from __future__ import annotations

import pytest

from civicq_ops.core.thresholds import Thresholds
from civicq_ops.core.units import UnitError, parse_quantity


@pytest.mark.parametrize("text, unit, expected", [
    ("10GB", "bytes", 10 * 1024**3), ("512kB", "bytes", 512 * 1024), ("5min", "seconds", 300), ("2h", "seconds", 7200),
    ("90%", "ratio", 0.9), ("90%", "percent", 90), ("1.5M", "count", 1.5e6), (42, None, 42), ("250ms", "seconds", 0.25),
])
def test_quantities_parse_into_the_units_base(text, unit, expected):
    assert parse_quantity(text, unit) == pytest.approx(expected)


@pytest.mark.parametrize("text, unit", [("10GB", "seconds"), ("5min", "bytes"), ("90%", "bytes"), ("lots", None)])
def test_units_that_do_not_fit_are_errors(text, unit):
    with pytest.raises(UnitError):
        parse_quantity(text, unit)


def test_most_severe_matching_level_wins():
    t = Thresholds.parse({"warning": {"gt": "10%"}, "critical": {"gt": "30%"}}, "ratio")
    assert [t.level_for(v) for v in (0.05, 0.1, 0.2, 0.31)] == ["ok", "ok", "warning", "critical"]


def test_between_and_outside():
    t = Thresholds.parse({"warning": {"outside": [10, 20]}, "critical": {"outside": [0, 30]}}, "number")
    assert [t.level_for(v) for v in (15, 25, 31, -1)] == ["ok", "warning", "critical", "critical"]


def test_lower_is_worse_thresholds():
    t = Thresholds.parse({"warning": {"lt": "99%"}, "critical": {"lt": "95%"}}, "ratio")
    assert [t.level_for(v) for v in (0.995, 0.97, 0.90)] == ["ok", "warning", "critical"]
    assert t.critical_inside_warning()


def test_swapped_levels_are_detected():
    assert not Thresholds.parse({"warning": {"gt": 30}, "critical": {"gt": 10}}, "number").critical_inside_warning()
    assert not Thresholds.parse({"warning": {"lt": 95}, "critical": {"lt": 99}}, "number").critical_inside_warning()


@pytest.mark.parametrize(("text", "want"), [
    ("18.6", (18, 6)), ("15", (15, 0)), ("18beta1", (18, 0)), ("15.4 (Debian 15.4-1.pgdg120+1)", (15, 4)),
    ("PostgreSQL 17.2 on x86_64", (17, 2)),
])
def test_one_version_parser_reads_every_form_civicq_ops_meets(text, want):
    from civicq_ops.core.version import Version

    got = Version.parse(text)
    assert (got.major, got.minor) == want
