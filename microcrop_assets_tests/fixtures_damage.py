"""Damage test data: plots, weather index rows, daily NDVI and baselines written straight to PostgreSQL
(the tables of migrations 0001-0005)."""

import datetime as dt
import json
import math
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.plots.registry import canonical_json
from microcrop_assets.science.damage import DAMAGE_TERMS, METHOD_VERSION
from microcrop_assets.science.plot_indices import stored_layers, weather_stresses
from microcrop_assets.science.policy import resolve_terms

TABLES = ("damage_assessments", "weather_indices", "daily_ndvi", "ndvi_baselines")
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[34.75, 0.28], [34.751, 0.28], [34.751, 0.281], [34.75, 0.281], [34.75, 0.28]]],
}
USDC = 1_000_000
STRESSES = ("drought_stress", "flood_stress", "heat_stress", "weather_stress")


@pytest.fixture(name="damage_db")
def damage_db_fixture(db):
    """The session database with every damage input table empty."""
    with db.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE plots, {', '.join(TABLES)} CASCADE"))
    return db


def add_plot(
    db,
    plot_id: str,
    *,
    sowing: dt.date = dt.date(2025, 4, 1),
    season_end: dt.date = dt.date(2025, 9, 30),
    sum_insured_usdc: int = 10_000,
    max_payout_usdc: int | None = None,
    terms: dict | None = None,
    active: bool = True,
    policy_id: str | None = None,
) -> None:
    resolved = resolve_terms("maize", terms)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO plots (plot_id, policy_id, farmer_address, crop, geometry, centroid_lat, centroid_lon,"
                " area_ha, sowing_date, season_end, sum_insured_micro_usdc, max_payout_micro_usdc, policy_terms,"
                " content_sha256, source, active) VALUES (:plot_id, :policy_id,"
                " '0x52908400098527886E0F7030069857D2E4169EE7', 'maize', CAST(:geometry AS jsonb), 0.2805, 34.7505,"
                " 1.2, :sowing, :season_end, :sum_insured, :max_payout, CAST(:terms AS jsonb), 'x', 'test', :active)"
            ),
            {
                "plot_id": plot_id,
                "policy_id": policy_id or f"POL-{plot_id}",
                "geometry": json.dumps(SQUARE),
                "sowing": sowing,
                "season_end": season_end,
                "sum_insured": sum_insured_usdc * USDC,
                "max_payout": (max_payout_usdc or sum_insured_usdc) * USDC,
                "terms": canonical_json(resolved),
                "active": active,
            },
        )


def weather_of(stress: float | None) -> dict:
    """Index values of a maize plot (default terms) whose drought_rain layer is `stress` (None: its
    index missing) and every other layer 0, with the layer fractions (as stored, rounded) and the
    stresses the pipeline computes from them: `weather_indices` columns, the index columns under "indices"."""
    terms = resolve_terms("maize", None)
    layer = terms["layers"]["drought_rain"]
    trigger, exit_ = Decimal(layer["trigger"]), Decimal(layer["exit"])
    rain = math.nan if stress is None else float(trigger - Decimal(repr(stress)) * (trigger - exit_))
    # every other index short of its layer's trigger
    indices = {
        "worst_14d_rain_mm": rain,
        "cdd": 5.0,
        "rx1day_mm": 0.0,
        "rx3day_mm": 0.0,
        "tmax_max_c": 30.0,
        "heat_degree_days": 0.0,
    }
    fractions, perils, weather = weather_stresses(pd.DataFrame(indices, index=[0]), terms)
    row = {
        "indices": indices,
        "layers": {name: None if math.isnan(v[0]) else float(v[0]) for name, v in stored_layers(fractions).items()},
        **{f"{peril}_stress": float(perils[peril][0]) for peril in perils},
        "weather_stress": float(weather[0]),
    }
    assert row["weather_stress"] == stress or (stress is None and math.isnan(row["weather_stress"])), row
    return row


