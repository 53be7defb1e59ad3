"""Weather indices on plots x days arrays, checked against xclim and against hand-worked cases."""

import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from microcrop_assets.science import indices

pytestmark = pytest.mark.unit

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # xclim warns about optional plotting extras on import
    import xarray as xr
    import xclim.indices as xci

DAYS = 92  # 2025-01-01 .. 2025-04-02: one "YS" period covers the whole window


def synthetic_weather(n_plots=8, seed=5):
    rng = np.random.default_rng(seed)
    rain = np.round(rng.gamma(0.35, 9.0, (n_plots, DAYS)), 1)
    rain[:, 20:38] = np.where(rng.random((n_plots, 18)) < 0.8, 0.0, rain[:, 20:38])  # dry spells
    rain[0, :5] = [1.0, 1.0, 0.9, 10.0, 20.0]  # on the thresholds: 1 mm is wet, 10 and 20 count
    rain[1, 40:43] = [180.0, 150.0, 95.0]  # a flood burst
    tmax = np.round(rng.normal(33.0, 3.0, (n_plots, DAYS)), 1)
    tmax[0, :3] = [35.0, 35.1, 40.0]  # 35.0 is not above 35
    tmean = np.round(tmax - rng.uniform(6, 12, (n_plots, DAYS)), 1)
    tmean[0, :2] = [10.0, 9.0]
    return rain, tmax, tmean


def as_xclim(values, units):
    time = pd.date_range("2025-01-01", periods=values.shape[1], freq="D")
    return xr.DataArray(values, dims=("plot", "time"), coords={"time": time}, attrs={"units": units})


def xclim_values(result):
    assert result.sizes["time"] == 1  # one period covering the window
    return result.isel(time=0).values.astype(float)


@pytest.fixture(scope="module")
def weather():
    return synthetic_weather()


def test_rain_indices_equal_xclim(weather):
    rain, _, _ = weather
    pr = as_xclim(rain, "mm/d")
    np.testing.assert_array_equal(
        indices.consecutive_dry_days(rain, 1.0),
        xclim_values(xci.maximum_consecutive_dry_days(pr, thresh="1 mm/day", op="<", freq="YS")),
    )
    np.testing.assert_allclose(
        indices.rxnday(rain, 5), xclim_values(xci.max_n_day_precipitation_amount(pr, window=5, freq="YS")), atol=1e-9
    )
    np.testing.assert_allclose(
        indices.rxnday(rain, 3), xclim_values(xci.max_n_day_precipitation_amount(pr, window=3, freq="YS")), atol=1e-9
    )
    np.testing.assert_array_equal(indices.rx1day(rain), xclim_values(xci.max_1day_precipitation_amount(pr, freq="YS")))
    for threshold in (10.0, 20.0):
        np.testing.assert_array_equal(
            indices.count_days_at_or_above(rain, threshold),
            xclim_values(xci.wetdays(pr, thresh=f"{threshold} mm/day", op=">=", freq="YS")),
        )
    np.testing.assert_allclose(
        indices.rain_total(rain, DAYS), xclim_values(xci.prcptot(pr, thresh="0 mm/d", freq="YS")), atol=1e-9
    )


def test_temperature_indices_equal_xclim(weather):
    _, tmax, tmean = weather
    tasmax, tas = as_xclim(tmax, "degC"), as_xclim(tmean, "degC")
    np.testing.assert_array_equal(
        indices.heat_days(tmax, 35.0), xclim_values(xci.tx_days_above(tasmax, thresh="35 degC", op=">", freq="YS"))
    )
    np.testing.assert_allclose(
        indices.growing_degree_days(tmean, 10.0),
        xclim_values(xci.growing_degree_days(tas, thresh="10 degC", freq="YS")),
        atol=1e-9,
    )
    # heat degree days over 35 C are cooling degree days computed on Tmax
    np.testing.assert_allclose(
        indices.heat_degree_days(tmax, 35.0),
        xclim_values(xci.cooling_degree_days(tasmax, thresh="35 degC", freq="YS")),
        atol=1e-9,
    )
    np.testing.assert_allclose(indices.tmax_max(tmax), xclim_values(xci.tx_max(tasmax, freq="YS")), atol=1e-9)


def test_hand_worked_rows():
    rain = np.array([[0.0, 0.5, 12.0, 0.0, 0.0, 0.0, 25.0, 3.0, 0.9, 0.0]])
    assert indices.consecutive_dry_days(rain).tolist() == [3.0]
    assert indices.rx1day(rain).tolist() == [25.0]
    assert indices.rxnday(rain, 3).tolist() == [pytest.approx(28.9)]
    assert indices.count_days_at_or_above(rain, 10.0).tolist() == [2.0]
    assert indices.rain_total(rain, 4).tolist() == [pytest.approx(28.9)]
    tmax = np.array([[34.0, 35.0, 36.5, 41.0]])
    assert indices.heat_days(tmax).tolist() == [2.0]
    assert indices.heat_degree_days(tmax).tolist() == [pytest.approx(7.5)]
    assert indices.growing_degree_days(np.array([[8.0, 10.0, 15.5]])).tolist() == [5.5]


