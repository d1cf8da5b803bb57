-- CivicQ views. Applied by migration 0003; re-runnable (every object is dropped first).
-- The heavier aggregates are materialized views with a unique index, so that
-- refresh_all_materialized_views() can refresh them CONCURRENTLY (readers are never blocked).
-- Changing this file needs a new migration that applies it again.

DROP FUNCTION IF EXISTS refresh_all_materialized_views(boolean);
DROP VIEW IF EXISTS candidate_profiles, video_answer_stats, moderation_queue,
    trending_questions, recent_audit_trail;
DROP MATERIALIZED VIEW IF EXISTS popular_questions, contest_summary, user_activity_summary, city_dashboard;

-- Approved or answered questions with their votes and their rank within the contest.
CREATE MATERIALIZED VIEW popular_questions AS
SELECT q.id                                          AS question_id,
       q.contest_id,
       q.title,
       q.status,
       q.created_at,
       count(v.id) FILTER (WHERE v.value = 1)        AS upvotes,
       count(v.id) FILTER (WHERE v.value = -1)       AS downvotes,
       coalesce(sum(v.value), 0)::integer            AS score,
       rank() OVER (PARTITION BY q.contest_id ORDER BY coalesce(sum(v.value), 0) DESC) AS contest_rank
FROM questions q
LEFT JOIN votes v ON v.question_id = q.id
WHERE q.deleted_at IS NULL
  AND q.status IN ('approved', 'answered')
GROUP BY q.id;
CREATE UNIQUE INDEX popular_questions_question_id_key ON popular_questions (question_id);

-- One row per contest: its ballot, and counts of candidates, questions, answers and votes.
CREATE MATERIALIZED VIEW contest_summary AS
SELECT c.id             AS contest_id,
       c.title,
       c.contest_type,
       b.id             AS ballot_id,
       b.name           AS ballot_name,
       b.election_date,
       b.city_id,
       (SELECT count(*) FROM candidates ca
         WHERE ca.contest_id = c.id AND ca.status <> 'withdrawn')                     AS candidate_count,
       (SELECT count(*) FROM questions q
         WHERE q.contest_id = c.id AND q.deleted_at IS NULL)                          AS question_count,
       (SELECT count(*) FROM video_answers va JOIN questions q ON q.id = va.question_id
         WHERE q.contest_id = c.id AND va.status = 'published')                       AS published_answer_count,
       (SELECT count(*) FROM votes v JOIN questions q ON q.id = v.question_id
         WHERE q.contest_id = c.id AND q.deleted_at IS NULL)                          AS vote_count
FROM contests c
JOIN ballots b ON b.id = c.ballot_id;
CREATE UNIQUE INDEX contest_summary_contest_id_key ON contest_summary (contest_id);

-- Candidates with their contest and how much they took part.
CREATE VIEW candidate_profiles AS
SELECT ca.id          AS candidate_id,
       ca.name,
       ca.party,
       ca.status,
       ca.contest_id,
       c.title        AS contest_title,
       u.email        AS account_email,
       (SELECT count(*) FROM video_answers va
         WHERE va.candidate_id = ca.id AND va.status = 'published')  AS answer_count,
       (SELECT count(*) FROM rebuttals r WHERE r.candidate_id = ca.id) AS rebuttal_count,
       (SELECT count(*) FROM endorsements e WHERE e.candidate_id = ca.id) AS endorsement_count,
       (SELECT count(*) FROM follows f
         WHERE f.followee_type = 'candidate' AND f.followee_id = ca.id) AS follower_count
FROM candidates ca
JOIN contests c ON c.id = ca.contest_id
LEFT JOIN users u ON u.id = ca.user_id;

-- Engagement per (not deleted) user.
CREATE MATERIALIZED VIEW user_activity_summary AS
SELECT u.id AS user_id,
       u.email,
       u.role,
       u.city_id,
       (SELECT count(*) FROM questions q WHERE q.author_id = u.id AND q.deleted_at IS NULL)   AS questions_asked,
       (SELECT count(*) FROM votes v WHERE v.user_id = u.id)                                 AS votes_cast,
       (SELECT count(*) FROM comments cm WHERE cm.author_id = u.id AND cm.deleted_at IS NULL) AS comments_posted,
       (SELECT count(*) FROM follows f WHERE f.follower_id = u.id)                           AS following_count,
       greatest(u.last_login_at,
                (SELECT max(q.created_at) FROM questions q WHERE q.author_id = u.id),
                (SELECT max(v.created_at) FROM votes v WHERE v.user_id = u.id))              AS last_active_at
FROM users u
WHERE u.deleted_at IS NULL;
CREATE UNIQUE INDEX user_activity_summary_user_id_key ON user_activity_summary (user_id);

-- How each video answer performs.
CREATE VIEW video_answer_stats AS
SELECT va.id                 AS video_answer_id,
       va.question_id,
       va.candidate_id,
       va.status,
       va.view_count,
       vid.duration_seconds,
       (SELECT count(*) FROM video_views vv WHERE vv.video_answer_id = va.id)                 AS tracked_views,
       (SELECT count(*) FROM video_views vv WHERE vv.video_answer_id = va.id AND vv.completed) AS completed_views,
       (SELECT round(avg(vv.watched_seconds), 1) FROM video_views vv
         WHERE vv.video_answer_id = va.id)                                                   AS avg_watched_seconds,
       (SELECT count(*) FROM rebuttals r WHERE r.video_answer_id = va.id)                    AS rebuttal_count,
       (SELECT count(*) FROM claims cl WHERE cl.video_answer_id = va.id)                     AS claim_count,
       va.transcript IS NOT NULL                                                              AS has_transcript
