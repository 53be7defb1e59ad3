"""Imagery test helpers: the demo plots in the registry, a day's weather stress, the order book."""

import datetime as dt
import uuid

import pandas as pd
import sqlalchemy as sa

from microcrop_assets.defs.plots.assets import DEMO_PLOTS
from microcrop_assets.defs.plots.registry import parse_plots, store_plots
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.sandbox.embedded import RunningSandbox

from .fixtures_clients import spexi

IMAGERY_TABLES = ("ndvi_baselines", "daily_ndvi", "plot_ndvi_observations", "satellite_orders", "weather_indices")


def empty_imagery(db: TimescaleDBResource) -> None:
    with db.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(IMAGERY_TABLES)}, plots CASCADE"))
    store_plots(db, parse_plots(DEMO_PLOTS.read_bytes(), str(DEMO_PLOTS)), str(DEMO_PLOTS))


def set_stress(db: TimescaleDBResource, day: dt.date, stress: dict[str, float]) -> None:
    """weather_indices rows of one day carrying only what ordering reads: the plots' weather_stress."""
    frame = pd.DataFrame(
        {"plot_id": list(stress), "day": day, "in_season": True, "weather_stress": list(stress.values())}
    )
    db.replace_rows("weather_indices", frame, "day = :day", {"day": day})


def imagery_resources(sandbox: RunningSandbox, db: TimescaleDBResource, store_root, **client) -> dict:
    redis = RedisResource(url="redis://127.0.0.1:6379/0", key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    return {
        "timescaledb": db,
        "redis": redis,
        "object_store": ObjectStoreResource(local_root=str(store_root)),
        "spexi": spexi(sandbox, redis, **client),
    }


def order_book(db: TimescaleDBResource) -> pd.DataFrame:
    return db.read_frame("SELECT * FROM satellite_orders ORDER BY request_id")


def vendor_order_images(sandbox: RunningSandbox, capture_date: dt.date) -> list[dict]:
    """Spexi's own view, as an operator can ask it: the images (plot_id, order_id, ...) of completed
    orders captured on the day (public image search)."""
    resource = spexi(sandbox, RedisResource(key_prefix=f"mctest-{uuid.uuid4().hex[:8]}"))
    found = resource.search_images(bbox=(34.0, -0.5, 35.5, 1.0), captured_at=capture_date.isoformat())
    return [f["properties"] for f in found["features"] if f["properties"]["source"] == "order"]


def vendor_orders(sandbox: RunningSandbox, capture_date: dt.date) -> pd.Series:
    """Completed orders captured on the day, counted per plot."""
    return pd.Series([p["plot_id"] for p in vendor_order_images(sandbox, capture_date)], dtype=object).value_counts()
