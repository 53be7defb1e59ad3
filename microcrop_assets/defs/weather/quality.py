"""Physical plausibility of station readings: counted for the asset check, masked before use.

A reading outside physical limits is a sensor fault, not weather; it is kept in `weather_readings`
as received (audit) but never feeds a station day.
"""

import numpy as np
import pandas as pd

PHYSICAL_RANGES = {
    "temperature": (-60.0, 60.0),
    "humidity": (0.0, 100.0),
    "precipitation_accumulated": (0.0, np.inf),
    "pressure": (800.0, 1100.0),
}


def _implausible(readings: pd.DataFrame, column: str) -> np.ndarray:
    low, high = PHYSICAL_RANGES[column]
    values = readings[column].to_numpy(dtype=float, na_value=np.nan)
    # NaN compares False: missing is not implausible; an infinite value is, even without an upper limit
    return (values < low) | (values > high) | np.isinf(values)


def out_of_range_counts(readings: pd.DataFrame) -> dict[str, int]:
    """Readings outside physical limits, per field present in `readings`."""
    return {c: int(_implausible(readings, c).sum()) for c in PHYSICAL_RANGES if c in readings.columns}


def mask_implausible(readings: pd.DataFrame) -> pd.DataFrame:
    """A copy with out-of-range values set to NaN (missing, never zero)."""
    masked = readings.copy()
    for column in PHYSICAL_RANGES:
        if column in masked.columns:
            masked.loc[_implausible(masked, column), column] = np.nan
    return masked
