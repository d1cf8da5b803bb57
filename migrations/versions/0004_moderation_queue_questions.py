"""moderation_queue lists questions awaiting approval as well as open reports.

Before this revision the view held reports only, so a moderator working from it never saw the
questions pending moderation (status 'pending'), which are most of the work. The existing columns
keep their names, types and order (CREATE OR REPLACE VIEW may only add columns at the end); a new
`item` column says which kind each row is. Questions carry no report_id and no reporter.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_REPORTS = """
SELECT r.id            AS report_id,
       r.target_type,
       r.target_id,
       r.reason,
       r.details,
       r.status,
       r.created_at,
       now() - r.created_at AS age,
       u.email         AS reporter_email,
       count(*) OVER (PARTITION BY r.target_type, r.target_id) AS reports_on_target
FROM reports r
LEFT JOIN users u ON u.id = r.reporter_id
WHERE r.status IN ('pending', 'reviewing')
"""

UPGRADE = f"""
CREATE OR REPLACE VIEW moderation_queue AS
SELECT q.report_id, q.target_type, q.target_id, q.reason, q.details, q.status, q.created_at, q.age,
       q.reporter_email, q.reports_on_target, q.item
FROM (
  SELECT open_reports.*, 'report'::text AS item
  FROM ({_REPORTS}) AS open_reports
  UNION ALL
  SELECT NULL::bigint, 'question'::text, qu.id, 'awaiting approval'::text, qu.title, qu.status, qu.created_at,
         now() - qu.created_at, NULL::text,
         (SELECT count(*) FROM reports r
          WHERE r.target_type = 'question' AND r.target_id = qu.id AND r.status IN ('pending', 'reviewing')),
         'question'::text
  FROM questions qu
  WHERE qu.status = 'pending' AND qu.deleted_at IS NULL
) AS q
ORDER BY q.created_at;
"""

DOWNGRADE = f"""
DROP VIEW IF EXISTS moderation_queue;
CREATE VIEW moderation_queue AS
{_REPORTS}
ORDER BY r.created_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