FROM video_answers va
LEFT JOIN videos vid ON vid.id = va.video_id;

-- City-wide figures.
CREATE MATERIALIZED VIEW city_dashboard AS
SELECT ci.id AS city_id,
       ci.name,
       ci.slug,
       (SELECT count(*) FROM users u WHERE u.city_id = ci.id AND u.deleted_at IS NULL) AS user_count,
       (SELECT count(*) FROM ballots b WHERE b.city_id = ci.id)                        AS ballot_count,
       (SELECT count(*) FROM contests c JOIN ballots b ON b.id = c.ballot_id
         WHERE b.city_id = ci.id)                                                      AS contest_count,
       (SELECT count(*) FROM candidates ca JOIN contests c ON c.id = ca.contest_id
         JOIN ballots b ON b.id = c.ballot_id WHERE b.city_id = ci.id)                 AS candidate_count,
       (SELECT count(*) FROM questions q JOIN contests c ON c.id = q.contest_id
         JOIN ballots b ON b.id = c.ballot_id
         WHERE b.city_id = ci.id AND q.deleted_at IS NULL)                             AS question_count,
       (SELECT count(*) FROM votes v JOIN questions q ON q.id = v.question_id
         JOIN contests c ON c.id = q.contest_id JOIN ballots b ON b.id = c.ballot_id
         WHERE b.city_id = ci.id AND q.deleted_at IS NULL)                             AS vote_count,
       (SELECT count(*) FROM video_answers va JOIN questions q ON q.id = va.question_id
         JOIN contests c ON c.id = q.contest_id JOIN ballots b ON b.id = c.ballot_id
         WHERE b.city_id = ci.id AND va.status = 'published')                          AS published_answer_count
FROM cities ci;
CREATE UNIQUE INDEX city_dashboard_city_id_key ON city_dashboard (city_id);

-- Open reports, oldest first, with how many reports the same target has.
CREATE VIEW moderation_queue AS
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
ORDER BY r.created_at;

-- Questions by the votes they received in the last 24 hours.
CREATE VIEW trending_questions AS
SELECT q.id                        AS question_id,
       q.contest_id,
       q.title,
       count(v.id)                 AS votes_24h,
       coalesce(sum(v.value), 0)::integer AS score_24h
FROM questions q
JOIN votes v ON v.question_id = q.id AND v.created_at >= now() - interval '24 hours'
WHERE q.deleted_at IS NULL
  AND q.status IN ('approved', 'answered')
GROUP BY q.id
ORDER BY score_24h DESC, votes_24h DESC, q.id;

-- The last seven days of audit events, with who did them.
CREATE VIEW recent_audit_trail AS
SELECT a.id,
       a.created_at,
       a.action,
       a.entity_type,
       a.entity_id,
       a.actor_id,
       u.email AS actor_email,
       u.role  AS actor_role,
       a.changes,
       a.ip_address
FROM audit_logs a
LEFT JOIN users u ON u.id = a.actor_id
WHERE a.created_at >= now() - interval '7 days'
ORDER BY a.created_at DESC;

-- When each materialized view was last refreshed: PostgreSQL does not record it, so the refresh
-- function does (the matview-stale check reads it).
CREATE TABLE IF NOT EXISTS matview_refresh_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    view_name       text NOT NULL,
    refreshed_at    timestamptz NOT NULL DEFAULT now(),
    duration_ms     numeric NOT NULL,
    was_concurrent  boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS matview_refresh_log_view_idx ON matview_refresh_log (view_name, refreshed_at DESC);

-- Refresh every materialized view of the current schema; CONCURRENTLY where a unique index on
-- plain columns allows it and the view is populated. Returns what it did and how long it took.
CREATE FUNCTION refresh_all_materialized_views(try_concurrently boolean DEFAULT true)
RETURNS TABLE (view_name text, refreshed_concurrently boolean, duration_ms numeric)
LANGUAGE plpgsql
AS $$
DECLARE
    m  record;
    t0 timestamptz;
BEGIN
    FOR m IN
        SELECT mv.schemaname, mv.matviewname, mv.ispopulated,
               format('%I.%I', mv.schemaname, mv.matviewname) AS qualified
        FROM pg_catalog.pg_matviews mv
        WHERE mv.schemaname = current_schema()
        ORDER BY mv.matviewname
    LOOP
        refreshed_concurrently := try_concurrently AND m.ispopulated AND EXISTS (
            SELECT 1 FROM pg_catalog.pg_index i
            WHERE i.indrelid = m.qualified::regclass
              AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL);
        t0 := clock_timestamp();
        IF refreshed_concurrently THEN
            EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', m.qualified);
        ELSE
            EXECUTE format('REFRESH MATERIALIZED VIEW %s', m.qualified);
        END IF;
        view_name := m.matviewname;
        duration_ms := round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 1);
        INSERT INTO matview_refresh_log (view_name, duration_ms, was_concurrent)
        VALUES (m.matviewname, duration_ms, refreshed_concurrently);
        RETURN NEXT;
    END LOOP;
END
$$;
