"""Station days from raw observations: the counter walk, daily temperatures, coverage."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from microcrop_assets.science.stations import STATION_DAY_COLUMNS, station_days

pytestmark = pytest.mark.unit


def readings(rows, station="st-a"):
    """rows: (ISO timestamp, temperature, humidity, precipitation_accumulated)."""
    return pd.DataFrame(
        {
            "station_id": station,
            "ts": pd.to_datetime([r[0] for r in rows], utc=True),
            "temperature": [r[1] for r in rows],
            "humidity": [r[2] for r in rows],
            "precipitation_accumulated": [r[3] for r in rows],
        }
    )


def test_counter_walk_adds_increases_restarts_after_a_reset_and_skips_nan():
    # Counter 0.0, 0.2, (NaN), 0.5, reset to 0.1, 0.4: increases 0.2 + 0.3, reset adds 0.1, then 0.3 -> 0.9.
    # Reading the NaN as zero would add a false reset (0.5) and give 1.1.
    frame = readings(
        [
            ("2025-03-01T06:00:00Z", 20.0, 60.0, 0.0),
            ("2025-03-01T06:05:00Z", 21.0, 62.0, 0.2),
            ("2025-03-01T06:10:00Z", 22.0, 64.0, np.nan),
            ("2025-03-01T06:15:00Z", 23.0, 66.0, 0.5),
            ("2025-03-01T06:20:00Z", 24.0, 68.0, 0.1),
            ("2025-03-01T06:25:00Z", 25.0, 70.0, 0.4),
        ]
    ).sample(frac=1, random_state=3)  # input order must not matter
    day = station_days(frame).iloc[0]
    assert day["rain_mm"] == pytest.approx(0.9, abs=1e-12)
    assert (day["tmax_c"], day["tmin_c"], day["tmean_c"]) == (25.0, 20.0, 22.5)
    assert day["humidity_mean"] == pytest.approx(65.0)
    assert day["n_obs"] == 6
    assert day["coverage"] == pytest.approx(6 / 288)
    assert day["day"] == dt.date(2025, 3, 1)


def test_day_without_counter_readings_has_missing_rain_and_one_reading_gives_zero():
    frame = readings(
        [
            ("2025-03-01T10:00:00Z", 20.0, 50.0, np.nan),
            ("2025-03-01T11:00:00Z", 21.0, 50.0, np.nan),
            ("2025-03-02T10:00:00Z", 22.0, 50.0, 3.4),
        ]
    )
    days = station_days(frame).set_index("day")
    assert np.isnan(days.loc[dt.date(2025, 3, 1), "rain_mm"])
    assert days.loc[dt.date(2025, 3, 2), "rain_mm"] == 0.0
    assert days.loc[dt.date(2025, 3, 1), "tmax_c"] == 21.0


def test_first_reading_of_a_day_starts_its_walk():
    # 1.0 at 23:55 and 1.6 at 00:05: the 0.6 between days is attributed to neither, so each day
    # depends on its own readings only.
    frame = readings(
        [
            ("2025-03-01T23:50:00Z", 15.0, 80.0, 0.5),
            ("2025-03-01T23:55:00Z", 15.0, 80.0, 1.0),
            ("2025-03-02T00:05:00Z", 15.0, 80.0, 1.6),
            ("2025-03-02T00:10:00Z", 15.0, 80.0, 2.0),
        ]
    )
    rain = station_days(frame).set_index("day")["rain_mm"]
    assert rain[dt.date(2025, 3, 1)] == pytest.approx(0.5)
    assert rain[dt.date(2025, 3, 2)] == pytest.approx(0.4)
    alone = station_days(frame[frame["ts"] >= "2025-03-02"]).iloc[0]
    assert alone["rain_mm"] == rain[dt.date(2025, 3, 2)]


def test_coverage_counts_slots_with_an_observation():
    full_day = pd.date_range("2025-03-01", periods=288, freq="5min", tz="UTC")
    half_day = pd.date_range("2025-03-02", periods=144, freq="5min", tz="UTC")
    ts = full_day.append(half_day).append(pd.DatetimeIndex(["2025-03-02T00:01:00Z"]))  # same slot again
    frame = pd.DataFrame(
        {"station_id": "st-a", "ts": ts, "temperature": 20.0, "humidity": 50.0, "precipitation_accumulated": 0.0}
    )
    days = station_days(frame).set_index("day")
    assert days["coverage"].tolist() == [1.0, 0.5]
    assert days["n_obs"].tolist() == [288, 145]
    assert station_days(frame, interval_minutes=15).set_index("day")["coverage"].tolist() == [1.0, 0.5]


def test_days_are_utc_days_and_duplicates_and_empty_rows_do_not_count():
    frame = pd.DataFrame(
        {
            "station_id": ["st-b", "st-a", "st-a", "st-a", "st-a"],
            # 01:00 at +03:00 is 22:00 UTC the day before
            "ts": pd.to_datetime(
                [
                    "2025-03-01T12:00:00+00:00",
                    "2025-03-01T01:00:00+03:00",
                    "2025-03-01T12:00:00+00:00",
                    "2025-03-01T12:00:00+00:00",
                    "2025-03-01T13:00:00+00:00",
                ],
                utc=True,
            ).tz_convert("Africa/Nairobi"),
            "temperature": [30.0, 10.0, 20.0, 99.0, np.nan],
            "humidity": [40.0, 50.0, 60.0, 60.0, np.nan],
            "precipitation_accumulated": [1.0, 0.0, 0.3, 0.3, np.nan],
            "wind_speed": 3.0,
        }
    )
    days = station_days(frame)
    assert list(days.columns) == list(STATION_DAY_COLUMNS)
    assert days[["station_id", "day", "n_obs"]].values.tolist() == [
        ["st-a", dt.date(2025, 2, 28), 1],
        ["st-a", dt.date(2025, 3, 1), 1],  # the repeated 12:00 row and the all-NaN 13:00 row are not counted
        ["st-b", dt.date(2025, 3, 1), 1],
    ]
    assert days["tmax_c"].tolist() == [10.0, 20.0, 30.0]


def test_rejects_naive_timestamps_and_uneven_intervals():
    frame = readings([("2025-03-01T06:00:00Z", 20.0, 60.0, 0.0)])
    with pytest.raises(ValueError, match="tz-aware"):
        station_days(frame.assign(ts=frame["ts"].dt.tz_localize(None)))
    with pytest.raises(ValueError, match="interval_minutes=7"):
        station_days(frame, interval_minutes=7)
    with pytest.raises(ValueError, match="precipitation_accumulated"):
        station_days(frame.drop(columns="precipitation_accumulated"))


def reference_station_days(frame: pd.DataFrame, interval_minutes: int) -> dict:
    """Row-by-row walk, written independently of the vectorised version."""
    out = {}
    frame = frame.assign(day=frame["ts"].dt.tz_convert("UTC").dt.date)
    for (station, day), group in frame.groupby(["station_id", "day"]):
        group = group.sort_values("ts")
        rain, previous, seen = 0.0, None, False
        for value in group["precipitation_accumulated"]:
            if np.isnan(value):
                continue
            if previous is not None:
                rain += value - previous if value >= previous else value
            previous, seen = value, True
        minutes = group["ts"].dt.hour * 60 + group["ts"].dt.minute
        out[(station, day)] = {
            "rain_mm": rain if seen else np.nan,
            "tmax_c": group["temperature"].max(),
            "tmean_c": group["temperature"].mean(),
            "n_obs": len(group),
            "coverage": (minutes // interval_minutes).nunique() / (1440 // interval_minutes),
        }
    return out


def test_matches_a_row_by_row_walk_on_random_readings():
    rng = np.random.default_rng(7)
    n = 6000
    ts = pd.Timestamp("2025-03-01", tz="UTC") + pd.to_timedelta(rng.choice(3 * 86400, n, replace=False), "s")
    counter = np.round(rng.uniform(0, 5, n), 1)  # random counter: many drops (resets) and rises
    counter[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame(
        {
            "station_id": rng.choice(["st-a", "st-b", "st-c"], n),
            "ts": ts,
            "temperature": rng.normal(22, 5, n),
            "humidity": rng.uniform(20, 100, n),
            "precipitation_accumulated": counter,
        }
    )
    expected = reference_station_days(frame, 10)
    got = station_days(frame, interval_minutes=10)
    assert len(got) == len(expected) == 9
    for row in got.itertuples():
        reference = expected[(row.station_id, row.day)]
        assert row.rain_mm == pytest.approx(reference["rain_mm"], abs=1e-9)
        assert row.tmax_c == reference["tmax_c"]
        assert row.tmean_c == pytest.approx(reference["tmean_c"])
        assert row.n_obs == reference["n_obs"]
        assert row.coverage == pytest.approx(reference["coverage"])


def test_readings_spanning_millennia_sort_correctly():
    # Station x time span too large for the single sort key: the lexsort fallback must give the same walk.
    stations = [f"st-{i:02d}" for i in range(20)]
    rows = []
    for station in stations:
        for ts, counter in (
            ("1000-01-01T00:00:00Z", 1.0),
            ("1000-01-01T00:05:00Z", 1.5),
            ("9000-01-01T00:00:00Z", 2.0),
            ("9000-01-01T00:05:00Z", 0.5),
        ):
            rows.append({"station_id": station, "ts": ts, "precipitation_accumulated": counter})
    frame = pd.DataFrame(rows).sample(frac=1, random_state=1)
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True), temperature=20.0, humidity=50.0)
    days = station_days(frame)
    assert len(days) == 40
    assert days["rain_mm"].tolist() == [0.5, 0.5] * 20  # a rise of 0.5, then a reset to 0.5


def test_observation_without_station_is_rejected():
    frame = readings([("2025-03-01T06:00:00Z", 20.0, 60.0, 0.0), ("2025-03-01T06:05:00Z", 20.0, 60.0, 0.1)])
    frame.loc[1, "station_id"] = None
    with pytest.raises(ValueError, match="1 observations without a station_id"):
        station_days(frame)
