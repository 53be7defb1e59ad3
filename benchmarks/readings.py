"""Bulk load (COPY) against one INSERT per row, on the same weather readings."""

import datetime as dt
import statistics
import time

import sqlalchemy as sa

from benchmarks.synthetic import readings, scratch_database
from microcrop_assets.resources.timescaledb import time_window
from microcrop_assets.resources.weatherxm import OBSERVATION_COLUMNS


def run(stations: int = 3000, loop_rows: int = 20_000, repeats: int = 3) -> dict:
    """COPY of one UTC day of `stations` stations, `repeats` days (median reported), then the loop."""
    days = [dt.date(2025, 6, 1) + dt.timedelta(days=i) for i in range(repeats)]
    rates = []
    with scratch_database() as db:
        for day in days:
            # time-ordered, as the asset loads
            frame = readings(stations, day).sort_values(["ts", "station_id"], ignore_index=True)
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            window = {"start": start, "end": start + dt.timedelta(days=1)}
            began = time.perf_counter()
            with db.begin() as conn:
                loaded = db.replace_in(conn, "weather_readings", frame, time_window("ts"), window, OBSERVATION_COLUMNS)
            rates.append(loaded / (time.perf_counter() - began))

        sample = frame.head(loop_rows)
        names = ", ".join(OBSERVATION_COLUMNS)
        values = ", ".join(":" + c for c in OBSERVATION_COLUMNS)
        insert = sa.text(f"INSERT INTO weather_readings ({names}) VALUES ({values})")
        records = sample.astype(object).where(sample.notna(), None).to_dict("records")
        with db.begin() as conn:
            conn.execute(sa.text("DELETE FROM weather_readings"))
        began = time.perf_counter()
        with db.begin() as conn:
            for record in records:  # the original: one statement per reading
                conn.execute(insert, record)
        loop_rate = len(records) / (time.perf_counter() - began)
    copy_rate = statistics.median(rates)
    return {
        "rows_per_copy": loaded,
        "copy_rows_per_second_median": round(copy_rate),
        "copy_rows_per_second_runs": [round(r) for r in rates],
        "rows_insert_loop": len(records),
        "insert_loop_rows_per_second": round(loop_rate),
        "speedup": round(copy_rate / loop_rate, 1),
    }
