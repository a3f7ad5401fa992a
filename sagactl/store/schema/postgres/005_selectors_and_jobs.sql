-- sagactl saga_log schema v5 (PostgreSQL): saga ID prefixes and bulk jobs. Additive: v4
-- readers keep working.
--
-- A prefix of a saga ID (`sagactl show 7f3c`) is looked up as the byte range [prefix,
-- successor) in the "C" collation. The primary key's btree is in the database's collation,
-- which under en_US.UTF-8, ICU and the like orders neither bytewise nor serves LIKE 'x%';
-- this index does, whatever the database's collation.
CREATE INDEX IF NOT EXISTS saga_log_id_prefix ON saga_log (saga_id COLLATE "C");
-- What a bulk job (resume/abort/resolve over a selector) touched: every transition it writes
-- carries detail.job. Only those transitions are indexed.
CREATE INDEX IF NOT EXISTS saga_transitions_job
    ON saga_transitions ((detail->>'job'), saga_id) WHERE (detail->>'job') IS NOT NULL;
-- One row per bulk job: who started it (user@host), why, with which selector; finished_at is
-- set when it went through its whole plan (re-running the same command then starts a new job;
-- until then it continues this one, skipping the sagas it already touched).
CREATE TABLE IF NOT EXISTS saga_jobs (
    job_id      text PRIMARY KEY,
    action      text NOT NULL,
    selector    jsonb NOT NULL,
    reason      text,
    started_by  text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz
);
