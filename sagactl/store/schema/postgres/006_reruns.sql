-- sagactl saga_log schema v6 (PostgreSQL): reruns. A saga that ended failed can be run again
-- as a new saga (`sagactl rerun`): the new one names the failed one in rerun_of, the failed one
-- names the new one in rerun_as (written together, once). Additive: older readers keep working.
ALTER TABLE saga_log ADD COLUMN IF NOT EXISTS rerun_of text;
ALTER TABLE saga_log ADD COLUMN IF NOT EXISTS rerun_as text;
