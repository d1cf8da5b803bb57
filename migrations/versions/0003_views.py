"""CivicQ views, materialized views and refresh_all_materialized_views(), from sql/views.sql.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEWS_SQL = Path(__file__).resolve().parents[2] / "sql" / "views.sql"


def upgrade() -> None:
    op.execute(VIEWS_SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS refresh_all_materialized_views(boolean);"
        "DROP VIEW IF EXISTS candidate_profiles, video_answer_stats, moderation_queue,"
        " trending_questions, recent_audit_trail;"
        "DROP MATERIALIZED VIEW IF EXISTS popular_questions, contest_summary, user_activity_summary,"
        " city_dashboard;"
        "DROP TABLE IF EXISTS matview_refresh_log;"
    )
