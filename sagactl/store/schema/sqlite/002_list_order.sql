-- sagactl saga_log schema v2 (SQLite): `list` without --stuck reads the oldest sagas in
-- created_at order from an index instead of sorting the whole table (compensating ones come
-- first from saga_log_state_created). Additive: v1 readers keep working.
CREATE INDEX IF NOT EXISTS saga_log_created ON saga_log (created_at, saga_id);
