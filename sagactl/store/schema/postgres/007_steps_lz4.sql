-- sagactl saga_log schema v7 (PostgreSQL): the steps array compressed with lz4 where the server
-- has it (PostgreSQL 14 and later, built with lz4, as the Debian/Ubuntu/RDS/Cloud SQL builds are).
-- Every commit rewrites `steps` whole inside the server (jsonb_set patches only the element
-- that changed on the wire, but PostgreSQL has no in-place update of a TOASTed value): it is
-- decompressed, patched and compressed again. pglz made that cost grow steeply with the saga's
-- length (0.66 ms against 0.29 ms for a commit that leaves steps alone, at 200 steps); lz4 cuts
-- the part that grows by more than half. Only how new values are stored changes: rows written
-- before keep pglz until their next commit, readers see the same jsonb, nothing is rewritten.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE saga_log ALTER COLUMN steps SET COMPRESSION lz4';
    END IF;
END
$$;
