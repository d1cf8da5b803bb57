"""docs/SCHEMA_REFERENCE.md is what the migrations produce, on every supported major."""

from __future__ import annotations

from civicq_ops.civicq.migrations import migrate
from civicq_ops.civicq.schema_doc import render_schema_reference
from tests.fixtures.pg import REPO


def test_committed_schema_reference_matches_the_migrations(db):
    project, target = db.project()
    migrate(project, target)
    with db.connect() as conn:
        generated = render_schema_reference(conn)
    committed = (REPO / "docs" / "SCHEMA_REFERENCE.md").read_text()
    assert generated == committed, "docs/SCHEMA_REFERENCE.md is stale: run `civicq-ops db schema-doc`"


def test_schema_reference_lists_tables_indexes_and_views(db):
    project, target = db.project()
    migrate(project, target)
    with db.connect() as conn:
        text = render_schema_reference(conn)
    assert "## votes (table)" in text and "## popular_questions (materialized view)" in text
    assert "`votes_one_per_user` (unique): `UNIQUE (question_id, user_id)`" in text
    assert "ON DELETE CASCADE" in text and "USING gin (search_vector)" in text
