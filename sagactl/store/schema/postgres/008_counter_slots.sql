-- sagactl saga_log schema v8 (PostgreSQL): saga_counts spread over 16 rows per (type, state),
-- summed when read. With one row per (type, state), every commit that changed a saga's state
-- held that row's lock until its WAL flush, so state changes of one saga type went one flush at
-- a time: 204 a second from 16 connections with a 4 ms flush (2,850 with this machine's fast
-- one). Each connection now counts in its own row (pg_backend_pid() % 16): 2,798 and 6,282 a
-- second (benchmarks/RESULTS-worker.md). A slot's n may go below zero (a saga counted in by one
-- connection and out by another); only the sum per (type, state) means anything. Rows are still
-- touched in key order within a statement (no deadlock).
ALTER TABLE saga_counts ADD COLUMN IF NOT EXISTS slot smallint NOT NULL DEFAULT 0;
ALTER TABLE saga_counts DROP CONSTRAINT IF EXISTS saga_counts_pkey;
ALTER TABLE saga_counts ADD CONSTRAINT saga_counts_pkey PRIMARY KEY (saga_type, state, slot);
CREATE OR REPLACE FUNCTION sagactl_count(p_type text, p_state text, p_delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO saga_counts AS c (saga_type, state, slot, n)
        VALUES (p_type, p_state, pg_backend_pid() % 16, p_delta)
    ON CONFLICT (saga_type, state, slot) DO UPDATE SET n = c.n + excluded.n
$$;
CREATE OR REPLACE FUNCTION sagactl_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO saga_counts AS c (saga_type, state, slot, n)
        SELECT saga_type, state, pg_backend_pid() % 16, -count(*) FROM sagactl_gone
        GROUP BY saga_type, state ORDER BY saga_type, state
    ON CONFLICT (saga_type, state, slot) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
