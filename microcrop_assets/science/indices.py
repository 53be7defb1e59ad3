"""Daily weather indices over a trailing window, for many plots at once (science.md section 2).

Every function takes a 2-D array, plots x days, oldest day first; the last column is the day being
assessed and NaN is a missing plot day. Each returns one value per plot (float, NaN where the index
is not computed). Everything is vectorised across plots; loops run over the window's days at most.

Data-completeness gate: a plot whose window has more missing days than `max_missing_share` allows
(n_missing > max_missing_share x n_days) gets NaN, and `completeness_reasons` says why. Inside a window
that passes, missing days are never read as zero rain; each index says what it does with them:

- sums and counts (rain_total, R10mm/R20mm, heat days, GDD, heat degree days) run over the days present;
  the gate bounds how much a sum can fall short, and the reason records the missing count;
- maxima (Rx1day, Tmax max) are over the days present;
- CDD: a missing day ends a dry run (an unobserved day is not counted as dry);
- Rx5day and the worst 14-day total use only n-day windows with every day present; if no such window
  exists the index is NaN.
"""

import numpy as np

DEFAULT_MAX_MISSING_SHARE = 0.1


def _days(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (plots x days), got shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no days")
    return array


def _phase_mask(shape: tuple[int, int], start_index) -> np.ndarray:
    """True for the columns inside each plot's window: from its start_index to the last column."""
    start = np.asarray(start_index)
    if start.shape != (shape[0],) or not np.issubdtype(start.dtype, np.integer):
        raise ValueError(f"start_index must hold one whole column index per plot ({shape[0]}), got {start_index!r}")
    outside = (start < 0) | (start >= shape[1])
    if outside.any():
        plot = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"start_index {int(start[plot])} of plot row {plot} is outside the window's "
            f"{shape[1]} days (0..{shape[1] - 1})"
        )
    return np.arange(shape[1]) >= start[:, None]


def _counts(values: np.ndarray, start_index=None) -> tuple[np.ndarray, np.ndarray]:
    """Missing days and window length per plot."""
    missing = np.isnan(values)
    if start_index is None:
        return missing.sum(axis=1), np.full(len(values), values.shape[1])
    inside = _phase_mask(values.shape, start_index)
    return (missing & inside).sum(axis=1), inside.sum(axis=1)


def _passes(n_missing: np.ndarray, n_days: np.ndarray, max_missing_share: float) -> np.ndarray:
    share = float(max_missing_share)  # a policy term may be a Decimal
    if not 0 <= share <= 1:
        raise ValueError(f"max_missing_share={max_missing_share!r} must be between 0 and 1")
    # Compare counts, not float shares: 9 of 90 missing passes a 10 % gate exactly.
    allowed = np.floor(share * n_days + 1e-9)
    return (n_missing <= allowed) & (n_missing < n_days)


def missing_share(values, start_index=None) -> np.ndarray:
    """Share of missing days per plot over the window (from `start_index` per plot when given)."""
    n_missing, n_days = _counts(_days(values, "values"), start_index)
    return n_missing / n_days


def completeness_reasons(
    values,
    variable: str,
    *,
    max_missing_share: float = DEFAULT_MAX_MISSING_SHARE,
    start_index=None,
    min_days: int = 1,
) -> np.ndarray:
    """Per plot, why an index over this window is not computed, or None when it is.

    E.g. "rain: 12 of 90 days missing > 10%", or with `min_days` (the worst-window index needs a
    phase at least as long as its window) "rain: 9 days in the window < 14 needed".
    """
    array = _days(values, variable)
    n_missing, n_days = _counts(array, start_index)
    reasons = np.full(len(array), None, dtype=object)
    short = n_days < min_days
    for plot in np.flatnonzero(short):
        reasons[plot] = f"{variable}: {n_days[plot]} days in the window < {min_days} needed"
    limit = f"{float(max_missing_share) * 100:g}%"
    for plot in np.flatnonzero(~_passes(n_missing, n_days, max_missing_share) & ~short):
        reasons[plot] = f"{variable}: {n_missing[plot]} of {n_days[plot]} days missing > {limit}"
    return reasons


def _gated(index: np.ndarray, values: np.ndarray, max_missing_share: float, start_index=None) -> np.ndarray:
    n_missing, n_days = _counts(values, start_index)
    return np.where(_passes(n_missing, n_days, max_missing_share), index, np.nan)


