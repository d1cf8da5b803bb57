"""A finding's message and recommendation are Jinja renders paid only when something reads them:
most findings are ok, and ok findings are shown only with --verbose (issue 14)."""

from __future__ import annotations

from civicq_ops.catalog.model import Check, Source
from civicq_ops.core.capabilities import Capabilities
from civicq_ops.engine.evaluate import evaluate_rows

CHECK = Check.from_dict({
    "id": "table-size", "title": "Table size", "category": "capacity", "query": "SELECT 1",
    "subject": ["relname"], "value": "bytes", "unit": "bytes",
    "thresholds": {"warning": {"gt": 100}},
    "message": "{{ subject.relname }} holds {{ value }} bytes (limit {{ params.limit }})",
    "recommendation": "Archive {{ row.relname }}",
}, Source(path="checks/t.yaml", line=1))
ROWS = [{"relname": "small", "bytes": 10}, {"relname": "big", "bytes": 500}]


def _evaluated():
    return evaluate_rows(CHECK, ROWS, {"limit": 100}, Capabilities(name="t"))


def test_messages_are_not_rendered_until_read():
    small, big = _evaluated()
    assert callable(small.__dict__["_lazy_message"]) and callable(big.__dict__["_lazy_recommendation"])


def test_a_message_read_is_the_rendered_text_and_is_kept():
    small, big = _evaluated()
    assert small.message == "small holds 10 bytes (limit 100)" and small.recommendation is None
    assert big.message == "big holds 500 bytes (limit 100)" and big.recommendation == "Archive big"
    assert small.__dict__["_lazy_message"] == "small holds 10 bytes (limit 100)"


def test_the_dictionary_form_holds_the_rendered_texts():
    _, big = _evaluated()
    d = big.to_dict()
    assert d["message"] == "big holds 500 bytes (limit 100)" and d["recommendation"] == "Archive big"
    assert "_lazy_message" not in d


def test_a_message_set_as_text_replaces_the_render():
    small, _ = _evaluated()
    small.message = "replaced"
    small.message += " twice"
    assert small.message == "replaced twice"
