"""satellite_order_sensor ticks over 10,000 open orders placed with the Spexi sandbox.

The orders are real sandbox orders (POST /orders); the tick is the sensor function itself through
`build_sensor_context`, against PostgreSQL and the sandbox over HTTP. Figures: one tick with the
bulk status endpoint over every open order (nothing changed, then every order completed, which also
requests the raster runs), and one default page (SATELLITE_SENSOR_PAGE_SIZE) of per-order GETs.
"""

import datetime as dt
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import dagster as dg
import pandas as pd

from benchmarks.synthetic import scratch_database
from microcrop_assets.defs.imagery import sensors
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

CLOCK = dt.datetime(2025, 8, 1, 12, tzinfo=dt.UTC)
DELAY_S = 3600


def _plots(n: int) -> pd.DataFrame:
    lat = 0.1 + (pd.RangeIndex(n) // 100) * 0.001
    lon = 34.5 + (pd.RangeIndex(n) % 100) * 0.001
    return pd.DataFrame(
        {
            "plot_id": [f"BENCH-{i:05d}" for i in range(n)],
            "policy_id": "P-BENCH",
            "farmer_address": "0x" + "0" * 40,
            "crop": "maize",
            "geometry": json.dumps({"type": "Point", "coordinates": [34.5, 0.1]}),
            "centroid_lat": lat,
            "centroid_lon": lon,
            "area_ha": Decimal("1.0000"),
            "sowing_date": dt.date(2025, 3, 15),
            "season_end": dt.date(2025, 9, 30),
            "sum_insured_micro_usdc": 100_000_000,
            "max_payout_micro_usdc": 100_000_000,
            "policy_terms": "{}",
            "content_sha256": "0" * 64,
            "source": "benchmark",
        }
    )


def _tick(instance, resources) -> tuple[float, dg.SensorResult]:
    began = time.perf_counter()
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = sensors.satellite_order_sensor(context)
    return time.perf_counter() - began, result


def run(n_orders: int = 10_000) -> dict:
    clock = ManualClock(CLOCK)
    redis = RedisResource(url="redis://127.0.0.1:6379/0", key_prefix=f"mcbench-{uuid.uuid4().hex[:8]}")
    with (
        scratch_database() as db,
        running_sandbox(clock=clock, order_delay_s=DELAY_S) as sandbox,
        dg.instance_for_test() as instance,
    ):
        client = {"api_url": sandbox.spexi_url, "api_key": sandbox.credentials.spexi_api_key}
        client["rate_limit_per_minute"] = 1_000_000
        per_order = SpexiResource(redis=redis, **client)
        bulk = SpexiResource(redis=redis, order_statuses_path="/orders/status", **client)
        plots = _plots(n_orders)
        with db.begin() as conn:
            db.copy_frame(conn, "plots", plots)

        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            placed = list(
                pool.map(
                    lambda p: per_order.create_order(p.plot_id, p.centroid_lat, p.centroid_lon, 1.0, 1.0),
                    plots.itertuples(),
                )
            )
        placing_seconds = time.perf_counter() - began
        day = CLOCK.date()
        book = pd.DataFrame(
            {
                "request_id": [f"{p}:{day}" for p in plots["plot_id"]],
                "order_id": [o.order_id for o in placed],
                "plot_id": plots["plot_id"],
                "reason": "routine",
                "priority": "normal",
                "requested_day": day,
                "window_end": day + dt.timedelta(days=5),
                "requested_at": dt.datetime.now(dt.UTC),
                "capture_date": day,
                "status": "pending",
                "status_history": "[]",
            }
        )
        with db.begin() as conn:
            db.copy_frame(conn, "satellite_orders", book)

        per_order_seconds, per_order_result = _tick(instance, {"timescaledb": db, "spexi": per_order})
        os.environ["SATELLITE_SENSOR_PAGE_SIZE"] = str(n_orders)  # one tick over every open order
        unchanged_seconds, unchanged = _tick(instance, {"timescaledb": db, "spexi": bulk})
        clock.advance(seconds=DELAY_S)
        completed_seconds, completed = _tick(instance, {"timescaledb": db, "spexi": bulk})
        statuses = db.read_frame("SELECT status, count(*) AS n FROM satellite_orders GROUP BY status")
        del os.environ["SATELLITE_SENSOR_PAGE_SIZE"]
    return {
        "open_orders": n_orders,
        "placing_orders_seconds": round(placing_seconds, 1),
        "bulk_tick_all_open_unchanged_seconds": round(unchanged_seconds, 2),
        "bulk_tick_all_open_completing_seconds": round(completed_seconds, 2),
        "bulk_tick_run_requests": len(completed.run_requests),
        "per_order_tick_page": sensors.DEFAULT_PAGE_SIZE,
        "per_order_tick_seconds": round(per_order_seconds, 2),
        "per_order_cursor_after_one_tick": per_order_result.cursor,
        "unchanged_tick_run_requests": len(unchanged.run_requests),
        "statuses_after": dict(zip(statuses["status"], statuses["n"].astype(int).tolist(), strict=True)),
    }
