"""Bulk load (COPY) against one INSERT per row, on the same weather readings."""

import datetime as dt
import time

import sqlalchemy as sa

from benchmarks.synthetic import readings, scratch_database
from microcrop_assets.resources.timescaledb import time_window
from microcrop_assets.resources.weatherxm import OBSERVATION_COLUMNS


def run(stations: int = 3000, loop_rows: int = 20_000) -> dict:
    day = dt.date(2025, 6, 1)
    frame = readings(stations, day).sort_values(["ts", "station_id"], ignore_index=True)  # as the asset loads
    start = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    window = {"start": start, "end": start + dt.timedelta(days=1)}
    with scratch_database() as db:
        began = time.perf_counter()
        with db.begin() as conn:
            loaded = db.replace_in(conn, "weather_readings", frame, time_window("ts"), window, OBSERVATION_COLUMNS)
        copy_seconds = time.perf_counter() - began

        sample = frame.head(loop_rows)
        names = ", ".join(OBSERVATION_COLUMNS)
        insert = sa.text(
            f"INSERT INTO weather_readings ({names}) VALUES ({', '.join(':' + c for c in OBSERVATION_COLUMNS)})"
        )
        records = sample.astype(object).where(sample.notna(), None).to_dict("records")
        with db.begin() as conn:
            conn.execute(sa.text("DELETE FROM weather_readings"))
        began = time.perf_counter()
        with db.begin() as conn:
            for record in records:  # the original: one statement per reading
                conn.execute(insert, record)
        loop_seconds = time.perf_counter() - began
    return {
        "rows_copy": loaded,
        "copy_rows_per_second": round(loaded / copy_seconds),
        "rows_insert_loop": len(records),
        "insert_loop_rows_per_second": round(len(records) / loop_seconds),
        "speedup": round((loaded / copy_seconds) / (len(records) / loop_seconds), 1),
    }
