"""The mutation script's own parts: where it mutates, and that it never touches checks/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.fixtures.pg import REPO

spec = importlib.util.spec_from_file_location("mutate_catalogue", REPO / "bench" / "mutate_catalogue.py")
mutate = importlib.util.module_from_spec(spec)
sys.modules["mutate_catalogue"] = mutate  # dataclasses look their module up there
spec.loader.exec_module(mutate)

SAMPLE = """version: 1
checks:
  - id: demo
    title: Demo check
    category: cache
    params:
      min_blocks: {type: integer, default: 10}
    query: |
      -- a comment with a > sign
      SELECT a::float8 / nullif(a + b, 0) AS ratio, 'x >= y' AS label
      FROM t WHERE a >= {{ params.min_blocks }} AND "c<d" IS NOT NULL
      ORDER BY a DESC
    value: ratio
    message: "a > b"
"""


def test_mutants_touch_only_sql_outside_literals_comments_and_templates(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(SAMPLE)
    mutants = mutate.find_mutants(path, tmp_path)
    kinds = {m.description.split(":")[0] for m in mutants}
    assert {"comparison", "word", "negation dropped", "WHERE clause dropped", "division", "addition",
            "ratio numerator"} <= kinds
    for m in mutants:
        assert m.check == "demo"
        changed = SAMPLE[m.start:m.end]
        assert changed.strip(), m
        line = SAMPLE.count("\n", 0, m.start) + 1
        assert 9 <= line <= 12 and m.line == line, m  # inside the query, never in the message
    starts = {m.start for m in mutants}
    for protected in ("'x >= y'", "a comment with a > sign", "{{ params.min_blocks }}", '"c<d"'):
        at = SAMPLE.index(protected)
        assert not any(at <= s < at + len(protected) for s in starts), protected
    [numerator] = [m for m in mutants if m.description.startswith("ratio numerator")]
    assert "b::float8 / nullif(a + b, 0)" in numerator.apply(SAMPLE)


def test_a_mutant_that_does_not_parse_is_stillborn(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(SAMPLE)
    mutant = mutate.find_mutants(path, tmp_path)[0]
    broken = mutate.Mutant(mutant.file, mutant.line, "demo", mutant.start, mutant.end, "))", "broken")
    assert not mutate.parses(broken, broken.apply(SAMPLE))
    assert mutate.parses(mutant, mutant.apply(SAMPLE))


def test_the_script_works_on_a_copy_named_by_the_project_paths():
    text = (REPO / "bench" / "mutate_catalogue.py").read_text()
    assert "CIVICQ_TEST_CONFIG" in text and "copytree" in text
    assert "write_text" not in text.split("checks_copy = work")[0].split("def main")[1]  # nothing written before the copy
    assert Path(REPO / "tests" / "fixtures" / "pg.py").read_text().count("CIVICQ_TEST_CONFIG") >= 1
