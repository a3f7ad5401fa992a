-- sagactl saga_log schema v4 (PostgreSQL): workers. wake_at is when a released, unfinished
-- saga must be driven next (a detached start, a retry whose backoff is due, the deadline of
-- an awaited SQS reply); NULL while nothing is due (it runs, it ended, or an operator must
-- act). Workers claim from two partial indexes: released sagas by wake_at, held ones by the
-- lease's expiry (a driver that died). Additive: older readers keep working.
ALTER TABLE saga_log ADD COLUMN IF NOT EXISTS wake_at timestamptz;
CREATE INDEX IF NOT EXISTS saga_log_wake
    ON saga_log (wake_at) WHERE state NOT IN ('completed', 'failed') AND lease_owner IS NULL;
CREATE INDEX IF NOT EXISTS saga_log_lease
    ON saga_log (lease_expires_at) WHERE state NOT IN ('completed', 'failed') AND lease_owner IS NOT NULL;
-- Sagas recorded with --detach before workers existed are due now.
UPDATE saga_log SET wake_at = created_at
    WHERE state = 'started' AND lease_owner IS NULL AND wake_at IS NULL;
