"""Thousands of random and mutated YAML documents through `validate`: never a traceback,
always positioned diagnostics, and the CLI's exit code 2."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicq_ops.catalog.load import load_catalog
from tests.catalog.test_validate import GOOD_CHECK, POLICIES

pytestmark = pytest.mark.slow

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         st.text(string.printable, max_size=20))
yaml_values = st.recursive(yaml_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.text(string.ascii_lowercase + "_", min_size=1, max_size=10), children, max_size=4)),
    max_leaves=12)


def _check(tmp_path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if isinstance(text, str) else path.write_bytes(text)
    result = load_catalog([path])
    for d in result.diagnostics:
        assert d.path.endswith("fuzz.yaml") and d.line >= 0 and d.col >= 0 and d.code and d.message


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_random_text_never_crashes(tmp_path, text):
    _check(tmp_path, text.encode("utf-8", errors="replace").decode("utf-8"))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_files_never_crash(tmp_path, data):
    source = data.draw(st.sampled_from([GOOD_CHECK, POLICIES]))
    lines = source.splitlines(keepends=True)
    op = data.draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "truncate"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "delete":
        del lines[i]
    elif op == "duplicate":
        lines.insert(i, lines[i])
    elif op == "replace":
        lines[i] = data.draw(st.text(string.printable, max_size=40)) + "\n"
    elif op == "insert":
        lines.insert(i, data.draw(st.text(string.printable, max_size=40)) + "\n")
    else:
        cut = data.draw(st.integers(0, len(lines[i])))
        lines = lines[:i] + [lines[i][:cut]]
    _check(tmp_path, "".join(lines))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(yaml_values)
def test_random_structures_under_the_checks_key_never_crash(tmp_path, value):
    import yaml

    _check(tmp_path, yaml.safe_dump({"version": 1, "checks": value}))
    _check(tmp_path, yaml.safe_dump({"version": 1, "checks": [value]}))
    _check(tmp_path, yaml.safe_dump({"version": 1, "waivers": [value], "policies": value}))


def test_cli_exits_2_with_file_line_errors_and_no_traceback(cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("version: 1\nchecks:\n  - id: Bad_Id\n    title: x\n")
    result = cli("validate", "bad.yaml")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "bad.yaml:3:9: error[bad-format]" in result.stdout
