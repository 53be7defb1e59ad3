"""Standardized Precipitation Index on monthly totals (McKee 1993, WMO-1090; science.md section 2).

k-month rolling totals; per calendar month (of the total's last month) a two-parameter gamma (loc 0)
fitted to the non-zero totals of the calibration years with Thom's estimator; the probability of zero
q is the share of zeros among the calibration totals present; H = q + (1 - q) G(x); SPI = Phi^-1(H),
clipped to +-3.09 as climate_indices does. NaN in, NaN out: a total with a missing month is NaN.

Calibration length: a calendar month needs `min_calibration_years` complete totals, less the years at
the start of the calibration period whose k-month total reaches back before the period. The totals of
those years need months before the normal: a record that starts with the normal (say 1981-2010 from
a 1981 record) has only 29 January SPI-3 totals, and WMO practice still calibrates on that normal
(for SPI-24 every month but December loses two years).
"""

import numpy as np
import pandas as pd

SPI_LIMIT = 3.09
DEFAULT_MIN_CALIBRATION_YEARS = 30  # WMO-1090 asks for about 30 years

GAMMA_COLUMNS = ("alpha", "beta", "q", "n")


def _periods(index: pd.Index) -> pd.PeriodIndex:
    if isinstance(index, pd.PeriodIndex) and index.freqstr == "M":
        return index
    if isinstance(index, pd.DatetimeIndex):  # any timestamp in a month stands for that month
        return (index.tz_localize(None) if index.tz is not None else index).to_period("M")
    raise ValueError(f"monthly_totals needs a DatetimeIndex or a monthly PeriodIndex, got {index!r:.120}")


def _monthly(monthly_totals: pd.Series) -> pd.Series:
    """The totals on a contiguous monthly PeriodIndex (months absent from the index become NaN)."""
    periods = _periods(monthly_totals.index)
    if periods.has_duplicates:
        raise ValueError(f"monthly_totals has month {periods[periods.duplicated()][0]} twice")
    totals = pd.Series(monthly_totals.to_numpy(dtype=float, na_value=np.nan), index=periods).sort_index()
    negative = totals < 0
    if negative.any():
        raise ValueError(
            f"monthly_totals has a negative total {totals[negative].iloc[0]} mm in {totals.index[negative][0]}"
        )
    if totals.empty:
        return totals
    return totals.reindex(pd.period_range(totals.index[0], totals.index[-1], freq="M"))


def _scaled(totals: pd.Series, scale: int) -> pd.Series:
    if not isinstance(scale, int | np.integer) or not 1 <= scale <= 72:
        raise ValueError(f"SPI scale={scale!r} must be a whole number of months from 1 to 72")
    return totals.rolling(scale, min_periods=scale).sum()  # NaN when any month is missing


def _calibration_rows(scaled: pd.Series, calibration: tuple[int, int]) -> pd.Series:
    first, last = calibration
    if first > last:
        raise ValueError(f"calibration period {first}-{last} ends before it starts")
    years = scaled.index.year
    return scaled[(years >= first) & (years <= last)].dropna()


def gamma_parameters(monthly_totals: pd.Series, scale: int, calibration: tuple[int, int]) -> pd.DataFrame:
    """Per calendar month (index 1..12): Thom's `alpha`, `beta` (scale, mm), `q` (share of zeros)
    and `n` (calibration totals present). A month with fewer than two distinct non-zero totals has
    NaN alpha and beta (no gamma can be fitted)."""
    scaled = _calibration_rows(_scaled(_monthly(monthly_totals), scale), calibration)
    rows = []
    for month in range(1, 13):
        values = scaled[scaled.index.month == month].to_numpy()
        positive = values[values > 0]
        alpha = beta = np.nan
        if len(positive) >= 2:
            mean = positive.mean()
            a = np.log(mean) - np.log(positive).mean()
            if a > 0:  # A = 0 when every total is equal
                alpha = (1 + np.sqrt(1 + 4 * a / 3)) / (4 * a)
                beta = mean / alpha
        q = (len(values) - len(positive)) / len(values) if len(values) else np.nan
        rows.append((alpha, beta, q, len(values)))
    return pd.DataFrame(rows, columns=list(GAMMA_COLUMNS), index=pd.Index(range(1, 13), name="month"))


