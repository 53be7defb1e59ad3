"""Shared by the proofs and payouts tests: an inputs document shaped as the damage asset records it
(pure tests), and plots assessed by the damage asset itself from its input tables."""

import datetime as dt
import hashlib

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.damage.assets import _number, damage_assessments
from microcrop_assets.proofs.document import weather_chain
from microcrop_assets.science.damage import DAMAGE_TERMS, METHOD_VERSION
from microcrop_assets.science.policy import resolve_terms
from microcrop_assets_tests.fixtures_damage import (
    STRESSES,
    add_baseline,
    add_ndvi,
    add_plot,
    add_weather,
    damage_db_fixture,
    weather_of,
)

DAY = dt.date(2025, 6, 20)
__all__ = ["damage_db_fixture"]
# a fixed oracle key for tests only: the secret-leak tests look for it in every message
ORACLE_KEY = "0x" + hashlib.sha256(b"microcrop test oracle").hexdigest()


def inputs_document(
    plot_id: str, weather_stress: str | None, ndvi_mean: str | None = "0.42", day: dt.date = DAY
) -> dict:
    """One plot's inputs, shaped as damage.assets.assessment_inputs writes them; the weather part as the
    pipeline computes it from index values (`weather_of`; stress None: its drought index is missing)."""
    terms = {k: v for k, v in resolve_terms("maize", None).items() if k in DAMAGE_TERMS}
    weather = weather_of(None if weather_stress is None else float(weather_stress))
    document = {
        "method_version": METHOD_VERSION,
        "plot_id": plot_id,
        "policy_id": f"POL-{plot_id}",
        "beneficiary": "0x52908400098527886E0F7030069857D2E4169EE7",
        "day": day.isoformat(),
        "sowing_date": (day - dt.timedelta(days=65)).isoformat(),  # flowering: multiplier 1.5
        "season_end": (day + dt.timedelta(days=80)).isoformat(),
        "sum_insured_micro_usdc": 250_000_000,
        "max_payout_micro_usdc": 200_000_000,
        "season_paid": {"micro_usdc": 0, "assessments": []},
        "terms": terms,
        "weather": {
            **{name: _number(weather[name]) for name in STRESSES},
            "layers": {name: _number(value) for name, value in weather["layers"].items()},
            "indices": {name: _number(value) for name, value in weather["indices"].items()},
            "window_start": (day - dt.timedelta(days=65)).isoformat(),
            "window_days": 66,
            "missing_days": 3,
            "missing_reason": None,
        },
        "ndvi": None,
        "baseline": None,
    }
    if ndvi_mean is not None:
        document["ndvi"] = {
            "day": (day - dt.timedelta(days=2)).isoformat(),
            "ndvi_mean": ndvi_mean,
            "valid_fraction": "0.93",
            "n_images": 1,
            "sources": [
                {
                    "order_id": f"order-{plot_id}",
                    "ndvi_key": f"ndvi/{plot_id}.tif",
                    "ndvi_sha256": hashlib.sha256(plot_id.encode()).hexdigest(),
                    "valid_fraction": "0.93",
                }
            ],
        }
        document["baseline"] = {
            "week_start": "2025-06-15",
            "window_start": "2025-04-16",
            "window_end": "2025-06-14",
            "ndvi_mean": "0.61",
            "ndvi_std": "0.05",
            "ndvi_min": "0.52",
            "ndvi_max": "0.7",
            "n_obs": 14,
            "content_hash": hashlib.sha256(f"baseline {plot_id}".encode()).hexdigest(),
        }
    return document


def chain_document() -> dict:
    """The weather chain a proof joins to `inputs_document`: the day's two stations and default layers."""
    return weather_chain(resolve_terms("maize", None), ["st-a", "st-b"], ["0.625", "0.375"])


def assess_plots(db, plots: list[tuple], day: dt.date = DAY) -> list[dict]:
    """Plots with their weather stress and NDVI (or None) in the damage asset's input tables, assessed by
    the damage asset itself; every stored row of the day. `plots` items: (plot_id, stress, ndvi[, policy_id])."""
    for plot_id, stress, ndvi, *policy in plots:
        add_plot(db, plot_id, policy_id=policy[0] if policy else None)
        add_weather(db, plot_id, day, stress)
        if ndvi is not None:
            add_ndvi(db, plot_id, day - dt.timedelta(days=2), ndvi)
            add_baseline(db, plot_id, day - dt.timedelta(days=5), 0.61)
    result = dg.materialize([damage_assessments], resources={"timescaledb": db}, partition_key=day.isoformat())
    assert result.success
    with db.begin() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM damage_assessments WHERE day = :day ORDER BY assessment_id"), {"day": day}
        ).mappings()
        return [dict(row) for row in rows]


@pytest.fixture
def clean_assessments(damage_db):
    """No plots, inputs or assessments (damage_db), and an empty payouts ledger."""
    with damage_db.begin() as conn:
        conn.execute(sa.text("TRUNCATE payouts"))
    return damage_db


@pytest.fixture
def proven(clean_assessments):
    """Two triggered assessments with proofs recorded (pinning is tested elsewhere) and one untriggered."""
    rows = assess_plots(clean_assessments, [("plot-a", 0.25, 0.42), ("plot-b", 0.5, None), ("plot-c", 0.0, 0.61)])
    with clean_assessments.begin() as conn:
        for row in rows:
            conn.execute(
                sa.text("UPDATE damage_assessments SET proof_cid = :cid WHERE assessment_id = :id"),
                {"cid": f"bafkreiproof{row['plot_id'].replace('-', '')}", "id": row["assessment_id"]},
            )
    return clean_assessments
