"""The imagery chain end to end against the sandbox: stress -> orders -> sensor -> rasters -> daily
NDVI -> baselines, over real HTTP, PostgreSQL, Redis, an object store and GeoTIFFs through rasterio."""

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import rasterio
import sqlalchemy as sa
from affine import Affine

from microcrop_assets.defs.imagery.assets import (
    daily_ndvi,
    invalid_cogs,
    ndvi_baselines,
    ndvi_rasters,
    satellite_orders,
)
from microcrop_assets.defs.imagery.orders import MAX_DOWNLOAD_ATTEMPTS
from microcrop_assets.defs.imagery.sensors import satellite_order_sensor
from microcrop_assets.defs.plots.assets import DEMO_PLOTS, plots
from microcrop_assets.defs.weather.assets import weather_daily, weather_indices, weather_readings, weather_stations
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox
from microcrop_assets.science.policy import CROP_CALENDARS

from .fixtures.clients import spexi
from .fixtures.orders import IMAGERY_TABLES, empty_imagery, order_book
from .fixtures.weather import chain_resources

CLOCK = dt.datetime(2025, 8, 5, 12, tzinfo=dt.UTC)
SOWN = dt.date(2025, 7, 7)  # in our registry: the weather index window is complete from the first reading
# in the sandbox's world each crop is sown so that mid-July is the middle of its full-canopy plateau
# (flowering to maturity): without drought its NDVI stays level over the baseline and assessed weeks
MID_PLATEAU = dt.date(2025, 7, 17)
DROUGHT = {
    "events": [
        {"kind": "drought", "start": "2025-07-05", "end": "2025-08-31", "area": {"bbox": [34.3, 0.0, 35.2, 0.7]}}
    ]
}
ORDER_DAYS = [dt.date(2025, 7, d) for d in (7, 13, 19, 25, 28, 31)]
STRESS_DAY = dt.date(2025, 7, 28)
WEEK = dt.date(2025, 7, 27)  # the assessed week (a Sunday); its baseline is 2025-05-28..2025-07-26
KAKAMEGA = {f"KE-KAK-{i:03d}" for i in range(1, 7)}
ORDER_CONFIG = {"routine_every_days": 6, "dedup_days": 2, "resolution_meters": 2.0}


def plots_file(tmp_path, sowing: dt.date | None, name: str) -> str:
    """The demo plots sown on `sowing`, or (None) each crop sown for its plateau around MID_PLATEAU."""
    document = json.loads(DEMO_PLOTS.read_text())
    for feature in document["features"]:
        calendar = CROP_CALENDARS[feature["properties"]["crop"]]
        plateau_middle = (calendar["flowering"] + calendar["maturity"]) // 2
        sown = sowing or MID_PLATEAU - dt.timedelta(days=plateau_middle)
        feature["properties"].update(sowing_date=sown.isoformat(), season_end="2025-11-30")
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


@pytest.fixture
def empty_store(db):
    tables = IMAGERY_TABLES + ("weather_daily", "weather_station_health", "weather_readings", "plot_stations")
    with db.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)}, weather_stations, plots CASCADE"))
    return db


def imagery_resources(sandbox, db, tmp_path) -> dict:
    """The weather chain's resources plus Spexi on the sandbox (bulk order status)."""
    resources = chain_resources(sandbox, db, tmp_path)
    return {**resources, "spexi": spexi(sandbox, resources["redis"], order_statuses_path="/orders/status")}