def test_worst_window_stays_inside_each_plots_phase():
    rain = np.tile(np.array([5.0] * 10 + [0.0] * 5 + [2.0] * 25), (3, 1))  # 40 days
    start = np.array([0, 12, 15])
    worst = indices.worst_window_total(rain, 14, start_index=start)
    # plot 0: days 10..23 hold five 0s and nine 2s = 18,
    # plot 1: from day 12 the driest window, days 12..25, holds three 0s and eleven 2s = 22,
    # plot 2: from day 15 only 2 mm days: 28.
    assert worst.tolist() == [pytest.approx(18.0), pytest.approx(22.0), pytest.approx(28.0)]
    short = indices.worst_window_total(rain, 14, start_index=np.array([0, 10, 30]))
    assert np.isnan(short[2])  # 10 days of phase cannot hold a 14-day window
    reasons = indices.completeness_reasons(rain, "rain", start_index=np.array([0, 10, 30]), min_days=14)
    assert reasons.tolist() == [None, None, "rain: 10 days in the window < 14 needed"]


def test_worst_window_matches_pandas_rolling_on_random_phases():
    rng = np.random.default_rng(3)
    rain = np.round(rng.gamma(0.4, 8.0, (50, 90)), 1)
    start = rng.integers(0, 70, 50)
    got = indices.worst_window_total(rain, 14, start_index=start)
    for plot in range(50):
        phase = pd.Series(rain[plot, start[plot] :])
        assert got[plot] == pytest.approx(phase.rolling(14).sum().min(), abs=1e-9)


def test_completeness_gate_gives_nan_and_a_reason():
    rain = np.full((3, 90), 2.0)
    rain[0, :9] = np.nan  # 9 of 90 = 10 %: allowed
    rain[1, :10] = np.nan  # 10 of 90 > 10 %: not computed
    totals = indices.rain_total(rain, 90)
    assert totals[0] == pytest.approx(81 * 2.0)  # the sum of the days present
    assert np.isnan(totals[1]) and totals[2] == 180.0
    for index in (
        indices.consecutive_dry_days(rain),
        indices.rx1day(rain),
        indices.rxnday(rain, 5),
        indices.count_days_at_or_above(rain, 1.0),
        indices.heat_days(rain),
        indices.growing_degree_days(rain),
    ):
        assert not np.isnan(index[0]) and np.isnan(index[1])
    assert indices.completeness_reasons(rain, "rain").tolist() == [None, "rain: 10 of 90 days missing > 10%", None]
    assert indices.missing_share(rain).tolist() == [0.1, pytest.approx(1 / 9), 0.0]
    assert indices.completeness_reasons(rain, "rain", max_missing_share=Decimal("0.05"))[0] == (
        "rain: 9 of 90 days missing > 5%"
    )
    lenient = indices.rain_total(rain, 90, max_missing_share=0.2)
    assert lenient[1] == pytest.approx(160.0)
    assert np.isnan(indices.rain_total(np.full((1, 5), np.nan), 5, max_missing_share=1.0)[0])


def test_missing_days_are_never_dry_days_or_part_of_a_window():
    rain = np.zeros((1, 30))
    rain[0, 10] = np.nan  # splits 30 dry days into runs of 10 and 19
    assert indices.consecutive_dry_days(rain).tolist() == [19.0]
    rain = np.full((1, 30), 1.0)
    rain[0, 12:15] = [30.0, np.nan, 40.0]
    # a 5-day window through the gap is not computed; the best complete one holds only 40 mm
    assert indices.rxnday(rain, 5).tolist() == [44.0]
    every_window_gapped = np.array([[1.0, 1.0, np.nan, 1.0, 1.0]])
    assert np.isnan(indices.rxnday(every_window_gapped, 3, max_missing_share=0.5)[0])


def test_window_arguments_are_checked():
    rain = np.zeros((2, 10))
    with pytest.raises(ValueError, match="2-D"):
        indices.rx1day(np.zeros(10))
    with pytest.raises(ValueError, match="n_days=11"):
        indices.rain_total(rain, 11)
    with pytest.raises(ValueError, match="start_index 10 of plot row 1"):
        indices.worst_window_total(rain, 5, start_index=np.array([0, 10]))
    with pytest.raises(ValueError, match="max_missing_share"):
        indices.rx1day(rain, max_missing_share=1.5)
