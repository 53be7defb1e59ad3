"""Physical plausibility of station readings: every rule refuses values outside it, and keeps the rest."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from microcrop_assets.defs.weather.quality import PHYSICAL_RANGES, mask_implausible, out_of_range_counts
from microcrop_assets.science.stations import station_days

pytestmark = pytest.mark.unit

# per field: values a sensor can report (bounds included), then values it cannot
RULES = {
    "temperature": ([-60.0, -5.5, 0.0, 41.2, 60.0], [-60.01, 60.01, 85.0, -273.0, np.inf, -np.inf]),
    "humidity": ([0.0, 35.0, 100.0], [-0.1, 100.1, 250.0, np.inf]),
    "precipitation_accumulated": ([0.0, 0.2, 12345.6], [-0.01, -5.0, np.inf, -np.inf]),
    "pressure": ([800.0, 1013.25, 1100.0], [799.9, 1100.1, 0.0, -np.inf]),
}


def test_every_field_has_a_rule():
    assert set(RULES) == set(PHYSICAL_RANGES)


@pytest.mark.parametrize("field", sorted(RULES))
def test_each_rule_counts_and_masks_exactly_the_implausible_values(field):
    good, bad = RULES[field]
    values = [*good, np.nan, *bad]
    readings = pd.DataFrame({field: values, "station_id": [f"s{i}" for i in range(len(values))]})
    assert out_of_range_counts(readings) == {field: len(bad)}

    masked = mask_implausible(readings)
    kept = masked[field].to_numpy()
    np.testing.assert_array_equal(kept[: len(good)], good)  # plausible values untouched, bounds included
    assert np.isnan(kept[len(good) :]).all()  # missing stays missing; implausible becomes missing, never 0
    assert masked["station_id"].tolist() == readings["station_id"].tolist()  # other columns untouched
    assert readings[field].iloc[-1] == bad[-1]  # the input (the audit copy) is not changed


def test_fields_are_judged_separately_and_absent_fields_are_not_counted():
    readings = pd.DataFrame(
        {
            "temperature": [25.0, 99.0, 24.0],
            "humidity": [50.0, 60.0, 140.0],
            "pressure": pd.array([1012.0, None, 700.0], dtype="Float64"),  # nullable, as read from the database
        }
    )
    assert out_of_range_counts(readings) == {"temperature": 1, "humidity": 1, "pressure": 1}
    masked = mask_implausible(readings)
    assert masked["temperature"].tolist()[::2] == [25.0, 24.0] and np.isnan(masked["temperature"].iloc[1])
    assert masked["humidity"].tolist()[:2] == [50.0, 60.0] and np.isnan(masked["humidity"].iloc[2])
    assert masked["pressure"].iloc[0] == 1012.0 and masked["pressure"].iloc[1:].isna().all()
    assert out_of_range_counts(masked) == {"temperature": 0, "humidity": 0, "pressure": 0}
    assert out_of_range_counts(pd.DataFrame({"wind_speed": [-1.0]})) == {}


def test_a_faulty_sensor_never_feeds_a_station_day():
    """A day of 5-minute readings with one 85 C spike, a negative counter and 120 % humidity: the
    station day from the masked readings is the day without those readings."""
    ts = pd.date_range("2025-07-10", periods=288, freq="5min", tz="UTC")
    temperature = 20 + 8 * np.sin(np.linspace(0, np.pi, 288))
    counter = np.round(np.linspace(100.0, 112.0, 288), 2)
    humidity = np.full(288, 70.0)
    clean = pd.DataFrame(
        {
            "station_id": "st-1",
            "ts": ts,
            "temperature": temperature,
            "humidity": humidity,
            "precipitation_accumulated": counter,
        }
    )
    faulty = clean.copy()
    faulty.loc[100, "temperature"] = 85.0
    faulty.loc[150, "precipitation_accumulated"] = -3.0  # read raw, a fake counter reset
    faulty.loc[200, "humidity"] = 120.0
    assert out_of_range_counts(faulty) == {"temperature": 1, "humidity": 1, "precipitation_accumulated": 1}

    day = station_days(mask_implausible(faulty)).iloc[0]
    raw = station_days(faulty).iloc[0]
    assert day["day"] == dt.date(2025, 7, 10)
    assert raw["tmax_c"] == 85.0 and day["tmax_c"] == pytest.approx(28.0, abs=0.01)
    assert day["rain_mm"] == pytest.approx(12.0, abs=1e-9) and raw["rain_mm"] > 100  # the fake reset counts 100 mm
    assert day["humidity_mean"] == pytest.approx(70.0)
