-- sagactl saga_log schema v3 (SQLite): saga_counts is kept by triggers on saga_log, so every
-- row counts whoever wrote it (another writer, a hand fix or DELETE); the engine no longer
-- updates it itself. `sagactl db recount` rebuilds it.
CREATE TRIGGER IF NOT EXISTS saga_log_count_insert AFTER INSERT ON saga_log BEGIN
    INSERT OR IGNORE INTO saga_counts (saga_type, state, n) VALUES (NEW.saga_type, NEW.state, 0);
    UPDATE saga_counts SET n = n + 1 WHERE saga_type = NEW.saga_type AND state = NEW.state;
END;
CREATE TRIGGER IF NOT EXISTS saga_log_count_delete AFTER DELETE ON saga_log BEGIN
    INSERT OR IGNORE INTO saga_counts (saga_type, state, n) VALUES (OLD.saga_type, OLD.state, 0);
    UPDATE saga_counts SET n = n - 1 WHERE saga_type = OLD.saga_type AND state = OLD.state;
END;
CREATE TRIGGER IF NOT EXISTS saga_log_count_update AFTER UPDATE OF saga_type, state ON saga_log
    WHEN OLD.saga_type IS NOT NEW.saga_type OR OLD.state IS NOT NEW.state
BEGIN
    INSERT OR IGNORE INTO saga_counts (saga_type, state, n) VALUES (OLD.saga_type, OLD.state, 0);
    UPDATE saga_counts SET n = n - 1 WHERE saga_type = OLD.saga_type AND state = OLD.state;
    INSERT OR IGNORE INTO saga_counts (saga_type, state, n) VALUES (NEW.saga_type, NEW.state, 0);
    UPDATE saga_counts SET n = n + 1 WHERE saga_type = NEW.saga_type AND state = NEW.state;
END;
-- Start from the truth: whatever earlier versions or other writers left.
DELETE FROM saga_counts;
INSERT INTO saga_counts (saga_type, state, n)
    SELECT saga_type, state, count(*) FROM saga_log GROUP BY saga_type, state;
