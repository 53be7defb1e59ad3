"""Vendor gaps: units of vendor data a run could not fetch, kept until a later run fetches them.

A stage (the asset calling a vendor: weather_readings, and later Spexi downloads and Pinata pins)
records every unit it had to skip (`key`: a station id, an order id, ...) against the partition day it
belongs to, in the same transaction as the data it did store. Scheduled runs ask for the open gaps
of recent days and fetch them again; a stored unit resolves its gap. Nothing is ever lost silently:
a gap stays open (and the stage's check stays failed) until the data is in.
"""

import datetime as dt
from collections.abc import Collection, Mapping

import pandas as pd
import sqlalchemy as sa

from microcrop_assets.resources.timescaledb import TimescaleDBResource

GAP_COLUMNS = ["day", "key", "vendor", "reason", "attempts", "first_seen", "last_attempt"]

_RECORD = sa.text(
    """
    INSERT INTO vendor_gaps (stage, day, key, vendor, reason, attempts, first_seen, last_attempt)
    VALUES (:stage, :day, :key, :vendor, :reason, 1, :at, :at)
    ON CONFLICT (stage, day, key) DO UPDATE SET
        vendor = EXCLUDED.vendor,
        reason = EXCLUDED.reason,
        attempts = vendor_gaps.attempts + 1,
        last_attempt = EXCLUDED.last_attempt,
        resolved_at = NULL
    """
)


def record_gaps(
    conn: sa.Connection, stage: str, vendor: str, day: dt.date, failures: Mapping[str, str], at: dt.datetime
) -> None:
    """Inside the caller's transaction: open (or count one more attempt at) a gap per failed key."""
    if failures:
        rows = [
            {"stage": stage, "day": day, "key": key, "vendor": vendor, "reason": reason, "at": at}
            for key, reason in failures.items()
        ]
        conn.execute(_RECORD, rows)


def resolve_gaps(
    conn: sa.Connection,
    stage: str,
    day: dt.date,
    at: dt.datetime,
    *,
    keys: Collection[str] | None = None,
    still_failing: Collection[str] = (),
) -> int:
    """Inside the caller's transaction: close the day's open gaps of `keys` (every key when None),
    except those `still_failing`. Returns how many were closed."""
    where = "stage = :stage AND day = :day AND resolved_at IS NULL AND NOT key = ANY(:failing)"
    params = {"stage": stage, "day": day, "at": at, "failing": list(still_failing)}
    if keys is not None:
        where += " AND key = ANY(:keys)"
        params["keys"] = list(keys)
    return conn.execute(sa.text(f"UPDATE vendor_gaps SET resolved_at = :at WHERE {where}"), params).rowcount


def open_gaps(timescaledb: TimescaleDBResource, stage: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The stage's open gaps of days `first`..`last` (inclusive), ordered by day and key."""
    return timescaledb.read_frame(
        f"SELECT {', '.join(GAP_COLUMNS)} FROM vendor_gaps"
        " WHERE stage = :stage AND day BETWEEN :first AND :last AND resolved_at IS NULL ORDER BY day, key",
        {"stage": stage, "first": first, "last": last},
    )
