"""Templates without Jinja syntax are not compiled by Jinja (issue 14): they must render exactly as
Jinja would render them."""

from __future__ import annotations

from pathlib import Path

from civicq_ops.catalog.load import load_catalog
from civicq_ops.templating import render

REPO = Path(__file__).resolve().parents[2]


def _through_jinja(monkeypatch, function, template, context):
    monkeypatch.setattr(render, "_plain", lambda text: False)
    try:
        return function(template, context)
    finally:
        monkeypatch.undo()


def test_every_shipped_plain_template_renders_as_jinja_would(monkeypatch):
    catalog = load_catalog([REPO / "checks"], include_tests=False).catalog
    queries = [q for c in catalog.checks.values() for q in [c.query, *(v.query for v in c.variants)]]
    texts = [t for c in catalog.checks.values() for t in (c.message, c.recommendation) if t]
    plain_queries = [q for q in queries if render._plain(q)]
    plain_texts = [t for t in texts if render._plain(t)]
    assert len(plain_queries) > 20 and plain_texts
    for q in plain_queries:
        assert render.render_query(q, {}) == _through_jinja(monkeypatch, render.render_query, q, {})
    for t in plain_texts:
        assert render.render_text(t, {}) == _through_jinja(monkeypatch, render.render_text, t, {})


def test_a_plain_query_keeps_its_literal_percent_signs_for_psycopg():
    assert render.render_query("SELECT 1 WHERE 'a%' LIKE 'a%%'\n", {}).text == "SELECT 1 WHERE 'a%%' LIKE 'a%%%%'"