def _sum_present(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values).sum(axis=1)


def _rolling_sums(values: np.ndarray, n: int) -> np.ndarray:
    """Totals of every n consecutive days (plots x (days - n + 1)); NaN where any day is missing."""
    if not isinstance(n, int | np.integer) or not 1 <= n <= values.shape[1]:
        raise ValueError(f"window of {n!r} days must be a whole number from 1 to the {values.shape[1]} days given")
    width = values.shape[1] - n + 1
    total = values[:, :width].copy()
    for offset in range(1, n):
        total += values[:, offset : offset + width]
    return total


def rain_total(rain, n_days: int, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> np.ndarray:
    """rain_Nd: total rain over the last `n_days` days (the gate applies to those days)."""
    array = _days(rain, "rain")
    if not isinstance(n_days, int | np.integer) or not 1 <= n_days <= array.shape[1]:
        raise ValueError(f"n_days={n_days!r} must be a whole number from 1 to the {array.shape[1]} days given")
    window = array[:, -n_days:]
    return _gated(_sum_present(window), window, max_missing_share)


def consecutive_dry_days(
    rain, threshold: float = 1.0, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
) -> np.ndarray:
    """CDD: longest run of days with rain < threshold (mm); a missing day ends a run."""
    array = _days(rain, "rain")
    run = np.zeros(len(array))
    longest = np.zeros(len(array))
    for day in array.T:
        run = np.where(day < threshold, run + 1, 0.0)  # NaN < threshold is False: a missing day resets
        np.maximum(longest, run, out=longest)
    return _gated(longest, array, max_missing_share)


def _max_present(array: np.ndarray) -> np.ndarray:
    return np.fmax.reduce(array, axis=1)  # fmax skips NaN; all-NaN stays NaN


def rx1day(rain, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> np.ndarray:
    """Rx1day: largest daily rain total (mm)."""
    array = _days(rain, "rain")
    return _gated(_max_present(array), array, max_missing_share)


def rxnday(rain, n: int = 5, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> np.ndarray:
    """Rx{n}day: largest total over n consecutive days, from n-day windows with all days present."""
    array = _days(rain, "rain")
    return _gated(_max_present(_rolling_sums(array, n)), array, max_missing_share)


def count_days_at_or_above(
    rain, threshold: float, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
) -> np.ndarray:
    """R10mm / R20mm: number of days with rain >= threshold (mm)."""
    array = _days(rain, "rain")
    return _gated((array >= threshold).sum(axis=1).astype(float), array, max_missing_share)


def worst_window_total(
    rain, window: int = 14, *, start_index, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
) -> np.ndarray:
    """Minimum rolling `window`-day rain total inside the current phase (ACRE style).

    `start_index` holds each plot's phase start as a column index; the phase runs to the last column.
    Only windows entirely inside the phase with every day present count, and the gate applies to the
    phase's days. NaN while the phase is shorter than the window (see `completeness_reasons(min_days=)`).
    """
    array = _days(rain, "rain")
    totals = _rolling_sums(array, window)
    inside = _phase_mask(array.shape, start_index)[:, : totals.shape[1]]  # window starts in the phase
    worst = np.fmin.reduce(np.where(inside, totals, np.nan), axis=1)
    return _gated(worst, array, max_missing_share, start_index)


def heat_days(tmax, threshold: float = 35.0, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> np.ndarray:
    """Number of days with Tmax > threshold (deg C)."""
    array = _days(tmax, "tmax")
    return _gated((array > threshold).sum(axis=1).astype(float), array, max_missing_share)


def tmax_max(tmax, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE) -> np.ndarray:
    """Highest daily Tmax (deg C)."""
    array = _days(tmax, "tmax")
    return _gated(_max_present(array), array, max_missing_share)


def heat_degree_days(
    tmax, threshold: float = 35.0, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
) -> np.ndarray:
    """Sum of max(Tmax - threshold, 0) (deg C days)."""
    array = _days(tmax, "tmax")
    return _gated(_sum_present(np.maximum(array - threshold, 0.0)), array, max_missing_share)


def growing_degree_days(
    tmean, base: float = 10.0, *, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
) -> np.ndarray:
    """GDD: sum of max(Tmean - base, 0) (deg C days)."""
    array = _days(tmean, "tmean")
    return _gated(_sum_present(np.maximum(array - base, 0.0)), array, max_missing_share)
