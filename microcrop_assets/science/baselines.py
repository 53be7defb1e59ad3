"""Plot-day NDVI from the day's images, and each plot's NDVI baseline over the trailing weeks.

Pure functions of DataFrames (no Dagster, no I/O).

Daily rule: of a plot's images on one day, only those with a valid fraction at or above the minimum
count, and the day takes every statistic from the ONE image with the highest valid fraction (ties:
more pixels in the polygon, then the smaller order id). One image, not a blend: the median and
percentiles of different images cannot be combined, and all of a day's numbers then come from the
raster whose key and sha256 the row cites first in `sources`.

Baseline rule: for the week starting on `week_start` (a Sunday), the plot's daily NDVI means over
the `window_days` days before that Sunday (the assessed week itself excluded): mean, sample standard
deviation (ddof 1), min, max and count. Below `min_obs` days the statistics are missing (null) with
the reason. `content_hash` is the sha256 of the inputs and the statistics, so a damage proof can cite
exactly which observations a baseline came from.
"""

import datetime as dt
import hashlib
import json
import math

import numpy as np
import pandas as pd

BASELINE_WINDOW_DAYS = 60
DEFAULT_MIN_OBS = 4
STATISTICS = ("ndvi_mean", "ndvi_median", "ndvi_p10", "ndvi_p90", "evi_mean", "lai_mean")
DAILY_COLUMNS = ("day", "plot_id", *STATISTICS, "valid_fraction", "n_images", "sources")
BASELINE_COLUMNS = (
    "week_start",
    "plot_id",
    "window_start",
    "window_end",
    "ndvi_mean",
    "ndvi_std",
    "ndvi_min",
    "ndvi_max",
    "n_obs",
    "content_hash",
    "missing_reason",
)


def daily_ndvi(observations: pd.DataFrame, min_valid_fraction: float) -> pd.DataFrame:
    """One row per plot and capture day with at least one usable image.

    `observations`: plot_ndvi_observations rows (capture_date, plot_id, order_id, the statistics,
    valid_fraction, pixels, ndvi_key, ndvi_sha256)."""
    if not 0 <= min_valid_fraction <= 1:
        raise ValueError(f"min_valid_fraction={min_valid_fraction!r} must be between 0 and 1")
    usable = observations[
        (observations["valid_fraction"] >= min_valid_fraction) & observations["ndvi_mean"].notna()
    ].sort_values(["capture_date", "plot_id", "valid_fraction", "pixels", "order_id"],
                  ascending=[True, True, False, False, True])  # fmt: skip
    rows = []
    for (day, plot_id), images in usable.groupby(["capture_date", "plot_id"], sort=True):
        best = images.iloc[0]
        sources = [
            {
                "order_id": image.order_id,
                "ndvi_key": image.ndvi_key,
                "ndvi_sha256": image.ndvi_sha256,
                "valid_fraction": float(image.valid_fraction),
            }
            for image in images.itertuples()
        ]
        rows.append(
            {
                "day": day,
                "plot_id": plot_id,
                **{name: _float_or_none(best[name]) for name in STATISTICS},
                "valid_fraction": float(best["valid_fraction"]),
                "n_images": len(images),
                "sources": json.dumps(sources),
            }
        )
    return pd.DataFrame(rows, columns=list(DAILY_COLUMNS))


def baseline_window(week_start: dt.date, window_days: int = BASELINE_WINDOW_DAYS) -> tuple[dt.date, dt.date]:
    """First and last day (both included) of the baseline of the week starting `week_start`."""
    return week_start - dt.timedelta(days=window_days), week_start - dt.timedelta(days=1)


def ndvi_baselines(
    daily: pd.DataFrame,
    plot_ids: list[str],
    week_start: dt.date,
    window_days: int = BASELINE_WINDOW_DAYS,
    min_obs: int = DEFAULT_MIN_OBS,
) -> pd.DataFrame:
    """One baseline row per plot in `plot_ids` for the week starting `week_start`.

    `daily`: daily_ndvi rows (plot_id, day, ndvi_mean); days outside the window are ignored."""
    if min_obs < 2:
        raise ValueError(f"min_obs={min_obs!r}: a sample standard deviation needs at least 2 observations")
    first, last = baseline_window(week_start, window_days)
    days = pd.to_datetime(daily["day"]).dt.date
    inside = daily[(days >= first) & (days <= last) & daily["ndvi_mean"].notna()].copy()
    inside["day"] = pd.to_datetime(inside["day"]).dt.date
    by_plot = {plot: frame.sort_values("day") for plot, frame in inside.groupby("plot_id")}
    rows = []
    for plot_id in sorted(set(plot_ids)):
        frame = by_plot.get(plot_id)
        values = frame["ndvi_mean"].to_numpy(dtype=float) if frame is not None else np.array([])
        n = len(values)
        stats: dict[str, float | None] = dict.fromkeys(("ndvi_mean", "ndvi_std", "ndvi_min", "ndvi_max"))
        reason = None
        if n >= min_obs:
            stats = {
                "ndvi_mean": float(values.mean()),
                "ndvi_std": float(values.std(ddof=1)),
                "ndvi_min": float(values.min()),
                "ndvi_max": float(values.max()),
            }
        else:
            reason = f"{n} day(s) with valid imagery from {first} to {last}; at least {min_obs} needed"
        observed = (
            []
            if frame is None
            else [[d.isoformat(), repr(float(v))] for d, v in zip(frame["day"], values, strict=True)]
        )
        document = {
            "plot_id": plot_id,
            "week_start": week_start.isoformat(),
            "window": [first.isoformat(), last.isoformat()],
            "observations": observed,
            "statistics": {k: None if v is None else repr(v) for k, v in stats.items()},
        }
        digest = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        rows.append(
            {
                "week_start": week_start,
                "plot_id": plot_id,
                "window_start": first,
                "window_end": last,
                **stats,
                "n_obs": n,
                "content_hash": digest,
                "missing_reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))


def _float_or_none(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
