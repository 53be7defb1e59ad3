"""SPI on monthly totals, checked against climate_indices (the same Thom gamma fit)."""

import logging
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from climate_indices import compute
from climate_indices import indices as climate

from microcrop_assets.science.spi import (
    SPI_LIMIT,
    calibration_shortfall,
    gamma_parameters,
    required_years,
    spi,
    spi_from_parameters,
)

pytestmark = pytest.mark.unit

logging.getLogger("climate_indices").setLevel(logging.WARNING)

START_YEAR, YEARS = 1981, 40
CALIBRATION = (1981, 2010)  # the WMO standard normal, from a record that starts with it
# Same estimator, same clipping: the only difference is floating-point order (measured ~1e-14).
AGREEMENT = 1e-9


@pytest.fixture(scope="module")
def record():
    """40 years of gamma-distributed monthly totals with a wet and a dry season and some zero months."""
    rng = np.random.default_rng(2024)
    months = YEARS * 12
    seasonal_mean = np.tile([20, 25, 90, 160, 110, 30, 10, 8, 15, 60, 120, 50], YEARS)
    totals = rng.gamma(1.8, seasonal_mean / 1.8)
    totals[(rng.random(months) < 0.25) & (seasonal_mean < 20)] = 0.0  # dry-season months with no rain
    totals = np.round(totals, 1)
    return pd.Series(totals, index=pd.period_range(f"{START_YEAR}-01", periods=months, freq="M"))


def climate_indices_spi(values: np.ndarray, scale: int) -> np.ndarray:
    return climate.spi(
        values.copy(),
        scale,
        climate.Distribution.gamma,
        START_YEAR,
        CALIBRATION[0],
        CALIBRATION[1],
        compute.Periodicity.monthly,
    )


@pytest.mark.parametrize("scale", [1, 3, 6, 12])
def test_spi_on_a_standard_normal_agrees_with_climate_indices(record, scale):
    """SPI-k calibrated on 1981-2010 from a 1981-2020 record, with the default 30-year minimum: the
    first k - 1 months of the normal have no complete total, and the normal still calibrates."""
    assert (record == 0).sum() > 20
    ours = spi(record, scale, CALIBRATION)
    reference = climate_indices_spi(record.to_numpy(), scale)
    np.testing.assert_array_equal(np.isnan(ours.to_numpy()), np.isnan(reference))
    assert np.isnan(ours.iloc[: scale - 1]).all() and not np.isnan(ours.iloc[scale - 1 :]).any()
    np.testing.assert_allclose(ours.to_numpy(), reference, rtol=0, atol=AGREEMENT, equal_nan=True)
    assert ours.index.equals(record.index)
    # per calendar month, the years fitted: months whose total reaches back before 1981 lose 1981
    fitted = ours.attrs["fitted_years"]
    assert fitted == {month: 30 if month >= scale else 29 for month in range(1, 13)}
    assert fitted == required_years(scale).to_dict()


def test_required_years_follow_the_normal_up_to_24_months():
    assert required_years(1).tolist() == [30] * 12
    assert required_years(3).tolist() == [29, 29] + [30] * 10
    assert required_years(12).tolist() == [29] * 11 + [30]
    assert required_years(24).tolist() == [28] * 11 + [29]  # the first complete December total ends in 1982
    assert required_years(6, min_calibration_years=10).tolist() == [9] * 5 + [10] * 7
    with pytest.raises(ValueError, match="min_calibration_years=0"):
        required_years(3, 0)


def test_spi_24_calibrates_on_a_30_year_normal(record):
    result = spi(record, 24, CALIBRATION)
    assert result.attrs["fitted_years"] == {**{m: 28 for m in range(1, 12)}, 12: 29}
    np.testing.assert_allclose(
        result.to_numpy(), climate_indices_spi(record.to_numpy(), 24), rtol=0, atol=AGREEMENT, equal_nan=True
    )


def test_missing_months_stay_missing_and_agree_with_climate_indices(record):
    gappy = record.copy()
    gappy.iloc[[30, 200, 401]] = np.nan
    # 1983-07 and 1997-09 missing: September has 28 complete 3-month totals in the normal
    assert calibration_shortfall(gappy, 3, CALIBRATION) == (
        "SPI-3: calibration 1981-2010 has 28 years of month 9 totals < 30 required"
    )
    ours = spi(gappy, 3, CALIBRATION, min_calibration_years=28)
    assert ours.attrs["fitted_years"][9] == 28
    assert ours.iloc[[30, 31, 32, 200, 201, 202, 401, 402, 403]].isna().all()
    assert ours.iloc[[29, 33, 199, 203]].notna().all()
    np.testing.assert_allclose(
        ours.to_numpy(), climate_indices_spi(gappy.to_numpy(), 3), rtol=0, atol=AGREEMENT, equal_nan=True
    )