def required_years(scale: int, min_calibration_years: int = DEFAULT_MIN_CALIBRATION_YEARS) -> pd.Series:
    """Complete calibration totals each calendar month (index 1..12) needs for SPI-`scale`:
    `min_calibration_years` less the leading years whose `scale`-month total ending in that month
    starts before the calibration period (ceil((scale - month) / 12) years, 0 once scale <= month)."""
    if not isinstance(min_calibration_years, int | np.integer) or min_calibration_years < 1:
        raise ValueError(f"min_calibration_years={min_calibration_years!r} must be a whole number >= 1")
    months = np.arange(1, 13)
    reaching_back = -((months - scale) // 12)  # ceil((scale - month) / 12), 0 when scale <= month
    required = np.maximum(min_calibration_years - np.maximum(reaching_back, 0), 1)
    return pd.Series(required, index=pd.Index(months, name="month"), name="required")


def _shortfall(parameters: pd.DataFrame, scale: int, calibration: tuple[int, int], min_years: int) -> str | None:
    required = required_years(scale, min_years)
    deficit = required - parameters["n"]
    if deficit.max() <= 0:
        return None
    month = int(deficit.idxmax())
    return (
        f"SPI-{scale}: calibration {calibration[0]}-{calibration[1]} has {int(parameters.loc[month, 'n'])} years of "
        f"month {month} totals < {int(required[month])} required"
    )


def calibration_shortfall(
    monthly_totals: pd.Series,
    scale: int,
    calibration: tuple[int, int],
    min_calibration_years: int = DEFAULT_MIN_CALIBRATION_YEARS,
) -> str | None:
    """Why the record cannot calibrate SPI-`scale` (a calendar month with fewer complete totals in
    the calibration years than `required_years` asks), or None if it can."""
    return _shortfall(gamma_parameters(monthly_totals, scale, calibration), scale, calibration, min_calibration_years)


def _parameter_table(parameters) -> pd.DataFrame:
    """A DataFrame like `gamma_parameters` returns, or a mapping {month: {alpha, beta, q}} as a policy
    states it (month keys may be strings, numbers may be Decimal or numeric strings)."""
    if not isinstance(parameters, pd.DataFrame):
        parameters = pd.DataFrame.from_dict(
            {int(month): {k: float(v) for k, v in terms.items()} for month, terms in parameters.items()},
            orient="index",
        )
    missing = {"alpha", "beta", "q"} - set(parameters.columns)
    if missing or sorted(parameters.index) != list(range(1, 13)):
        raise ValueError(
            f"gamma parameters need alpha, beta and q for months 1..12; missing columns "
            f"{sorted(missing)}, months given {sorted(parameters.index)}"
        )
    table = parameters[["alpha", "beta", "q"]].astype(float)
    bad = ~((table["alpha"] > 0) & (table["beta"] > 0) & table["q"].between(0, 1)) & table.notna().all(axis=1)
    if bad.any():
        month = int(table.index[bad][0])
        raise ValueError(
            f"gamma parameters of month {month} are invalid: {table.loc[month].to_dict()} "
            "(alpha and beta must be > 0, q within 0..1)"
        )
    return table


def spi_from_parameters(monthly_totals: pd.Series, scale: int, parameters) -> pd.Series:
    """SPI from per-calendar-month gamma parameters, e.g. supplied by a policy for a young network.

    `parameters`: alpha, beta (scale, mm) and q (probability of a zero total) per calendar month 1..12,
    as the DataFrame `gamma_parameters` returns or a mapping {month: {"alpha", "beta", "q"}}. A month
    with NaN parameters gives NaN. Returns SPI on the input's index.
    """
    from scipy import stats  # ~0.5 s to import: only here, not when the definitions load

    table = _parameter_table(parameters)
    scaled = _scaled(_monthly(monthly_totals), scale)
    month = table.reindex(scaled.index.month)
    alpha, beta, q = (month[name].to_numpy() for name in ("alpha", "beta", "q"))
    with np.errstate(invalid="ignore", divide="ignore"):
        h = q + (1 - q) * stats.gamma.cdf(scaled.to_numpy(), alpha, scale=beta)
        values = np.clip(stats.norm.ppf(h), -SPI_LIMIT, SPI_LIMIT)  # clip keeps NaN
    result = pd.Series(values, index=scaled.index)
    return pd.Series(
        result.reindex(_periods(monthly_totals.index)).to_numpy(), index=monthly_totals.index, name=f"spi_{scale}"
    )


def spi(
    monthly_totals: pd.Series,
    scale: int,
    calibration: tuple[int, int],
    *,
    min_calibration_years: int = DEFAULT_MIN_CALIBRATION_YEARS,
) -> pd.Series:
    """SPI-`scale` of monthly rain totals (mm), fitted on the `calibration` years (first, last).

    Index: DatetimeIndex (one timestamp per month) or monthly PeriodIndex; the result has the same
    index and is NaN where a k-month total is incomplete (the first k - 1 months, or a missing month).
    Raises ValueError with `calibration_shortfall`'s reason when a calendar month has fewer complete
    totals in the calibration years than `required_years(scale, min_calibration_years)`.
    `result.attrs["fitted_years"]` reports per calendar month (1..12) how many years' totals were
    fitted (zeros included, through q).
    """
    parameters = gamma_parameters(monthly_totals, scale, calibration)
    shortfall = _shortfall(parameters, scale, calibration, min_calibration_years)
    if shortfall is not None:
        raise ValueError(shortfall)
    result = spi_from_parameters(monthly_totals, scale, parameters)
    result.attrs["fitted_years"] = {int(month): int(n) for month, n in parameters["n"].items()}
    return result
