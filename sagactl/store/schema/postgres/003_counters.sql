-- sagactl saga_log schema v3 (PostgreSQL): saga_counts is kept by triggers on saga_log, so
-- every row counts whoever wrote it (a bulk import, another writer of this schema, a hand fix
-- or DELETE, TRUNCATE); the engine no longer updates it itself. `sagactl db recount` rebuilds
-- it. Counter rows are touched in key order, so two writers never wait on each other's rows
-- crosswise (no deadlock).
CREATE OR REPLACE FUNCTION sagactl_count(p_type text, p_state text, p_delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO saga_counts AS c (saga_type, state, n) VALUES (p_type, p_state, p_delta)
    ON CONFLICT (saga_type, state) DO UPDATE SET n = c.n + excluded.n
$$;
CREATE OR REPLACE FUNCTION sagactl_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM sagactl_count(NEW.saga_type, NEW.state, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM sagactl_count(OLD.saga_type, OLD.state, -1);
    ELSIF (OLD.saga_type, OLD.state) < (NEW.saga_type, NEW.state) THEN
        PERFORM sagactl_count(OLD.saga_type, OLD.state, -1);
        PERFORM sagactl_count(NEW.saga_type, NEW.state, 1);
    ELSIF (OLD.saga_type, OLD.state) > (NEW.saga_type, NEW.state) THEN
        PERFORM sagactl_count(NEW.saga_type, NEW.state, 1);
        PERFORM sagactl_count(OLD.saga_type, OLD.state, -1);
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION sagactl_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM saga_counts;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS saga_log_counts ON saga_log;
CREATE TRIGGER saga_log_counts AFTER INSERT OR DELETE OR UPDATE OF saga_type, state ON saga_log
    FOR EACH ROW EXECUTE FUNCTION sagactl_count_rows();
DROP TRIGGER IF EXISTS saga_log_counts_truncate ON saga_log;
CREATE TRIGGER saga_log_counts_truncate AFTER TRUNCATE ON saga_log
    FOR EACH STATEMENT EXECUTE FUNCTION sagactl_count_truncate();
-- Start from the truth: whatever earlier versions or other writers left.
LOCK TABLE saga_counts IN EXCLUSIVE MODE;
DELETE FROM saga_counts;
INSERT INTO saga_counts (saga_type, state, n)
    SELECT saga_type, state, count(*) FROM saga_log GROUP BY saga_type, state;
