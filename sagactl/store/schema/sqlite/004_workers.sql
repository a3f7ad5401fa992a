-- sagactl saga_log schema v4 (SQLite): workers. wake_at is when a released, unfinished saga
-- must be driven next (a detached start, a retry whose backoff is due, the deadline of an
-- awaited SQS reply); NULL while nothing is due. Additive: older readers keep working.
ALTER TABLE saga_log ADD COLUMN wake_at TEXT;
CREATE INDEX IF NOT EXISTS saga_log_wake
    ON saga_log (wake_at) WHERE state NOT IN ('completed', 'failed') AND lease_owner IS NULL;
CREATE INDEX IF NOT EXISTS saga_log_lease
    ON saga_log (lease_expires_at) WHERE state NOT IN ('completed', 'failed') AND lease_owner IS NOT NULL;
UPDATE saga_log SET wake_at = created_at
    WHERE state = 'started' AND lease_owner IS NULL AND wake_at IS NULL;
