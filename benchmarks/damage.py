"""damage_assessments for one day and 100,000 plots: the pure function alone, then the asset's SQL path
(read the inputs, assess, replace the day's rows) on a scratch database, first run and rerun."""

import datetime as dt
import json
import time
from decimal import Decimal

import numpy as np
import pandas as pd

from benchmarks.synthetic import scratch_database
from microcrop_assets.defs.damage.assets import assess_day, assessment_inputs
from microcrop_assets.defs.plots.registry import canonical_json
from microcrop_assets.science.damage import assess_inputs
from microcrop_assets.science.policy import resolve_terms

# the imagery tables as CONTRACTS.md states them, for branches without the imagery migration
from microcrop_assets_tests.fixtures.damage import SQUARE

DAY = dt.date(2025, 6, 30)


def synthetic_tables(n: int, seed: int = 3) -> dict[str, pd.DataFrame]:
    """Plots in season with default maize terms, a weather_indices row each, imagery for 60 % of them."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"P{i:07d}" for i in range(n)], dtype=object)
    stress = np.where(rng.random(n) < 0.03, np.nan, rng.random(n).round(6))
    plots = pd.DataFrame(
        {
            "plot_id": ids,
            "policy_id": [f"POL-{i}" for i in ids],
            "farmer_address": "0x52908400098527886E0F7030069857D2E4169EE7",
            "crop": "maize",
            "geometry": json.dumps(SQUARE),
            "centroid_lat": 0.28,
            "centroid_lon": 34.75,
            "area_ha": Decimal("1.2"),
            "sowing_date": [DAY - dt.timedelta(days=int(d)) for d in rng.integers(5, 140, n)],
            "season_end": DAY + dt.timedelta(days=60),
            "sum_insured_micro_usdc": rng.integers(50, 5_000, n) * 1_000_000,
            "policy_terms": canonical_json(resolve_terms("maize", None)),
            "content_sha256": "x",
            "source": "bench",
        }
    )
    plots["max_payout_micro_usdc"] = plots["sum_insured_micro_usdc"]
    weather = pd.DataFrame(
        {
            "plot_id": ids,
            "day": DAY,
            "in_season": True,
            "n_stations": 3,
            "stations": json.dumps(["S1", "S2", "S3"]),
            "weights": json.dumps([0.5, 0.3, 0.2]),
            "window_start": DAY - dt.timedelta(days=59),
            "window_days": 60,
            "missing_days": rng.integers(0, 4, n),
            "worst_14d_rain_mm": rng.gamma(2, 10, n).round(1),
            "cdd": rng.integers(0, 20, n).astype(float),
            "rx1day_mm": rng.gamma(2, 20, n).round(1),
            "rx3day_mm": rng.gamma(2, 30, n).round(1),
            "tmax_max_c": rng.normal(31, 3, n).round(1),
            "heat_degree_days": rng.gamma(1, 5, n).round(1),
            "layers": [json.dumps({"drought_rain": s if s == s else None}) for s in stress],
            "drought_stress": stress,
            "flood_stress": 0.0,
            "heat_stress": 0.0,
            "weather_stress": stress,
        }
    )
    imaged = ids[rng.random(n) < 0.6]
    m = len(imaged)
    ndvi = pd.DataFrame(
        {
            "day": [DAY - dt.timedelta(days=int(d)) for d in rng.integers(0, 10, m)],
            "plot_id": imaged,
            "ndvi_mean": rng.uniform(0.2, 0.8, m),
            "ndvi_median": rng.uniform(0.2, 0.8, m),
            "valid_fraction": rng.uniform(0.3, 1, m),
            "n_images": 1,
            "sources": json.dumps([{"order_id": "ORD", "ndvi_key": "ndvi/x.tif", "ndvi_sha256": "ab" * 32}]),
        }
    )
    week = DAY - dt.timedelta(days=(DAY.weekday() + 1) % 7 + 7)  # the Sunday a week before the day's week
    baselines = pd.DataFrame(
        {
            "week_start": week,
            "plot_id": imaged,
            "window_start": week - dt.timedelta(days=60),
            "window_end": week - dt.timedelta(days=1),
            "ndvi_mean": rng.uniform(0.4, 0.8, m),
            "ndvi_std": rng.uniform(0.01, 0.1, m),
            "n_obs": 12,
            "content_hash": "cd" * 32,
        }
    )
    return {"plots": plots, "weather_indices": weather, "daily_ndvi": ndvi, "ndvi_baselines": baselines}


def run(n: int = 100_000) -> dict:
    figures = {}
    tables = synthetic_tables(n)
    with scratch_database() as db:
        with db.begin() as conn:  # daily_ndvi and ndvi_baselines come from the migrations
            for name, frame in tables.items():
                db.copy_frame(conn, name, frame)
        for attempt in ("first", "rerun"):
            began = time.perf_counter()
            inputs = assessment_inputs(db, DAY)
            read = time.perf_counter()
            # assessed and written in one transaction, under the season ledger's lock
            rows, _ = assess_day(db, DAY, inputs)
            done = time.perf_counter()
            figures[f"{attempt}_read_seconds"] = round(read - began, 2)
            figures[f"{attempt}_assess_and_write_seconds"] = round(done - read, 2)
            figures[f"{attempt}_total_seconds"] = round(done - began, 2)
            figures[f"{attempt}_rows_written"] = int(rows["damage"].notna().sum())
        # the pure function alone on the same inputs, best of 3
        pure = []
        for _ in range(3):
            began = time.perf_counter()
            assess_inputs(inputs)
            pure.append(time.perf_counter() - began)
        figures["pure_function_seconds"] = round(min(pure), 2)
        figures["plots"] = n
        figures["with_satellite"] = int(rows["satellite_damage"].notna().sum())
        figures["triggered"] = int(rows["triggered"].sum())
    return figures
