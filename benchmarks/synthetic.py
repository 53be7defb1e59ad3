"""Synthetic inputs shaped like production data, shared by the benchmarks (seeded, reproducible)."""

import datetime as dt
import json
import os
import uuid
from contextlib import contextmanager

import numpy as np
import pandas as pd
import sqlalchemy as sa

from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.resources.weatherxm import OBSERVATION_COLUMNS
from microcrop_assets.science.policy import resolve_terms

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def scratch_database():
    """DATABASE_URL if set, else a throwaway database on the local server."""
    if os.environ.get("DATABASE_URL"):
        yield TimescaleDBResource(url=os.environ["DATABASE_URL"])
        return
    name = f"microcrop_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = TimescaleDBResource(url=admin.url.set(database=name).render_as_string(hide_password=False))
    try:
        yield db
    finally:
        db.engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def readings(n_stations: int, day: dt.date, seed: int = 1) -> pd.DataFrame:
    """5-minute observations of `n_stations` stations for one UTC day."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(pd.Timestamp(day, tz="UTC"), periods=288, freq="5min")
    n = n_stations * len(stamps)
    frame = pd.DataFrame(
        {
            "station_id": np.repeat([str(uuid.UUID(int=int(rng.integers(2**63)))) for _ in range(n_stations)], 288),
            "ts": np.tile(stamps, n_stations),
            "utc_offset_minutes": 0,
        }
    )
    for column in OBSERVATION_COLUMNS[3:-1]:
        frame[column] = rng.normal(20, 5, n).round(2)
    frame["precipitation_accumulated"] = np.abs(frame["precipitation_accumulated"]).cumsum().round(2)
    frame["icon"] = "partly-cloudy"
    return frame[list(OBSERVATION_COLUMNS)]


def plots_and_stations(n_plots: int, days: list[dt.date], stations_per_plot: int = 3, seed: int = 2):
    """Plots with default maize terms, their station assignments and 90 days of station weather."""
    rng = np.random.default_rng(seed)
    n_stations = max(10, n_plots // 10)
    terms = json.dumps(resolve_terms("maize", None), sort_keys=True)  # as the asset reads it: JSON text
    plots = pd.DataFrame(
        {
            "plot_id": [f"P{i:07d}" for i in range(n_plots)],
            "sowing_date": [days[-1] - dt.timedelta(days=int(d)) for d in rng.integers(20, 150, n_plots)],
            "season_end": days[-1] + dt.timedelta(days=60),
            "policy_terms": [terms] * n_plots,
        }
    )
    station_ids = np.array([f"S{i:06d}" for i in range(n_stations)])
    assignments = pd.DataFrame(
        {
            "plot_id": np.repeat(plots["plot_id"].to_numpy(), stations_per_plot),
            "station_id": station_ids[rng.integers(0, n_stations, n_plots * stations_per_plot)],
            "distance_km": rng.uniform(0.5, 50, n_plots * stations_per_plot),
        }
    ).drop_duplicates(["plot_id", "station_id"])
    n = n_stations * len(days)
    station_days = pd.DataFrame(
        {
            "station_id": np.repeat(station_ids, len(days)),
            "day": np.tile(np.array(days, dtype=object), n_stations),
            "rain_mm": np.where(rng.random(n) < 0.6, 0.0, rng.gamma(0.8, 8, n)),
            "tmax_c": rng.normal(29, 4, n),
            "tmin_c": rng.normal(15, 3, n),
            "tmean_c": rng.normal(22, 3, n),
            "coverage": np.where(rng.random(n) < 0.03, 0.5, 0.97),
            "qod": np.where(rng.random(n) < 0.05, 0.6, 0.95),
        }
    )
    return plots, assignments, station_days
