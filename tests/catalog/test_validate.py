"""`validate`: every problem found, each at its file:line:col with a stable code."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from civicq_ops.catalog.load import load_catalog

TODAY = date(2026, 11, 25)

GOOD_CHECK = """\
version: 1
checks:
  - id: big-tables
    title: Big tables
    category: space
    description: Tables above a size.
    params:
      min_bytes: {type: integer, default: 1000}
    query: |
      SELECT relname, pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables
      WHERE pg_total_relation_size(relid) > {{ params.min_bytes }}
    subject: [relname]
    value: bytes
    unit: bytes
    thresholds: {warning: {gt: 10GB}, critical: {gt: 50GB}}
    recommendation: Partition {{ subject.relname }}.
"""


def validate(tmp_path: Path, text: str, name: str = "c.yaml", extra: dict[str, str] | None = None):
    (tmp_path / name).write_text(text)
    for other, body in (extra or {}).items():
        (tmp_path / other).write_text(body)
    return load_catalog([tmp_path], notifiers={"alertmanager"}, today=TODAY).diagnostics


def codes(diags) -> list[tuple[int, str]]:
    return [(d.line, d.code) for d in diags if d.level in ("error", "warning")]


def test_a_good_check_has_no_diagnostics(tmp_path):
    assert validate(tmp_path, GOOD_CHECK) == []


def test_unknown_key_points_at_the_key(tmp_path):
    diags = validate(tmp_path, GOOD_CHECK.replace("    unit: bytes\n", "    unit: bytes\n    colour: red\n"))
    assert [(d.line, d.col, d.code) for d in diags] == [(15, 5, "unknown-key")]
    assert "unknown key 'colour'" in diags[0].message


def test_wrong_type_and_bad_enum_are_errors(tmp_path):
    text = GOOD_CHECK.replace("unit: bytes", "unit: furlongs").replace("category: space", "category: [space]")
    assert sorted(codes(validate(tmp_path, text))) == [(5, "wrong-type"), (14, "bad-value")]


def test_duplicate_key_is_an_error(tmp_path):
    text = GOOD_CHECK.replace("    category: space\n", "    category: space\n    category: disk\n")
    assert (6, "yaml-duplicate-key") in codes(validate(tmp_path, text))


def test_duplicate_check_id_across_files_names_the_first(tmp_path):
    diags = validate(tmp_path, GOOD_CHECK, extra={"d.yaml": GOOD_CHECK})
    dup = [d for d in diags if d.code == "duplicate-id"]
    assert len(dup) == 1 and "already defined at" in dup[0].message


def test_undeclared_param_is_an_error_with_a_suggestion(tmp_path):
    diags = validate(tmp_path, GOOD_CHECK.replace("> {{ params.min_bytes }}", "> {{ params.min_byte }}"))
    d = next(d for d in diags if d.code == "undeclared-param")
    assert d.line == 9 and d.hint == "did you mean 'min_bytes'?"


def test_unknown_template_variable_is_an_error(tmp_path):
    diags = validate(tmp_path, GOOD_CHECK.replace("{{ params.min_bytes }}", "{{ env.HOME }}"))
    assert any(d.code == "unknown-variable" and "'env'" in d.message for d in diags)


def test_template_syntax_error(tmp_path):
    diags = validate(tmp_path, GOOD_CHECK.replace("{{ params.min_bytes }}", "{{ params.min_bytes "))
    assert any(d.code == "template-syntax" for d in diags)


@pytest.mark.parametrize("query, code, words", [
    ("DELETE FROM votes", "not-read-only", "not DELETE"),
    ("SELECT 1 AS relname, 2 AS bytes; SELECT 3", "not-one-statement", "one statement"),
    ("WITH gone AS (DELETE FROM votes RETURNING id) SELECT 1 AS relname, 2 AS bytes", "not-read-only", "modifies data"),
    ("SELECT pg_terminate_backend(1) AS relname, 1 AS bytes", "not-read-only", "pg_terminate_backend"),
    ("SELECT relname, 1 AS bytes INTO copy FROM pg_class", "not-read-only", "INTO"),
    ("SELECT relname FROM pg_class", "missing-column", "no column bytes"),
    ("SELEKT 1", "sql-syntax", "does not parse"),
])
def test_query_must_be_one_read_only_select(tmp_path, query, code, words):
    text = GOOD_CHECK.replace(
        "      SELECT relname, pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables\n"
        "      WHERE pg_total_relation_size(relid) > {{ params.min_bytes }}\n", f"      {query}\n")
    diags = [d for d in validate(tmp_path, text) if d.code == code]
    assert diags and words in diags[0].message and diags[0].line == 9


def test_critical_zone_outside_warning_zone_is_an_error(tmp_path):
    text = GOOD_CHECK.replace("{warning: {gt: 10GB}, critical: {gt: 50GB}}", "{warning: {gt: 50GB}, critical: {gt: 10GB}}")
    assert (15, "critical-outside-warning") in codes(validate(tmp_path, text))


def test_unit_that_does_not_fit_the_value_is_an_error(tmp_path):
    text = GOOD_CHECK.replace("{gt: 10GB}", "{gt: 5min}")
    assert any(d.code == "bad-unit" and "5min" in d.message for d in validate(tmp_path, text))


def test_sql_unsafe_on_a_bounded_param_is_reported_as_a_notice(tmp_path):
    text = GOOD_CHECK.replace("> {{ params.min_bytes }}", "> {{ params.min_bytes | sql_unsafe }}")
    text = text.replace("default: 1000}", "default: 1000, pattern: '[0-9]+'}")
    diags = validate(tmp_path, text)
    assert [d.level for d in diags if d.code == "sql-unsafe"] == ["notice"]
    assert not [d for d in diags if d.level == "error"]


POLICIES = """\
version: 1
policies:
  - id: vacuum-big
    when: {check: big-table, level: critical}
    action: vacuum
