-- sagactl saga_log schema v6 (PostgreSQL): reruns and retention. A saga that ended failed can be run again
-- as a new saga (`sagactl rerun`): the new one names the failed one in rerun_of, the failed one
-- names the new one in rerun_as (written together, once). Additive: older readers keep working.
ALTER TABLE saga_log ADD COLUMN IF NOT EXISTS rerun_of text;
ALTER TABLE saga_log ADD COLUMN IF NOT EXISTS rerun_as text;
-- Retention (`sagactl prune`) deletes finished sagas in batches. The counters follow a DELETE
-- once per statement, from its transition table: one upsert per (type, state) instead of one
-- per row, and the counter rows are locked only at the end of the statement, so writers that
-- update the same counters wait for a batch's commit, not for the whole batch to be deleted.
-- INSERT and UPDATE keep the row trigger of v3; keys are still taken in order (no deadlock).
CREATE OR REPLACE FUNCTION sagactl_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO saga_counts AS c (saga_type, state, n)
        SELECT saga_type, state, -count(*) FROM sagactl_gone GROUP BY saga_type, state ORDER BY saga_type, state
    ON CONFLICT (saga_type, state) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS saga_log_counts ON saga_log;
CREATE TRIGGER saga_log_counts AFTER INSERT OR UPDATE OF saga_type, state ON saga_log
    FOR EACH ROW EXECUTE FUNCTION sagactl_count_rows();
DROP TRIGGER IF EXISTS saga_log_counts_delete ON saga_log;
CREATE TRIGGER saga_log_counts_delete AFTER DELETE ON saga_log REFERENCING OLD TABLE AS sagactl_gone
    FOR EACH STATEMENT EXECUTE FUNCTION sagactl_count_deleted();
