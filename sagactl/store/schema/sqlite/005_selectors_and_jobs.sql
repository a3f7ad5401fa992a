-- sagactl saga_log schema v5 (SQLite): bulk jobs. Additive: v4 readers keep working.
-- (A saga ID prefix is read as the range [prefix, successor) from the primary key's index:
-- SQLite compares text bytewise, so it needs no index of its own.)
--
-- What a bulk job (resume/abort/resolve over a selector) touched: every transition it writes
-- carries detail.job. Only those transitions are indexed.
CREATE INDEX IF NOT EXISTS saga_transitions_job
    ON saga_transitions (json_extract(detail, '$.job'), saga_id) WHERE json_extract(detail, '$.job') IS NOT NULL;
-- One row per bulk job: who started it (user@host), why, with which selector; finished_at is
-- set when it went through its whole plan (re-running the same command then starts a new job;
-- until then it continues this one, skipping the sagas it already touched).
CREATE TABLE IF NOT EXISTS saga_jobs (
    job_id      TEXT PRIMARY KEY,
    action      TEXT NOT NULL,
    selector    TEXT NOT NULL,
    reason      TEXT,
    started_by  TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT
);