def materialize(assets, resources, key: str | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    result = dg.materialize(assets, resources=resources, partition_key=key, **kwargs)
    assert result.success
    return result


def sensor_tick(instance, resources) -> list[dg.RunRequest]:
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return satellite_order_sensor(context).run_requests


def process(resources, requests: list[dg.RunRequest]) -> list[dg.ExecuteInProcessResult]:
    """What the daemon does with the sensor's run requests: ndvi_rasters_job for each capture date."""
    return [materialize([ndvi_rasters, daily_ndvi], resources, r.partition_key) for r in requests]


@pytest.mark.integration
def test_drought_plots_fall_below_their_ndvi_baseline_and_the_others_do_not(empty_store, tmp_path):
    with (
        running_sandbox(
            clock=ManualClock(CLOCK),
            scenario=DROUGHT,
            order_delay_s=0,
            station_count=16,  # four near each cluster of plots: a short weather chain
            plots_file=plots_file(tmp_path, None, "world.geojson"),
        ) as sandbox,
        dg.instance_for_test() as instance,
    ):
        resources = imagery_resources(sandbox, empty_store, tmp_path)
        materialize(
            [plots, weather_stations],
            resources,
            run_config={"ops": {"plots": {"config": {"source": plots_file(tmp_path, SOWN, "plots.geojson")}}}},
        )
        window = {
            "dagster/asset_partition_range_start": SOWN.isoformat(),
            "dagster/asset_partition_range_end": STRESS_DAY.isoformat(),
        }
        materialize([weather_readings, weather_daily], resources, tags=window)
        materialize([weather_indices], resources, STRESS_DAY.isoformat())

        config = {"ops": {"satellite_orders": {"config": ORDER_CONFIG}}}
        for day in ORDER_DAYS:
            materialize([satellite_orders], resources, day.isoformat(), run_config=config)
        requests = sensor_tick(instance, resources)
        assert sorted(r.partition_key for r in requests) == [(d + dt.timedelta(days=1)).isoformat() for d in ORDER_DAYS]
        assert sensor_tick(instance, resources) == []  # nothing is asked twice
        runs = process(resources, requests)

        # stress -> orders: on the stress day only the drought plots were due, as stress orders
        book = order_book(empty_store)
        stressed = book[book["requested_day"] == STRESS_DAY]
        assert set(stressed["plot_id"]) == KAKAMEGA and set(stressed["reason"]) == {"stress"}
        assert set(stressed["priority"]) == {"high"}
        assert (book["status"] == "completed").all() and book["processed_at"].notna().all()

        # every image: raw GeoTIFF and COGs in the store with their sha256, checks passed
        observations = empty_store.read_frame("SELECT * FROM plot_ndvi_observations")
        assert len(observations) == len(book) and observations["ndvi_key"].is_unique
        store = resources["object_store"]
        sample = observations.iloc[0]
        assert store.head(sample["image_key"]).sha256 == sample["image_sha256"]
        assert store.head(sample["ndvi_key"]).sha256 == sample["ndvi_sha256"]
        assert store.exists(sample["ndvi_key"].replace(".tif", ".json"))  # the STAC Item beside the COG
        checks = [c for run in runs for c in run.get_asset_check_evaluations()]
        assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]

        baseline_config = {"ops": {"ndvi_baselines": {"config": {"min_obs": 3}}}}
        baseline_run = materialize([ndvi_baselines], resources, WEEK.isoformat(), run_config=baseline_config)

    baselines = empty_store.read_frame("SELECT * FROM ndvi_baselines WHERE week_start = :w", {"w": WEEK})
    assert len(baselines) == 12 and baselines["missing_reason"].isna().all() and (baselines["n_obs"] >= 3).all()
    assert baseline_run.get_asset_check_evaluations()[0].passed
    # the assessed week's NDVI per plot (the drought plots were imaged on the 29th, the others on the 1st)
    assessed = empty_store.read_frame(
        "SELECT plot_id, avg(ndvi_mean) AS ndvi_mean FROM daily_ndvi WHERE day BETWEEN :w AND :w + 6 GROUP BY plot_id",
        {"w": WEEK},
    ).merge(baselines, on="plot_id", suffixes=("", "_baseline"))
    assert len(assessed) == 12
    # below = a decline from the baseline mean of more than 15 % (the policy's satellite "decline" measure)
    decline = 1 - assessed["ndvi_mean"] / assessed["ndvi_mean_baseline"]
    below = set(assessed.loc[decline > 0.15, "plot_id"])
    assert below == KAKAMEGA, assessed.assign(decline=decline)[["plot_id", "ndvi_mean", "ndvi_mean_baseline"]]
    assert decline[~assessed["plot_id"].isin(KAKAMEGA)].max() < 0.1  # the others stay level


