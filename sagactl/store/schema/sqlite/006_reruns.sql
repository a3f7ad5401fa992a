-- sagactl saga_log schema v6 (SQLite): reruns. A saga that ended failed can be run again as a
-- new saga (`sagactl rerun`): the new one names the failed one in rerun_of, the failed one
-- names the new one in rerun_as (written together, once). Additive: older readers keep working.
ALTER TABLE saga_log ADD COLUMN rerun_of TEXT;
ALTER TABLE saga_log ADD COLUMN rerun_as TEXT;
