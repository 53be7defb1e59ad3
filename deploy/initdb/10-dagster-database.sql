-- Dagster's run, event and schedule storage lives beside the pipeline's tables on the same server,
-- in a database of its own (run by the timescaledb image on first start, when the volume is empty).
CREATE DATABASE dagster;
