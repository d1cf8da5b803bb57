"""The positioned YAML loader bounds the work a hostile file can cause (issue 11 point 8):
alias bombs, deep nesting and huge files are refused with one file:line error in well under a
second, through `validate` as well as the loader."""

from __future__ import annotations

import time
from pathlib import Path

from civicq_ops.catalog.load import load_catalog
from civicq_ops.core import yamlpos
from civicq_ops.core.yamlpos import load_file, load_text

BUDGET_S = 2.0  # generous for a loaded CI machine; each case takes a few ms here


def billion_laughs(levels: int, fanout: int = 9) -> str:
    lines = ["version: 1", 'a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]")
    lines.append(f"checks: *a{levels}")
    return "\n".join(lines) + "\n"


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def test_billion_laughs_is_refused_fast_at_its_line():
    text = billion_laughs(9)
    assert len(text) < 600
    doc, took = timed(load_text, text, "bomb.yaml")
    assert took < BUDGET_S
    assert doc.data is None
    [d] = doc.diagnostics
    assert d.code == "yaml-too-large" and "aliases are expanded" in d.message
    assert 3 <= d.line <= 12, d


def test_seven_levels_in_validate_are_refused_fast(tmp_path):
    (tmp_path / "bomb.yaml").write_text(billion_laughs(7))
    result, took = timed(load_catalog, [tmp_path])
    assert took < BUDGET_S
    assert [d.code for d in result.diagnostics if d.level == "error"] == ["yaml-too-large"]


def test_merge_key_bomb_is_refused():
    lines = ["version: 1", "m0: &m0 {x: 1, y: 2}"]
    for i in range(1, 30):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}")
    doc, took = timed(load_text, "\n".join(lines) + "\n", "merge.yaml")
    assert took < BUDGET_S
    assert [d.code for d in doc.diagnostics] == ["yaml-too-large"]


def test_too_many_aliases_are_refused():
    text = "version: 1\na: &a 1\nb: [" + ", ".join(["*a"] * (yamlpos.MAX_ALIASES + 1)) + "]\n"
    doc = load_text(text, "aliases.yaml")
    assert [d.code for d in doc.diagnostics] == ["yaml-too-large"]
    assert "aliases" in doc.diagnostics[0].message and doc.diagnostics[0].line == 3


def test_deep_nesting_is_refused_fast():
    depth = yamlpos.MAX_DEPTH + 5
    doc, took = timed(load_text, "x: " + "[" * depth + "]" * depth + "\n", "deep.yaml")
    assert took < BUDGET_S
    assert [d.code for d in doc.diagnostics] == ["yaml-too-large"]
    assert "nested more than" in doc.diagnostics[0].message
    # far deeper: libyaml's own limit answers first, still one line and fast
    depth = 100_000
    doc, took = timed(load_text, "x: " + "{a: " * depth + "1" + "}" * depth + "\n", "deeper.yaml")
    assert took < BUDGET_S
    assert len(doc.diagnostics) == 1 and "nest" in doc.diagnostics[0].message


def test_ten_megabyte_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("version: 1\nchecks:\n" + "  - {id: x, title: y}\n" * 500_000)
    assert path.stat().st_size > 10_000_000
    doc, took = timed(load_file, path)
    assert took < BUDGET_S
    [d] = doc.diagnostics
    assert (d.code, d.line) == ("yaml-too-large", 1) and "larger than 2 MiB" in d.message


def test_many_plain_values_under_the_size_limit_are_refused_fast():
    text = "version: 1\nchecks: [" + ",".join(["1"] * 900_000) + "]\n"
    assert len(text) < yamlpos.MAX_FILE_BYTES
    doc, took = timed(load_text, text, "wide.yaml")
    assert took < BUDGET_S
    assert [d.code for d in doc.diagnostics] == ["yaml-too-large"]


def test_ordinary_anchors_still_work():
    doc = load_text("version: 1\nbase: &b {a: 1}\nuse: {<<: *b, c: 2}\nlist: [*b, *b]\n", "ok.yaml")
    assert doc.diagnostics == []
    assert doc.data["use"] == {"a": 1, "c": 2} and doc.data["list"] == [{"a": 1}, {"a": 1}]


def test_the_shipped_catalogue_is_within_the_limits():
    repo = Path(__file__).resolve().parents[2]
    for path in sorted((repo / "checks").rglob("*.yaml")) + sorted((repo / "policies").rglob("*.yaml")):
        assert not load_file(path).diagnostics, path