def add_weather(db, plot_id: str, day: dt.date, stress: float | None, *, window_days: int = 60, missing_days: int = 0):
    """A weather_indices row whose drought layer carries the whole stress (`weather_of`)."""
    weather = weather_of(stress)
    row = {
        "plot_id": plot_id,
        "day": day,
        "in_season": True,
        "growth_stage": "vegetative",
        "n_stations": 2,
        "stations": json.dumps(["S1", "S2"]),
        "weights": json.dumps([0.75, 0.25]),
        "window_start": day - dt.timedelta(days=window_days - 1),
        "window_days": window_days,
        "missing_days": missing_days,
        **weather["indices"],
        **{name: weather[name] for name in STRESSES},
        "layers": json.dumps(weather["layers"]),
        "missing_reason": None if stress is not None else "rain: 12 of 60 days missing",
    }
    frame = pd.DataFrame([row])
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM weather_indices WHERE plot_id = :p AND day = :d"), {"p": plot_id, "d": day})
        db.copy_frame(conn, "weather_indices", frame)


def add_ndvi(db, plot_id: str, day: dt.date, ndvi: float, valid_fraction: float = 0.9):
    sources = [
        {
            "order_id": "ORD-1",
            "ndvi_key": f"ndvi/{plot_id}/{day}.tif",
            "ndvi_sha256": "ab" * 32,
            "valid_fraction": valid_fraction,
        }
    ]
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO daily_ndvi (day, plot_id, ndvi_mean, ndvi_median, valid_fraction, n_images, sources)"
                " VALUES (:day, :plot_id, :ndvi, :ndvi, :valid, 1, CAST(:sources AS jsonb))"
            ),
            {"day": day, "plot_id": plot_id, "ndvi": ndvi, "valid": valid_fraction, "sources": json.dumps(sources)},
        )


def add_baseline(db, plot_id: str, week_start: dt.date, mean: float | None, std: float | None = 0.05):
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ndvi_baselines (week_start, plot_id, window_start, window_end, ndvi_mean, ndvi_std,"
                " ndvi_min, ndvi_max, n_obs, content_hash, missing_reason) VALUES (:w, :p, :ws, :we, :m, :s,"
                " 0.3, 0.8, 12, :h, :r)"
            ),
            {
                "w": week_start,
                "p": plot_id,
                "ws": week_start - dt.timedelta(days=60),
                "we": week_start - dt.timedelta(days=1),
                "m": mean,
                "s": std,
                "h": "cd" * 32,
                "r": None if mean is not None else "fewer than 5 observations",
            },
        )


FARMER = "0x52908400098527886E0F7030069857D2E4169EE7"
EARLIER = "00000000-0000-5000-8000-000000000001"  # an assessment id standing for the season's earlier payouts


def inputs_doc(
    weather_stress: str | None,
    *,
    day: str = "2025-06-01",
    sowing_date: str = "2025-04-20",
    terms: dict | None = None,
    crop: str = "maize",
    sum_insured: int = 10_000 * USDC,
    max_payout: int | None = None,
    season_paid: int = 0,
    ndvi: dict | None = None,
    baseline: dict | None = None,
    plot_id: str = "P1",
    window_days: int = 42,
    missing_days: int = 0,
) -> dict:
    """One plot's inputs document as the asset stores it (numbers as strings)."""
    resolved = resolve_terms(crop, terms)
    return {
        "method_version": METHOD_VERSION,
        "plot_id": plot_id,
        "policy_id": f"POL-{plot_id}",
        "beneficiary": FARMER,
        "day": day,
        "sowing_date": sowing_date,
        "season_end": "2025-09-30",
        "sum_insured_micro_usdc": sum_insured,
        "max_payout_micro_usdc": sum_insured if max_payout is None else max_payout,
        # what the season had paid, as one earlier assessment of the season on its sowing day
        "season_paid": {
            "micro_usdc": season_paid,
            "assessments": [{"assessment_id": EARLIER, "day": sowing_date, "payout_micro_usdc": season_paid}]
            if season_paid
            else [],
        },
        "terms": {k: resolved[k] for k in DAMAGE_TERMS},
        "weather": None
        if weather_stress is None
        else {"weather_stress": weather_stress, "window_days": window_days, "missing_days": missing_days},
        "ndvi": ndvi,
        "baseline": baseline,
    }
