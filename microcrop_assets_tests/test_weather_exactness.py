"""Every recorded plot day recomputes exactly from what `weather_indices` records.

A sandbox run stores station days (`weather_daily`) and per plot day the stations used and their
weights (`weather_indices.stations`, `.weights`). Recomputing each plot day's rain and temperatures
from those rows alone, in plain Python, must give the stored value bit for bit (==): the weights
recorded are the weights used, not a rounding of them.
"""

import datetime as dt
import math

import dagster as dg
import pytest

from microcrop_assets.sandbox.testing import ManualClock, running_sandbox
from microcrop_assets.weather.assets import weather_daily, weather_indices, weather_readings

from .fixtures_weather import chain_resources, registered
from .test_weather_assets import empty_store, late_sown_plots  # noqa: F401

FIRST, LAST = dt.date(2025, 7, 10), dt.date(2025, 7, 24)
CLOCK = dt.datetime(2025, 8, 5, 12, tzinfo=dt.UTC)
VARIABLES = ("rain_mm", "tmax_c", "tmin_c", "tmean_c")


def recomputed(stations: list[str], weights: list[float], station_day: dict, variable: str) -> float:
    """The documented rule: sum((w_i / t) v_i) over the recorded stations that have the variable,
    in recorded order (nearest first), t = the sum of their w_i; NaN when none has it."""
    present = [(w, station_day[s][variable]) for s, w in zip(stations, weights, strict=True)]
    present = [(w, v) for w, v in present if v is not None and not math.isnan(v)]
    if not present:
        return math.nan
    total = sum(w for w, _ in present)
    return sum((w / total) * v for w, v in present)


@pytest.fixture
def recorded_run(empty_store, late_sown_plots, tmp_path):  # noqa: F811 (fixtures imported above)
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(chain_resources(sandbox, empty_store, tmp_path), late_sown_plots)
        window = {
            "dagster/asset_partition_range_start": FIRST.isoformat(),
            "dagster/asset_partition_range_end": LAST.isoformat(),
        }
        assert dg.materialize([weather_readings, weather_daily], resources=resources, tags=window).success
        assert dg.materialize([weather_indices], resources=resources, tags=window).success
    return empty_store


def test_plot_weather_recomputes_exactly_from_the_record(recorded_run):
    db = recorded_run
    daily = db.read_frame("SELECT station_id, day, rain_mm, tmax_c, tmin_c, tmean_c FROM weather_daily")
    by_station_day = {(r.station_id, r.day): r._asdict() for r in daily.itertuples(index=False)}
    rows = db.read_frame(
        "SELECT plot_id, day, stations, weights, rain_mm, tmax_c, tmin_c, tmean_c FROM weather_indices"
        " WHERE stations IS NOT NULL ORDER BY plot_id, day"
    )
    assert len(rows) == 12 * ((LAST - FIRST).days + 1)  # every plot day has stations in this run
    several = 0
    for row in rows.itertuples(index=False):
        day = row.day if isinstance(row.day, dt.date) else row.day.date()
        station_day = {s: by_station_day[(s, day)] for s in row.stations}
        several += len(row.stations) > 1
        for variable in VARIABLES:
            stored = getattr(row, variable)
            expected = recomputed(row.stations, row.weights, station_day, variable)
            assert (math.isnan(stored) and math.isnan(expected)) or stored == expected, (
                f"{row.plot_id} {day} {variable}: stored {stored!r}, recomputed {expected!r} from {row.weights}"
            )
    assert several > len(rows) / 2  # most plot days mix stations: the weights matter
