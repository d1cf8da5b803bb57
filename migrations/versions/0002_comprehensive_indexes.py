"""Comprehensive indexes: every foreign key, common filters, composite, partial, GIN, full-text,
covering (INCLUDE) and BRIN indexes, 105 in all.

Built CONCURRENTLY (outside a transaction) so a migration on a live database never blocks writes.
A concurrent build that fails leaves an INVALID index behind; re-running this migration drops such
an index and builds it again instead of skipping it, as IF NOT EXISTS would.

No index here is a left prefix of another plain index on the same table, so the catalogue's
redundant-index check stays quiet on a fresh database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (index name, "ON table ..." clause); names are constants, never user input.
INDEXES: list[tuple[str, str]] = [
    # users (12)
    ("users_city_role_idx", "ON users (city_id, role)"),
    ("users_role_created_idx", "ON users (role, created_at DESC)"),
    ("users_created_at_idx", "ON users (created_at)"),
    ("users_last_login_idx", "ON users (last_login_at DESC) WHERE is_active"),
    ("users_active_idx", "ON users (id) WHERE is_active AND deleted_at IS NULL"),
    ("users_unverified_idx", "ON users (created_at) WHERE NOT is_verified"),
    ("users_deleted_idx", "ON users (deleted_at) WHERE deleted_at IS NOT NULL"),
    ("users_interests_gin", "ON users USING gin (interests)"),
    ("users_preferences_gin", "ON users USING gin (preferences jsonb_path_ops)"),
    ("users_full_name_lower_idx", "ON users (lower(full_name) text_pattern_ops)"),
    ("users_display_name_idx", "ON users (display_name) WHERE display_name IS NOT NULL"),
    ("users_staff_idx", "ON users (city_id) INCLUDE (email, full_name) "
                        "WHERE role IN ('city_staff', 'admin', 'moderator')"),
    # cities (4)
    ("cities_state_name_idx", "ON cities (state, name)"),
    ("cities_active_idx", "ON cities (name) WHERE is_active"),
    ("cities_settings_gin", "ON cities USING gin (settings)"),
    ("cities_created_at_idx", "ON cities (created_at)"),
    # ballots (3)
    ("ballots_city_date_idx", "ON ballots (city_id, election_date DESC)"),
    ("ballots_published_idx", "ON ballots (election_date) WHERE status = 'published'"),
    ("ballots_status_date_idx", "ON ballots (status, election_date)"),
    # contests (3)
    ("contests_ballot_position_idx", "ON contests (ballot_id, position)"),
    ("contests_type_ballot_idx", "ON contests (contest_type, ballot_id)"),
    ("contests_title_lower_idx", "ON contests (lower(title))"),
    # candidates (5)
    ("candidates_contest_status_idx", "ON candidates (contest_id, status)"),
    ("candidates_user_idx", "ON candidates (user_id)"),
    ("candidates_party_idx", "ON candidates (party) WHERE status <> 'withdrawn'"),
    ("candidates_name_lower_idx", "ON candidates (lower(name))"),
    ("candidates_verified_idx", "ON candidates (contest_id) INCLUDE (name, party) WHERE status = 'verified'"),
    # questions (10)
    ("questions_contest_created_idx", "ON questions (contest_id, created_at DESC)"),
    ("questions_contest_score_idx", "ON questions (contest_id, vote_score DESC) WHERE deleted_at IS NULL"),
    ("questions_author_created_idx", "ON questions (author_id, created_at DESC)"),
    ("questions_status_created_idx", "ON questions (status, created_at DESC)"),
    ("questions_pending_idx", "ON questions (created_at) WHERE status = 'pending' AND deleted_at IS NULL"),
    ("questions_tags_gin", "ON questions USING gin (tags)"),
    ("questions_search_gin", "ON questions USING gin (search_vector)"),
    ("questions_deleted_idx", "ON questions (deleted_at) WHERE deleted_at IS NOT NULL"),
    ("questions_answered_idx", "ON questions (contest_id) INCLUDE (title, vote_score) WHERE status = 'answered'"),
    ("questions_created_brin", "ON questions USING brin (created_at)"),
    # votes (5; the unique (question_id, user_id) constraint also serves question_id)
    ("votes_user_created_idx", "ON votes (user_id, created_at DESC)"),
    ("votes_question_value_idx", "ON votes (question_id, value)"),
    ("votes_created_at_idx", "ON votes (created_at)"),
    ("votes_upvotes_idx", "ON votes (question_id) WHERE value = 1"),
    ("votes_downvotes_idx", "ON votes (question_id) WHERE value = -1"),
    # video_answers (6)
    ("video_answers_candidate_created_idx", "ON video_answers (candidate_id, created_at DESC)"),
    ("video_answers_video_idx", "ON video_answers (video_id)"),
    ("video_answers_published_idx", "ON video_answers (published_at DESC) WHERE status = 'published'"),
    ("video_answers_transcript_gin", "ON video_answers USING gin (transcript_vector)"),
    ("video_answers_untranscribed_idx", "ON video_answers (created_at) WHERE transcript IS NULL"),
    ("video_answers_views_idx", "ON video_answers (view_count DESC) INCLUDE (question_id, candidate_id)"),
    # rebuttals (4)
    ("rebuttals_answer_created_idx", "ON rebuttals (video_answer_id, created_at)"),
    ("rebuttals_candidate_idx", "ON rebuttals (candidate_id)"),
    ("rebuttals_video_idx", "ON rebuttals (video_id)"),
    ("rebuttals_published_idx", "ON rebuttals (video_answer_id) WHERE status = 'published'"),
    # claims (4)
    ("claims_answer_verdict_idx", "ON claims (video_answer_id, verdict)"),
    ("claims_reviewer_idx", "ON claims (reviewed_by)"),
    ("claims_unreviewed_idx", "ON claims (created_at) WHERE verdict = 'unverified'"),
    ("claims_sources_gin", "ON claims USING gin (sources jsonb_path_ops)"),
    # reports (4)
    ("reports_reporter_idx", "ON reports (reporter_id)"),
    ("reports_target_idx", "ON reports (target_type, target_id)"),
    ("reports_open_idx", "ON reports (created_at) WHERE status IN ('pending', 'reviewing')"),
    ("reports_status_created_idx", "ON reports (status, created_at DESC)"),
    # moderation_actions (4)
    ("moderation_actions_moderator_idx", "ON moderation_actions (moderator_id, created_at DESC)"),
    ("moderation_actions_report_idx", "ON moderation_actions (report_id)"),
    ("moderation_actions_target_idx", "ON moderation_actions (target_type, target_id)"),
    ("moderation_actions_action_idx", "ON moderation_actions (action, created_at DESC)"),
    # audit_logs (7)
    ("audit_logs_actor_created_idx", "ON audit_logs (actor_id, created_at DESC)"),
    ("audit_logs_entity_idx", "ON audit_logs (entity_type, entity_id, created_at DESC)"),
    ("audit_logs_action_created_idx", "ON audit_logs (action, created_at DESC)"),
    ("audit_logs_created_idx", "ON audit_logs (created_at DESC)"),
    ("audit_logs_created_brin", "ON audit_logs USING brin (created_at)"),
    ("audit_logs_changes_gin", "ON audit_logs USING gin (changes jsonb_path_ops)"),
    ("audit_logs_ip_idx", "ON audit_logs (ip_address) WHERE ip_address IS NOT NULL"),
    # follows (5; the unique (follower_id, followee_type, followee_id) serves follower_id)
    ("follows_followee_idx", "ON follows (followee_type, followee_id)"),
    ("follows_follower_created_idx", "ON follows (follower_id, created_at DESC)"),
    ("follows_candidates_idx", "ON follows (followee_id) WHERE followee_type = 'candidate'"),
    ("follows_questions_idx", "ON follows (followee_id) WHERE followee_type = 'question'"),
    ("follows_created_idx", "ON follows (created_at)"),
    # videos (5)
    ("videos_uploader_created_idx", "ON videos (uploader_id, created_at DESC)"),
    ("videos_status_created_idx", "ON videos (status, created_at)"),
    ("videos_in_progress_idx", "ON videos (created_at) WHERE status IN ('uploading', 'processing')"),
    ("videos_metadata_gin", "ON videos USING gin (metadata jsonb_path_ops)"),
    ("videos_ready_duration_idx", "ON videos (duration_seconds) WHERE status = 'ready'"),
    # sessions (4)
    ("sessions_user_created_idx", "ON sessions (user_id, created_at DESC)"),
    ("sessions_live_expires_idx", "ON sessions (expires_at) WHERE revoked_at IS NULL"),
    ("sessions_revoked_idx", "ON sessions (revoked_at) WHERE revoked_at IS NOT NULL"),
    ("sessions_ip_idx", "ON sessions (ip_address)"),
    # notifications (4)
    ("notifications_user_created_idx", "ON notifications (user_id, created_at DESC)"),
    ("notifications_unread_idx", "ON notifications (user_id) WHERE read_at IS NULL"),
    ("notifications_kind_created_idx", "ON notifications (kind, created_at)"),
    ("notifications_payload_gin", "ON notifications USING gin (payload jsonb_path_ops)"),
    # topics (2), question_topics (1)
    ("topics_name_lower_idx", "ON topics (lower(name))"),
    ("topics_description_fts", "ON topics USING gin (to_tsvector('english', coalesce(description, '')))"),
    ("question_topics_topic_idx", "ON question_topics (topic_id, question_id)"),
    # comments (5)
    ("comments_question_created_idx", "ON comments (question_id, created_at)"),
    ("comments_author_idx", "ON comments (author_id)"),
    ("comments_parent_idx", "ON comments (parent_id)"),
    ("comments_live_idx", "ON comments (question_id) WHERE deleted_at IS NULL"),
    ("comments_body_fts", "ON comments USING gin (to_tsvector('english', body))"),
    # endorsements (2)
    ("endorsements_candidate_type_idx", "ON endorsements (candidate_id, endorser_type)"),
    ("endorsements_type_idx", "ON endorsements (endorser_type)"),
    # video_views (3)
    ("video_views_answer_created_idx", "ON video_views (video_answer_id, created_at)"),
    ("video_views_user_idx", "ON video_views (user_id)"),
    ("video_views_completed_idx", "ON video_views (video_answer_id) WHERE completed"),
    # password_resets (3)
    ("password_resets_user_idx", "ON password_resets (user_id)"),
    ("password_resets_open_idx", "ON password_resets (expires_at) WHERE used_at IS NULL"),
    ("password_resets_created_idx", "ON password_resets (created_at)"),
]

_VALIDITY = sa.text(
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
)


def upgrade() -> None:
    offline = context.is_offline_mode()
    with op.get_context().autocommit_block():
        for name, clause in INDEXES:
            if offline:
                op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {clause}")
                continue
            valid = op.get_bind().execute(_VALIDITY, {"name": name}).scalar()
            if valid is True:
                continue  # built by an earlier, interrupted run
            if valid is False:  # left INVALID by a failed concurrent build: rebuild it
                op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} {clause}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, _ in reversed(INDEXES):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
