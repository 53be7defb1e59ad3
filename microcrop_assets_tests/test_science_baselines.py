"""Daily NDVI rule and NDVI baselines, checked against the standard library's statistics on hand data."""

import datetime as dt
import json
import statistics

import pandas as pd
import pytest

from microcrop_assets.science.baselines import baseline_window, daily_ndvi, ndvi_baselines

pytestmark = pytest.mark.unit

WEEK = dt.date(2025, 7, 27)  # a Sunday


def test_window_is_the_sixty_days_before_the_week():
    assert baseline_window(WEEK) == (dt.date(2025, 5, 28), dt.date(2025, 7, 26))


def test_baseline_statistics_match_an_independent_computation():
    values = [0.61, 0.58, 0.66, 0.71, 0.55, 0.63]
    days = [dt.date(2025, 5, 28), dt.date(2025, 6, 5), dt.date(2025, 6, 19), dt.date(2025, 7, 1),
            dt.date(2025, 7, 20), dt.date(2025, 7, 26)]  # fmt: skip
    daily = pd.DataFrame({"plot_id": "A", "day": days, "ndvi_mean": values})
    # outside the window: the day before it, and the assessed week itself
    outside = pd.DataFrame(
        {"plot_id": "A", "day": [dt.date(2025, 5, 27), WEEK, WEEK + dt.timedelta(days=3)], "ndvi_mean": [0.1] * 3}
    )
    rows = ndvi_baselines(pd.concat([daily, outside]), ["A"], WEEK, min_obs=4).set_index("plot_id")
    row = rows.loc["A"]
    assert row["n_obs"] == 6
    assert row["ndvi_mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)
    assert row["ndvi_std"] == pytest.approx(statistics.stdev(values), abs=1e-12)  # ddof 1
    assert (row["ndvi_min"], row["ndvi_max"]) == (min(values), max(values))
    assert row["window_start"] == dt.date(2025, 5, 28) and row["window_end"] == dt.date(2025, 7, 26)
    assert row["missing_reason"] is None and len(row["content_hash"]) == 64


def test_too_few_observations_are_missing_with_the_reason_and_unknown_plots_get_a_row():
    daily = pd.DataFrame({"plot_id": ["A"] * 3, "day": [dt.date(2025, 7, d) for d in (1, 8, 15)], "ndvi_mean": 0.5})
    rows = ndvi_baselines(daily, ["A", "B"], WEEK, min_obs=4).set_index("plot_id")
    assert rows.loc["A", "n_obs"] == 3 and pd.isna(rows.loc["A", "ndvi_mean"]) and pd.isna(rows.loc["A", "ndvi_std"])
    assert "3 day(s)" in rows.loc["A", "missing_reason"] and "at least 4" in rows.loc["A", "missing_reason"]
    assert rows.loc["B", "n_obs"] == 0 and "0 day(s)" in rows.loc["B", "missing_reason"]
    with pytest.raises(ValueError, match="min_obs=1"):
        ndvi_baselines(daily, ["A"], WEEK, min_obs=1)


def test_content_hash_changes_with_any_input_value_and_only_then():
    daily = pd.DataFrame({"plot_id": "A", "day": [dt.date(2025, 7, d) for d in range(1, 7)], "ndvi_mean": 0.5})
    first = ndvi_baselines(daily, ["A"], WEEK)["content_hash"].iloc[0]
    assert ndvi_baselines(daily.iloc[::-1], ["A"], WEEK)["content_hash"].iloc[0] == first  # row order is no input
    changed = daily.assign(ndvi_mean=[0.5, 0.5, 0.5, 0.5, 0.5, 0.5000001])
    assert ndvi_baselines(changed, ["A"], WEEK)["content_hash"].iloc[0] != first


def _observation(order_id, plot_id, day, ndvi, valid, pixels=1000):
    return {
        "order_id": order_id, "plot_id": plot_id, "capture_date": day, "ndvi_mean": ndvi, "ndvi_median": ndvi + 0.01,
        "ndvi_p10": ndvi - 0.1, "ndvi_p90": ndvi + 0.1, "evi_mean": ndvi * 0.8, "lai_mean": ndvi * 3,
        "valid_fraction": valid, "pixels": pixels, "ndvi_key": f"k/{order_id}", "ndvi_sha256": f"sha-{order_id}",
    }  # fmt: skip


def test_daily_rule_takes_the_image_with_the_highest_valid_fraction_and_drops_unusable_ones():
    day = dt.date(2025, 7, 1)
    observations = pd.DataFrame(
        [
            _observation("o1", "A", day, 0.40, 0.62),
            _observation("o2", "A", day, 0.70, 0.91),  # the best of A's day
            _observation("o3", "A", day, 0.10, 0.30),  # below the minimum: does not count
            _observation("o4", "B", day, 0.55, 0.20),  # B has no usable image
            _observation("o5", "C", day, 0.65, 0.80, pixels=900),
            _observation("o6", "C", day, 0.66, 0.80, pixels=1200),  # tie on fraction: more pixels wins
        ]
    )
    daily = daily_ndvi(observations, min_valid_fraction=0.5).set_index("plot_id")
    assert set(daily.index) == {"A", "C"}
    assert daily.loc["A", "ndvi_mean"] == 0.70 and daily.loc["A", "ndvi_median"] == pytest.approx(0.71)
    assert daily.loc["A", "valid_fraction"] == 0.91 and daily.loc["A", "n_images"] == 2
    sources = json.loads(daily.loc["A", "sources"])
    assert [s["order_id"] for s in sources] == ["o2", "o1"] and sources[0]["ndvi_sha256"] == "sha-o2"
    assert daily.loc["C", "ndvi_mean"] == 0.66
    with pytest.raises(ValueError, match="min_valid_fraction=1.5"):
        daily_ndvi(observations, 1.5)
