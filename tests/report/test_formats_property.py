"""Every run format renders any finding: huge, negative, NaN, infinite or missing values, any unit,
subjects and messages with unicode, control characters, `|`, `%` and newlines. No format raises,
and the machine formats stay parseable (strict JSON, XML, SARIF against the official schema)."""

from __future__ import annotations

import json
import os
import re
import string
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.baseline import Comparison, Entry
from civicq_ops.engine.run import TargetRun
from civicq_ops.report.formats import RUN_FORMATS, render
from tests.report.runs import catalog, finding, result

pytestmark = pytest.mark.slow

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "sarif-schema-2.1.0.json"
EXAMPLES = int(os.environ.get("CIVICQ_PROPERTY_EXAMPLES", "150"))  # 2,000 per format pass too (8 min)
HOSTILE = "|%:,\n\r\t\x00\x1b[31m\x07\u2028é漢字🙂{{ }}<>&\"'"

texts = st.text(alphabet=st.sampled_from(list(HOSTILE) + list(string.printable)) | st.characters(), max_size=40)
values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1444, 5000, 1_000_000, -1234.5]),
    st.decimals(allow_nan=False, allow_infinity=False, places=3), st.just(Decimal("1e400")), texts,
)
units = st.sampled_from([None, "ratio", "percent", "bytes", "seconds", "ms", "count", "xids", "number", "furlongs"])
subjects = st.one_of(st.none(), st.dictionaries(st.sampled_from(["schemaname", "relname", "x|y", "%"]),
                                                st.one_of(texts, st.integers(), st.none()), max_size=3))
waivers = st.one_of(st.none(), st.fixed_dictionaries({"reason": texts, "owner": texts, "expires": texts,
                                                      "source": texts}))
check_ids = st.sampled_from(["table-dead-tuples", "sequence-exhaustion", "database-xid-age", "table-bloat"])


@st.composite
def findings(draw):
    return finding(draw(check_ids), target=draw(st.sampled_from(["env", "pröd|1", "a%b\nc"])),
                   subject=draw(subjects), status=draw(st.sampled_from(sorted(SEVERITY))), value=draw(values),
                   unit=draw(units), message=draw(texts), recommendation=draw(st.one_of(st.none(), texts)),
                   reason=draw(st.one_of(st.none(), texts)), waiver=draw(waivers),
                   confidence=draw(st.sampled_from(["high", "low"])), confidence_reason=draw(texts),
                   evidence=draw(st.dictionaries(texts, values, max_size=2)))


@st.composite
def runs(draw):
    fs = draw(st.lists(findings(), max_size=14))
    targets = [TargetRun(name="env", server_version="18.1", role="primary", system_identifier="7"),
               TargetRun(name=draw(texts), error=draw(st.one_of(st.none(), texts)))][: draw(st.integers(1, 2))]
    errors = draw(st.lists(st.fixed_dictionaries({"target": texts, "check": st.none(), "message": texts}), max_size=2))
    notices = draw(st.lists(st.fixed_dictionaries({"code": st.sampled_from(["waiver-expired", "waiver-stale"]),
                                                   "message": texts, "path": texts, "line": st.integers(0, 10**6)}),
                            max_size=2))
    gate = [f.id for f in fs if f.status in ("warning", "critical") and draw(st.booleans())]
    run = result(fs, targets=targets, errors=errors, notices=notices, gate_failures=gate,
                 exit_code=draw(st.sampled_from([0, 1, 3])), fail_on=draw(st.sampled_from(["warning", "critical"])))
    if draw(st.booleans()):  # compared with a baseline
        problems = [f for f in fs if f.status in ("warning", "critical")]
        entry = st.builds(Entry, check_ids, texts, subjects, st.sampled_from(["warning", "critical"]), values, units)
        run.baseline = draw(texts)
        run.comparison = Comparison(
            states={f.id: draw(st.sampled_from(["new", "worse", "better", "unchanged"])) for f in problems},
            previous={f.id: draw(entry) for f in problems if draw(st.booleans())},
            absent=draw(st.lists(entry, max_size=3)))
    return run


def _strict_json(text: str):
    def reject(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=reject)


_SARIF_VALIDATOR = None


def _sarif_validator():
    global _SARIF_VALIDATOR
    if _SARIF_VALIDATOR is None:
        _SARIF_VALIDATOR = jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text()))
    return _SARIF_VALIDATOR


_GITHUB_LINE = re.compile(r"^::(error|warning|notice)( [^:\n]*)?::[^\n\r]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check_format(run, fmt: str) -> None:
    out = render(run, fmt)
    assert isinstance(out, str)
    out.encode("utf-8")  # what is written to a file or a terminal: no lone surrogate survives
    if fmt == "text":  # also as a terminal sees it: colours, ok findings listed
        coloured = render(run, fmt, colour=True, verbose=True)
        assert not _CONTROL.search(coloured.replace("\x1b[", "")), "only our own colour codes reach the terminal"
    if fmt == "json":
        from civicq_ops.catalog.structure import load_schema

        jsonschema.validate(_strict_json(out), load_schema("report"))
    elif fmt == "sarif":
        _sarif_validator().validate(_strict_json(out))
    elif fmt == "junit":
        from junitparser import JUnitXml

        ET.fromstring(out.encode())
        JUnitXml.fromstring(out)
    elif fmt == "github":
        for line in out.splitlines():
            assert _GITHUB_LINE.match(line), line
    elif fmt == "prometheus":
        from prometheus_client.parser import text_string_to_metric_families

        list(text_string_to_metric_families(out))
    elif fmt in ("text", "markdown"):
        assert not _CONTROL.search(out), "raw control characters reach the terminal"


@pytest.mark.parametrize("fmt", RUN_FORMATS)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs())
def test_every_format_renders_any_finding(fmt, run):
    check_format(run, fmt)


@pytest.mark.parametrize("fmt", RUN_FORMATS)
def test_grouped_thousands_render_in_every_format(fmt):
    """The reported crash: a warning of 5,000 and an ok of 1,444 (tabulate 0.10 and `maxcolwidths`)."""
    run = result([finding("database-xid-age", subject=None, status="warning", value=5000, unit="xids"),
                  finding("sequence-exhaustion", status="ok", value=1444, unit="count")])
    check_format(run, fmt)
    if fmt == "text":
        assert "5,000" in render(run, "text") and "1,444" in render(run, "text", verbose=True)


@pytest.mark.parametrize("fmt", RUN_FORMATS)
def test_a_lone_surrogate_in_a_subject_renders_in_every_format(fmt):
    """What hypothesis once found in the Prometheus renderer: '\\ud800' (a name PostgreSQL never
    stores, but a message or an evidence value decoded with errors='surrogateescape' can carry)."""
    run = result([finding("table-dead-tuples", subject={"relname": "a\ud800b"}, status="warning", value=1,
                          message="m\udfff", target="t\ud800")])
    check_format(run, fmt)


def test_catalogue_is_loaded():
    assert "table-dead-tuples" in catalog().checks
