"""The season demo: a scenario of plots over several regions, run through the whole pipeline by
Dagster's own backfills, sensors and schedules, then a report measuring basis risk against the
sandbox's true crop condition."""
