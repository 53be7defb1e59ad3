"""Station days: one UTC day of a weather station's observations reduced to daily weather.

Pure function over a table of observations (science.md section 1). Vectorised: the readings are
sorted once by station and time, every station day becomes an integer group key, and all daily
figures are group reductions over that key; nothing loops over rows.
"""

import numpy as np
import pandas as pd

MINUTES_PER_DAY = 24 * 60
_US_PER_MINUTE = 60 * 10**6
_US_PER_DAY = MINUTES_PER_DAY * _US_PER_MINUTE

# The observation fields a station day is made from; a row with all three missing is no observation.
_MEASURED = ("temperature", "humidity", "precipitation_accumulated")

STATION_DAY_COLUMNS = (
    "station_id",
    "day",
    "rain_mm",
    "tmax_c",
    "tmin_c",
    "tmean_c",
    "humidity_mean",
    "n_obs",
    "coverage",
)


def _utc_microseconds(ts: pd.Series) -> np.ndarray:
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"readings column 'ts' must hold tz-aware timestamps, got dtype {ts.dtype}")
    naive = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return naive.astype("datetime64[us]").view("int64")


def _station_time_order(station_code: np.ndarray, us: np.ndarray) -> np.ndarray:
    """Stable order by station, then time: one integer key sorts 3x faster than np.lexsort, as long
    as station x time span fits in int64 (about 10^5 stations over 3 years)."""
    span = int(us.max() - us.min()) + 1
    if (int(station_code.max()) + 1) * span < 2**62:
        return np.argsort(station_code * span + (us - us.min()), kind="stable")
    return np.lexsort((us, station_code))


def station_days(readings: pd.DataFrame, interval_minutes: int = 5) -> pd.DataFrame:
    """Daily weather per station and UTC day from raw observations.

    Input columns: `station_id`, `ts` (tz-aware timestamp), `temperature` (deg C), `humidity` (% RH),
    `precipitation_accumulated` (mm, running counter); other columns are ignored. Rows may be in any
    order and span several days. A row whose three measured fields are all NaN is not an observation,
    and of several rows with the same station and timestamp only the first (in input order) is kept.

    Output, one row per `station_id` and `day` (a `datetime.date`, UTC), sorted by both:

    - `rain_mm`: the day's counter walk. The day's non-NaN counter readings in time order each add
      `current - previous`, or `current` alone when the counter dropped (a reset). NaN readings are
      skipped, never read as zero. The first reading of a day starts that day's walk: the increase
      between the previous day's last reading and this day's first is attributed to neither day, so
      that a station day is a function of that day's readings alone (a daily partition recomputes
      the same number whatever else was fetched); the loss is at most one interval of rain. A day
      with no counter reading has `rain_mm` NaN; a day with one has 0.
    - `tmax_c`, `tmin_c`, `tmean_c`: max, min and mean of the temperature readings (NaN skipped).
    - `humidity_mean`: mean relative humidity.
    - `n_obs`: observations that day.
    - `coverage`: share (0..1) of the day's `interval_minutes` slots holding at least one observation.
    """
    if not isinstance(interval_minutes, int) or interval_minutes <= 0 or MINUTES_PER_DAY % interval_minutes:
        raise ValueError(f"interval_minutes={interval_minutes!r} must be a whole number of minutes dividing a day")
    missing = {"station_id", "ts", *_MEASURED} - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack columns {sorted(missing)}")

    values = {name: readings[name].to_numpy(dtype=float, na_value=np.nan) for name in _MEASURED}
    observed = ~(
        np.isnan(values["temperature"]) & np.isnan(values["humidity"]) & np.isnan(values["precipitation_accumulated"])
    )
    if not observed.any():
        return pd.DataFrame(
            {name: pd.Series(dtype=object if name in ("station_id", "day") else float) for name in STATION_DAY_COLUMNS}
        )
    station_code, stations = pd.factorize(readings["station_id"], sort=True)
    if (station_code[observed] < 0).any():
        raise ValueError(f"readings have {int((station_code[observed] < 0).sum())} observations without a station_id")
    station_code, us = station_code[observed].astype(np.int64), _utc_microseconds(readings["ts"])[observed]

    # Sort by station then time (stable, so duplicates keep input order), then drop repeated timestamps.
    order = _station_time_order(station_code, us)
    station_code, us = station_code[order], us[order]
    kept = np.ones(len(us), dtype=bool)
    kept[1:] = (station_code[1:] != station_code[:-1]) | (us[1:] != us[:-1])
    station_code, us = station_code[kept], us[kept]
    values = {name: column[observed][order][kept] for name, column in values.items()}

    # One integer key per station day; sorted input keeps each key's rows contiguous and in time order.
    day_number = us // _US_PER_DAY
    first_day = day_number.min()
    n_days = int(day_number.max() - first_day) + 1
    key = station_code * n_days + (day_number - first_day)

    frame = pd.DataFrame({"key": key, "temperature": values["temperature"], "humidity": values["humidity"]})
    grouped = frame.groupby("key", sort=True)
    daily = pd.DataFrame(
        {
            "tmax_c": grouped["temperature"].max(),
            "tmin_c": grouped["temperature"].min(),
            "tmean_c": grouped["temperature"].mean(),
            "humidity_mean": grouped["humidity"].mean(),
            "n_obs": grouped.size(),
        }
    )

    # Counter walk over the non-NaN readings; each day's first reading contributes nothing.
    counter = values["precipitation_accumulated"]
    has_counter = ~np.isnan(counter)
    counter_key, counter = key[has_counter], counter[has_counter]
    increment = np.zeros(len(counter))
    previous_same_day = counter_key[1:] == counter_key[:-1]
    step = np.where(counter[1:] >= counter[:-1], counter[1:] - counter[:-1], counter[1:])
    increment[1:] = np.where(previous_same_day, step, 0.0)
    daily["rain_mm"] = pd.Series(increment).groupby(counter_key, sort=True).sum()  # NaN where no reading

    # Coverage: distinct slots per station day (slots are non-decreasing within a sorted key).
    slots_per_day = MINUTES_PER_DAY // interval_minutes
    slot = (us % _US_PER_DAY) // (interval_minutes * _US_PER_MINUTE)
    new_slot = np.ones(len(slot), dtype=bool)
    new_slot[1:] = (key[1:] != key[:-1]) | (slot[1:] != slot[:-1])
    daily["coverage"] = pd.Series(new_slot.astype(np.int64)).groupby(key, sort=True).sum() / slots_per_day

    group_key = daily.index.to_numpy()
    day_dates = (first_day + group_key % n_days).astype("datetime64[D]").astype(object)
    daily.insert(0, "day", day_dates)
    daily.insert(0, "station_id", np.asarray(stations, dtype=object)[group_key // n_days])
    return daily.reset_index(drop=True)[list(STATION_DAY_COLUMNS)]