def test_datetime_index_and_absent_months(record):
    as_timestamps = record.copy()
    as_timestamps.index = record.index.to_timestamp(how="end").normalize()  # month ends
    np.testing.assert_allclose(spi(as_timestamps, 1, CALIBRATION).to_numpy(), spi(record, 1, CALIBRATION).to_numpy())
    # a month absent from the index is a missing month, not a shorter record
    dropped = as_timestamps.drop(as_timestamps.index[100])
    result = spi(dropped, 3, CALIBRATION, min_calibration_years=28)
    assert result.index.equals(dropped.index)
    assert result.iloc[100:102].isna().all() and not np.isnan(result.iloc[102])


def test_policy_parameters_reproduce_the_fit(record):
    parameters = gamma_parameters(record, 1, CALIBRATION)
    assert list(parameters.columns) == ["alpha", "beta", "q", "n"]
    assert parameters["n"].tolist() == [30] * 12
    august = record[(record.index.month == 8) & (record.index.year <= 2010)]
    assert parameters.loc[8, "q"] == pytest.approx((august == 0).mean())
    positive = august[august > 0]
    a = np.log(positive.mean()) - np.log(positive).mean()
    assert parameters.loc[8, "alpha"] == pytest.approx((1 + np.sqrt(1 + 4 * a / 3)) / (4 * a))

    # a policy states them as text per month, e.g. from a young network's neighbours
    stated = {
        str(m): {k: Decimal(repr(float(parameters.loc[m, k]))) for k in ("alpha", "beta", "q")} for m in range(1, 13)
    }
    recent = record["2016-01":]
    np.testing.assert_allclose(
        spi_from_parameters(recent, 1, stated).to_numpy(),
        spi(record, 1, CALIBRATION)["2016-01":].to_numpy(),
        atol=1e-12,
    )


def test_spi_is_clipped_and_zero_months_sit_at_the_zero_mass():
    parameters = pd.DataFrame({"alpha": 2.0, "beta": 50.0, "q": 0.2}, index=range(1, 13))
    totals = pd.Series([0.0, 100.0, 5000.0], index=pd.period_range("2025-01", periods=3, freq="M"))
    result = spi_from_parameters(totals, 1, parameters)
    assert result.iloc[0] == pytest.approx(-0.841621, abs=1e-6)  # Phi^-1(0.2)
    assert result.iloc[2] == SPI_LIMIT
    with pytest.raises(ValueError, match="month 3"):
        spi_from_parameters(totals, 1, parameters.assign(alpha=[2.0, 2.0, -1.0] + [2.0] * 9))
    with pytest.raises(ValueError, match="months 1..12"):
        spi_from_parameters(totals, 1, parameters.drop(index=12))


def test_short_record_is_refused_with_a_reason():
    young = pd.Series(np.full(10 * 12, 50.0) + np.arange(120), index=pd.period_range("2016-01", periods=120, freq="M"))
    reason = calibration_shortfall(young, 1, (1991, 2025))
    assert reason == "SPI-1: calibration 1991-2025 has 10 years of month 1 totals < 30 required"
    with pytest.raises(ValueError, match="10 years of month 1 totals < 30 required"):
        spi(young, 1, (1991, 2025))
    assert calibration_shortfall(young, 1, (2016, 2025), min_calibration_years=10) is None


def test_too_short_normals_still_give_the_reason(record):
    # 29 years is not a normal, whatever the scale: March SPI-3 has its 29 totals, 30 required
    assert calibration_shortfall(record, 3, (1982, 2010)) == (
        "SPI-3: calibration 1982-2010 has 29 years of month 3 totals < 30 required"
    )
    with pytest.raises(ValueError, match="29 years of month 1 totals < 30 required"):
        spi(record, 1, (1982, 2010))
    # a record starting a year after the normal: January SPI-3 has 28 totals (1983-2010), 29 required
    late = record["1982-01":]
    assert calibration_shortfall(late, 3, CALIBRATION) == (
        "SPI-3: calibration 1981-2010 has 28 years of month 1 totals < 29 required"
    )
    # the minimum stays configurable
    assert calibration_shortfall(late, 3, CALIBRATION, min_calibration_years=29) is None


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="negative total -1.0 mm in 2025-02"):
        spi(pd.Series([1.0, -1.0], index=pd.period_range("2025-01", periods=2, freq="M")), 1, (2025, 2025))
    with pytest.raises(ValueError, match="DatetimeIndex or a monthly PeriodIndex"):
        spi(pd.Series([1.0, 2.0]), 1, (2025, 2025))
    with pytest.raises(ValueError, match="scale=0"):
        gamma_parameters(pd.Series([1.0], index=pd.period_range("2025-01", periods=1, freq="M")), 0, (2025, 2025))
