"""Plot weather by inverse-distance weighting of the stations that passed the quality gates."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from microcrop_assets.science.plot_weather import PLOT_DAY_COLUMNS, plot_weather

pytestmark = pytest.mark.unit

DAY1, DAY2 = dt.date(2025, 3, 1), dt.date(2025, 3, 2)


def station_day(station, day, rain, *, tmax=30.0, coverage=1.0, qod=1.0):
    return {
        "station_id": station,
        "day": day,
        "rain_mm": rain,
        "tmax_c": tmax,
        "tmin_c": tmax - 12,
        "tmean_c": tmax - 6,
        "coverage": coverage,
        "qod": qod,
    }


def assign(*rows):
    return pd.DataFrame(rows, columns=["plot_id", "station_id", "distance_km"])


def test_inverse_distance_weights_by_hand():
    # 1 km and 2 km: weights 1 and 1/4, normalised 0.8 and 0.2; rain 0.8 x 10 + 0.2 x 20 = 12.
    result = plot_weather(
        assign(("plot-1", "near", 1.0), ("plot-1", "far", 2.0)),
        pd.DataFrame([station_day("far", DAY1, 20.0, tmax=25.0), station_day("near", DAY1, 10.0)]),
    )
    assert list(result.columns) == list(PLOT_DAY_COLUMNS)
    row = result.iloc[0]
    assert (row["plot_id"], row["day"], row["n_stations"]) == ("plot-1", DAY1, 2)
    assert row["rain_mm"] == pytest.approx(12.0)
    assert row["tmax_c"] == pytest.approx(0.8 * 30 + 0.2 * 25)
    assert row["stations"] == ["near", "far"]
    assert row["weights"] == pytest.approx([0.8, 0.2])
    assert isinstance(row["weights"], list)
    cubed = plot_weather(
        assign(("plot-1", "near", 1.0), ("plot-1", "far", 2.0)),
        pd.DataFrame([station_day("far", DAY1, 20.0), station_day("near", DAY1, 10.0)]),
        power=3.0,
    )
    assert cubed["weights"].iloc[0] == pytest.approx([8 / 9, 1 / 9])


def test_gates_and_nearest_stations_decide_per_day():
    assignments = assign(("plot-1", "a", 1.0), ("plot-1", "b", 2.0), ("plot-1", "c", 3.0))
    days = pd.DataFrame(
        [
            station_day("a", DAY1, 1.0, coverage=0.79),  # fails coverage on day 1
            station_day("b", DAY1, 2.0),
            station_day("c", DAY1, 3.0),
            station_day("a", DAY2, 1.0),
            station_day("b", DAY2, 2.0, qod=np.nan),  # unknown QoD fails
            station_day("c", DAY2, 3.0),
        ]
    )
    result = plot_weather(assignments, days, max_stations=1).set_index("day")
    assert result.loc[DAY1, "stations"] == ["b"]
    assert result.loc[DAY1, "rain_mm"] == 2.0
    assert result.loc[DAY2, "stations"] == ["a"]
    both = plot_weather(assignments, days, max_stations=2).set_index("day")
    assert both.loc[DAY1, "stations"] == ["b", "c"]
    assert both.loc[DAY2, "stations"] == ["a", "c"]
    lenient = plot_weather(assignments, days, min_coverage=0.5, max_stations=1).set_index("day")
    assert lenient.loc[DAY1, "stations"] == ["a"]


def test_plot_day_without_a_passing_station_is_absent_not_zero():
    assignments = assign(("plot-1", "a", 5.0), ("plot-2", "b", 5.0), ("plot-3", "unknown", 1.0))
    days = pd.DataFrame(
        [station_day("a", DAY1, 0.0), station_day("a", DAY2, 4.0, coverage=0.2), station_day("b", DAY2, 7.0)]
    )
    result = plot_weather(assignments, days)
    assert result[["plot_id", "day", "rain_mm"]].values.tolist() == [["plot-1", DAY1, 0.0], ["plot-2", DAY2, 7.0]]
    none_pass = plot_weather(assignments, days, min_qod=1.1)
    assert none_pass.empty and list(none_pass.columns) == list(PLOT_DAY_COLUMNS)


def test_station_on_the_plot_takes_the_weight():
    result = plot_weather(
        assign(("plot-1", "on", 0.0), ("plot-1", "off", 10.0)),
        pd.DataFrame([station_day("on", DAY1, 5.0), station_day("off", DAY1, 50.0)]),
    )
    row = result.iloc[0]
    assert row["weights"][0] > 0.99999
    assert row["rain_mm"] == pytest.approx(5.0, abs=1e-3)


def test_variable_missing_at_one_station_is_averaged_over_the_others():
    days = pd.DataFrame([station_day("a", DAY1, np.nan), station_day("b", DAY1, 8.0), station_day("c", DAY1, 2.0)])
    row = plot_weather(assign(("p", "a", 1.0), ("p", "b", 1.0), ("p", "c", 2.0)), days).iloc[0]
    assert row["stations"] == ["a", "b", "c"]
    assert row["weights"] == pytest.approx([4 / 9, 4 / 9, 1 / 9])
    assert row["rain_mm"] == pytest.approx((8.0 * 4 + 2.0 * 1) / 5)  # b and c, renormalised
    assert row["tmax_c"] == pytest.approx(30.0)
    only_missing = plot_weather(assign(("p", "a", 1.0)), days).iloc[0]
    assert np.isnan(only_missing["rain_mm"]) and only_missing["tmax_c"] == 30.0


def test_rejects_bad_assignments():
    days = pd.DataFrame([station_day("a", DAY1, 1.0)])
    with pytest.raises(ValueError, match="assigned twice"):
        plot_weather(assign(("p", "a", 1.0), ("p", "a", 2.0)), days)
    with pytest.raises(ValueError, match="distance_km -1.0"):
        plot_weather(assign(("p", "a", -1.0)), days)
    with pytest.raises(ValueError, match="twice"):
        plot_weather(assign(("p", "a", 1.0)), pd.concat([days, days]))


def reference_plot_weather(assignments, days, max_stations, power):
    """Plot by plot, day by day, written independently of the vectorised version."""
    passing = days[(days["coverage"] >= 0.8) & (days["qod"] >= 0.8)]
    out = {}
    for (plot, day), group in assignments.merge(passing, on="station_id").groupby(["plot_id", "day"]):
        nearest = group.sort_values(["distance_km", "station_id"]).head(max_stations)
        weights = 1.0 / np.maximum(nearest["distance_km"].to_numpy(), 0.001) ** power
        weights /= weights.sum()
        out[(plot, day)] = (nearest["station_id"].tolist(), weights, float(weights @ nearest["rain_mm"].to_numpy()))
    return out


def test_matches_a_plot_by_plot_computation_on_random_networks():
    rng = np.random.default_rng(11)
    stations = [f"st-{i:03d}" for i in range(40)]
    days = [DAY1 + dt.timedelta(days=i) for i in range(10)]
    assignments = pd.DataFrame(
        [
            {"plot_id": f"plot-{p:03d}", "station_id": s, "distance_km": float(rng.choice([rng.uniform(0, 50), 7.5]))}
            for p in range(60)
            for s in rng.choice(stations, int(rng.integers(1, 9)), replace=False)
        ]
    )
    station_days = pd.DataFrame(
        [
            station_day(
                s, d, float(rng.gamma(0.5, 6)), coverage=float(rng.uniform(0.5, 1)), qod=float(rng.uniform(0.6, 1))
            )
            for s in stations
            for d in days
        ]
    )
    expected = reference_plot_weather(assignments, station_days, max_stations=3, power=2.0)
    got = plot_weather(
        assignments.sample(frac=1, random_state=2), station_days.sample(frac=1, random_state=3), max_stations=3
    )
    assert len(got) == len(expected) > 300
    assert got["plot_id"].is_monotonic_increasing
    for row in got.itertuples():
        stations_used, weights, rain = expected[(row.plot_id, row.day)]
        assert row.stations == stations_used
        assert row.weights == pytest.approx(weights.tolist(), rel=1e-12)
        assert row.rain_mm == pytest.approx(rain, rel=1e-12)
        assert row.n_stations == len(stations_used)


def test_policy_terms_may_be_decimals():
    days = pd.DataFrame([station_day("a", DAY1, 4.0, coverage=0.85), station_day("b", DAY1, 8.0)])
    result = plot_weather(
        assign(("p", "a", 1.0), ("p", "b", 2.0)), days, min_coverage=Decimal("0.9"), power=Decimal("1")
    )
    assert result["stations"].iloc[0] == ["b"] and result["rain_mm"].iloc[0] == 8.0