alerts:
  - name: BigTable
    when: {check: big-tables}
    notify: [pagerduty]
waivers:
  - check: big-tables
    subject: {relname: votes}
    reason: Archived yearly
    owner: data-team
    expires: "2027-12-31"
  - check: big-tables
    subject: {relname: old}
    reason: Old table
    owner: data-team
    expires: "2026-01-01"
  - check: big-tables
    subject: {table: x}
    reason: Wrong key
    owner: data-team
    expires: "2027-01-01"
"""


def test_policy_alert_and_waiver_references_are_checked(tmp_path):
    diags = validate(tmp_path, GOOD_CHECK, extra={"p.yaml": POLICIES})
    found = {(Path(d.path).name, d.line, d.code) for d in diags}
    assert ("p.yaml", 4, "unknown-check") in found  # big-table: a typo, with a hint
    assert ("p.yaml", 9, "unknown-notifier") in found
    assert ("p.yaml", 15, "waiver-too-long") in found
    assert ("p.yaml", 20, "waiver-expired") in found
    assert ("p.yaml", 22, "unknown-subject-key") in found
    hint = next(d.hint for d in diags if d.code == "unknown-check")
    assert hint == "did you mean 'big-tables'?"


def test_waiver_without_owner_is_a_schema_error(tmp_path):
    text = POLICIES.replace("    owner: data-team\n    expires: \"2027-12-31\"\n", "    expires: \"2027-12-31\"\n")
    diags = validate(tmp_path, GOOD_CHECK, extra={"p.yaml": text})
    assert any(d.code == "missing-key" and "owner" in d.message for d in diags)


def test_diagnostics_are_sorted_by_file_and_line(tmp_path):
    diags = validate(tmp_path, GOOD_CHECK.replace("unit: bytes", "unit: x").replace("title: Big tables", "title: 1"),
                     extra={"a.yaml": "version: 1\nchecks: 3\n"})
    assert diags == sorted(diags)
    assert Path(diags[0].path).name == "a.yaml"


def test_file_of_unknown_kind_is_reported(tmp_path):
    diags = validate(tmp_path, "version: 1\nthings: []\n")
    assert [d.code for d in diags] == ["unknown-kind"]


FACT_CHECK = """\
version: 1
checks:
  - id: old-backup
    title: Old backup
    category: backup
    facts: [backups]
    query: |
      SELECT {{ facts.backups.age_s }}::float8 AS age
    value: age
    unit: seconds
    thresholds: {warning: {gt: 1d}}
    message: "{{ facts.backups.latest_id }} is {{ value | duration }} old"
    recommendation: Back up.
"""


def test_a_check_declaring_the_facts_it_reads_is_valid(tmp_path):
    assert validate(tmp_path, FACT_CHECK) == []


def test_a_template_reading_an_undeclared_fact_is_an_error(tmp_path):
    diags = validate(tmp_path, FACT_CHECK.replace("    facts: [backups]\n", ""))
    assert [(d.line, d.code) for d in diags] == [(6, "undeclared-fact"), (11, "undeclared-fact")]
    assert diags[0].message == "template uses facts.backups, which is not declared under facts:"


def test_an_unknown_fact_name_is_a_schema_error(tmp_path):
    diags = validate(tmp_path, FACT_CHECK.replace("facts: [backups]", "facts: [backup]"))
    assert [(d.line, d.code) for d in diags if d.level == "error"][:1] == [(6, "bad-value")]
