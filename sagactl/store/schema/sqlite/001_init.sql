-- sagactl saga_log schema v1 (SQLite). Times are ISO 8601 UTC text ("...Z"), JSON is text.
CREATE TABLE IF NOT EXISTS saga_log (
    saga_id          TEXT PRIMARY KEY,
    saga_type        TEXT NOT NULL,
    state            TEXT NOT NULL,
    current_step     INTEGER,
    current_step_name TEXT,
    data             TEXT,
    steps            TEXT NOT NULL,
    definition       TEXT NOT NULL,
    deadline_at      TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
-- Only active sagas are indexed for the stuck scan: its cost does not grow with finished sagas.
CREATE INDEX IF NOT EXISTS saga_log_active_deadline
    ON saga_log (deadline_at) WHERE state NOT IN ('completed', 'failed');
CREATE INDEX IF NOT EXISTS saga_log_active_updated
    ON saga_log (updated_at) WHERE state NOT IN ('completed', 'failed');
CREATE INDEX IF NOT EXISTS saga_log_type_state ON saga_log (saga_type, state, created_at);
CREATE INDEX IF NOT EXISTS saga_log_state_created ON saga_log (state, created_at);

CREATE TABLE IF NOT EXISTS saga_transitions (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    saga_id   TEXT NOT NULL,
    step_name TEXT,
    old_state TEXT,
    new_state TEXT NOT NULL,
    detail    TEXT,
    at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS saga_transitions_saga ON saga_transitions (saga_id, id);

-- Per type/state counts kept in the same transaction as each transition (sagactl stats).
CREATE TABLE IF NOT EXISTS saga_counts (
    saga_type TEXT NOT NULL,
    state     TEXT NOT NULL,
    n         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (saga_type, state)
);