@pytest.mark.integration
def test_download_failures_are_retried_and_an_unusable_image_fails_only_its_order(empty_store, tmp_path):
    capture = dt.date(2025, 7, 21)
    with (
        running_sandbox(clock=ManualClock(CLOCK), order_delay_s=0) as sandbox,
        dg.instance_for_test() as instance,
    ):
        resources = imagery_resources(sandbox, empty_store, tmp_path)
        materialize([plots], resources, run_config={"ops": {"plots": {"config": {"source": str(DEMO_PLOTS)}}}})
        config = {"ops": {"satellite_orders": {"config": ORDER_CONFIG}}}
        materialize([satellite_orders], resources, (capture - dt.timedelta(days=1)).isoformat(), run_config=config)
        [first_request] = sensor_tick(instance, resources)

        # every download cut short: nothing is lost, the orders stay owed to the sensor
        sandbox.set_faults(share_truncated=1.0, paths=["/spexi/developer-api/api/v1/orders/"])
        try:
            truncated = materialize([ndvi_rasters], resources, capture.isoformat())
        finally:
            sandbox.clear_faults()
        book = order_book(empty_store)
        assert (book["status"] == "completed").all() and (book["download_attempts"] == 1).all()
        assert book["error"].str.startswith("download failed").all() and book["raster_run_key"].isna().all()
        assert len(truncated.asset_materializations_for_node("ndvi_rasters")[0].metadata["problems"].value) == 12
        [retry] = sensor_tick(instance, resources)
        assert retry.partition_key == capture.isoformat() and retry.run_key != first_request.run_key

        materialize([ndvi_rasters], resources, capture.isoformat())
        day_rows = "SELECT * FROM plot_ndvi_observations WHERE capture_date = :d"
        assert len(empty_store.read_frame(day_rows, {"d": capture})) == 12

        # the stored raw image of one order is corrupt: that order fails with the reason, the day's
        # other images are processed again, and the day's rows are replaced (not duplicated)
        victim = book.iloc[0]
        stored = empty_store.read_frame(day_rows, {"d": capture}).set_index("order_id").loc[victim["order_id"]]
        resources["object_store"].put(stored["image_key"], b"II*\x00" + b"\x00" * 100)
        with empty_store.begin() as conn:
            conn.execute(
                sa.text("UPDATE satellite_orders SET image_key = :k, image_sha256 = :s WHERE request_id = :r"),
                {"k": stored["image_key"], "s": resources["object_store"].head(stored["image_key"]).sha256,
                 "r": victim["request_id"]},
            )  # fmt: skip
        # downloads broken again: the other images come from the store (recorded sha256), not from Spexi
        sandbox.set_faults(share_truncated=1.0, paths=["/spexi/developer-api/api/v1/orders/"])
        try:
            rerun = materialize([ndvi_rasters], resources, capture.isoformat())
        finally:
            sandbox.clear_faults()
        rows = empty_store.read_frame(day_rows, {"d": capture})
        assert len(rows) == 11 and victim["order_id"] not in set(rows["order_id"])
        failed = order_book(empty_store).set_index("request_id").loc[victim["request_id"]]
        assert failed["status"] == "failed" and failed["error"].startswith("unusable image:")
        assert all(c.passed for c in rerun.get_asset_check_evaluations())
    assert MAX_DOWNLOAD_ATTEMPTS > 1


@pytest.mark.integration
def test_daily_ndvi_rerun_replaces_the_day(empty_store, tmp_path):
    day = dt.date(2025, 7, 21)
    observations = pd.DataFrame(
        {
            "order_id": ["o1", "o2"],
            "plot_id": ["KE-KAK-001", "KE-KAK-001"],
            "capture_date": day,
            "captured_at": dt.datetime(2025, 7, 21, tzinfo=dt.UTC),
            "ndvi_mean": [0.6, 0.7],
            "valid_fraction": [0.9, 0.4],
            "pixels": [100, 100],
            "masked": "{}",
            "image_key": "i",
            "image_sha256": "s",
            "ndvi_key": ["n1", "n2"],
            "ndvi_sha256": ["h1", "h2"],
            "evi_key": "e",
            "lai_key": "l",
        }
    )
    empty_store.replace_rows("plot_ndvi_observations", observations, "capture_date = :d", {"d": day})
    resources = {"timescaledb": empty_store}
    for _ in range(2):
        result = materialize([daily_ndvi], resources, day.isoformat())
    rows = empty_store.read_frame("SELECT * FROM daily_ndvi")
    assert len(rows) == 1 and rows["ndvi_mean"].iloc[0] == 0.6 and rows["n_images"].iloc[0] == 1  # 0.4 < 0.5
    assert result.get_asset_check_evaluations()[0].passed


@pytest.mark.unit
def test_cog_check_rejects_a_plain_geotiff(local_store, tmp_path):
    plain = tmp_path / "plain.tif"
    profile = {"driver": "GTiff", "width": 1024, "height": 1024, "count": 1, "dtype": "float32", "crs": "EPSG:32736"}
    with rasterio.open(plain, "w", transform=Affine(1, 0, 500_000, 0, -1, 9_900_000), **profile) as dst:
        dst.write(np.zeros((1, 1024, 1024), "float32"))  # striped, no overviews: not cloud-optimized
    local_store.put("rasters/plain.tif", plain)
    invalid = invalid_cogs(local_store, ["rasters/plain.tif"])
    assert list(invalid) == ["rasters/plain.tif"] and invalid["rasters/plain.tif"]


@pytest.mark.integration
def test_baselines_without_imagery_are_missing_with_the_reason_and_the_check_fails(db):
    empty_imagery(db)  # the demo plots, in season in July, and no imagery at all
    result = materialize([ndvi_baselines], {"timescaledb": db}, WEEK.isoformat())
    rows = db.read_frame("SELECT * FROM ndvi_baselines WHERE week_start = :w", {"w": WEEK})
    assert len(rows) == 12 and rows["ndvi_mean"].isna().all() and (rows["n_obs"] == 0).all()
    assert (
        rows["missing_reason"]
        .str.contains("0 day(s) with valid imagery from 2025-05-28 to 2025-07-26", regex=False)
        .all()
    )
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and len(check.metadata["missing"].value) == 12
