"""Imagery assets: Spexi orders -> per-image plot NDVI (COGs) -> daily plot NDVI -> weekly baselines.

Thin on purpose: the order book is `imagery/orders.py`, raster processing `imagery/rasters.py`,
the daily rule and baselines `science/baselines.py`.
"""

import datetime as dt
import json
import math
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from microcrop_assets.defs.imagery import orders as book
from microcrop_assets.defs.imagery.rasters import ImageryError, process_image
from microcrop_assets.defs.plots.assets import plots
from microcrop_assets.defs.shared import NIGHTLY_FRESHNESS, daily_partitions, weekly_partitions
from microcrop_assets.defs.weather.assets import weather_indices
from microcrop_assets.resources.http import VendorError
from microcrop_assets.resources.object_store import ChecksumMismatch, ObjectNotFound, ObjectStoreResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.science import baselines
from microcrop_assets.science.vegetation import VegetationParams

INDICES = ("ndvi", "evi", "lai")
OBSERVATION_COLUMNS = [
    "order_id",
    "plot_id",
    "capture_date",
    "captured_at",
    *baselines.STATISTICS,
    "valid_fraction",
    "pixels",
    "masked",
    "image_key",
    "image_sha256",
    "ndvi_key",
    "ndvi_sha256",
    "evi_key",
    "lai_key",
]


def partition_day(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


# -- orders ----------------------------------------------------------------------------------------


class OrdersConfig(dg.Config):
    routine_every_days: int = Field(default=14, ge=1, description="routine capture cadence through the season")
    dedup_days: int = Field(default=5, ge=1, description="never a second order for a plot inside this window")
    retry_days: int = Field(default=3, ge=0, description="failed placements of the last N days are retried")
    capture_lead_days: int = Field(default=1, ge=0, description="capture this many days after the stress day")
    resolution_meters: float = Field(default=0.5, gt=0, description="ground sampling distance ordered")
    concurrency: int = Field(default=4, ge=1, le=16, description="parallel order calls (the rate limit still holds)")


UNKNOWN_ACTION = (
    "ask Spexi whether it holds an order for each, then `microcrop orders record REQUEST_ID ORDER_ID` "
    "or `microcrop orders release REQUEST_ID` (docs/operations.md, Unknown placements)"
)

# baselines on Sundays at 02:00 UTC
BASELINES_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 4 * * 0", lower_bound_delta=dt.timedelta(hours=2))


@dg.asset(
    freshness_policy=NIGHTLY_FRESHNESS,
    group_name="imagery",
    kinds={"postgres"},
    partitions_def=daily_partitions,
    deps=[plots, weather_indices],
    pool="spexi",
    check_specs=[
        # ERROR: a placement of unknown outcome never settles by itself; it may be a paid flight
        # nobody follows, and its plot gets no new order in its window. Not blocking: the
        # assessments run with it (stress_response_job) must not wait on a person.
        dg.AssetCheckSpec(
            "no_unknown_placements",
            asset="satellite_orders",
            description="no order placement whose outcome is unknown (the call failed after Spexi may have acted)",
        )
    ],
)
def satellite_orders(
    context: dg.AssetExecutionContext,
    config: OrdersConfig,
    timescaledb: TimescaleDBResource,
    redis: RedisResource,
    spexi: SpexiResource,
) -> dg.MaterializeResult:
    """Spexi capture orders for the day (`satellite_orders`): stressed plots (weather_stress at or
    above the policy's stress_trigger), a routine cadence through the season, and retries of failed
    placements; at most one live order per plot inside the de-duplication window. The check fails
    while any placement, of any day, has an unknown outcome."""
    day = partition_day(context)
    plot_frame = timescaledb.read_frame(
        "SELECT plot_id, sowing_date, season_end, centroid_lat, centroid_lon, CAST(area_ha AS float8) AS area_ha,"
        " CAST(policy_terms->>'stress_trigger' AS float8) AS stress_trigger FROM plots WHERE active"
    )
    stress = timescaledb.read_frame(
        "SELECT plot_id, weather_stress FROM weather_indices WHERE day = :day", {"day": day}
    )
    history = timescaledb.read_frame(
        "SELECT plot_id, requested_day, status, reason FROM satellite_orders WHERE requested_day >= :since",
        {"since": day - dt.timedelta(days=max(config.routine_every_days, config.retry_days, config.dedup_days))},
    )
    plan = book.plan_orders(plot_frame, stress, history, day, config.routine_every_days, config.retry_days)
    located = plan.merge(plot_frame, on="plot_id")
    requests = [
        book.OrderRequest(r.plot_id, r.reason, r.priority, r.centroid_lat, r.centroid_lon, r.area_ha)
        for r in located.itertuples()
    ]
    now = dt.datetime.now(dt.UTC)
    capture = day + dt.timedelta(days=config.capture_lead_days)

    def place(request: book.OrderRequest) -> book.Placement:
        return book.place_order(
            timescaledb, redis, spexi, request, day, capture, config.dedup_days, config.resolution_meters, now
        )

    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        placements = list(pool.map(place, requests))
    outcomes = Counter(p.outcome for p in placements)
    failures = {p.plot_id: p.detail for p in placements if p.outcome == "placement_failed"}
    for plot_id, detail in failures.items():
        context.log.warning(f"order for {plot_id} not placed (retried next run): {detail}")
    for p in placements:
        if p.outcome == "placement_unknown":
            context.log.error(f"order for {p.plot_id} may have been placed (not retried): {p.detail}")
    unknown = book.unknown_placements(timescaledb)
    return dg.MaterializeResult(
        metadata={
            "planned": len(plan),
            "by_reason": dg.MetadataValue.json(plan["reason"].value_counts().to_dict()),
            "outcomes": dg.MetadataValue.json(dict(outcomes)),
            "placed": outcomes.get("placed", 0),
            "placement_failures": dg.MetadataValue.json(dict(list(failures.items())[:50])),
            "placement_unknown": len(unknown),  # every day's, not only this run's
            "capture_date": capture.isoformat(),
        },
        check_results=[unknown_placements_check(unknown)],
    )


def unknown_placements_check(unknown: pd.DataFrame) -> dg.AssetCheckResult:
    """Fails while any placement's outcome is unknown, naming the plots and what to do."""
    plot_ids = sorted(set(unknown["plot_id"]))
    named = ", ".join(plot_ids[:20]) + (f" and {len(plot_ids) - 20} more" if len(plot_ids) > 20 else "")
    return dg.AssetCheckResult(
        check_name="no_unknown_placements",
        passed=unknown.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"placements of unknown outcome for plots {named}: {UNKNOWN_ACTION}" if plot_ids else None,
        metadata={
            "placement_unknown": len(unknown),
            "errors": dg.MetadataValue.json(dict(zip(unknown["request_id"][:50], unknown["error"][:50], strict=True))),
        },
    )


# -- rasters ---------------------------------------------------------------------------------------


class RastersConfig(dg.Config):
    key_prefix: str = Field(default="imagery", description="object-store prefix of raw images, COGs and STAC Items")


def _process_order(
    order, geometry: dict, spexi: SpexiResource, store: ObjectStoreResource, prefix: str, work: Path
) -> list[dict]:
    """Download (or reuse) one order's GeoTIFF, compute the indices, store COGs and STAC Items; the
    plot rows. Raises VendorError (download) or ImageryError (unusable image)."""
    day = order.capture_date.isoformat()
    image_key = f"{prefix}/raw/{day}/{order.order_id}.tif"
    local = work / f"{order.order_id}.tif"
    try:  # an image stored by an earlier run is reused when it is still the one recorded (sha256)
        if order.image_key != image_key or store.head(image_key).sha256 != order.image_sha256:
            raise ObjectNotFound(image_key)
        store.download(image_key, local)
        image_sha256 = order.image_sha256
    except (ObjectNotFound, ChecksumMismatch):
        image_sha256 = spexi.download_order_to_store(order.order_id, store, image_key).sha256
        store.download(image_key, local)  # verifies the sha256 recorded at upload
    out_dir = work / order.order_id
    out_dir.mkdir()
    captured_at = dt.datetime.combine(order.capture_date, dt.time(), tzinfo=dt.UTC)
    result = process_image(local, [(order.plot_id, geometry)], out_dir, item_id=order.order_id, captured_at=captured_at)
    keys = {}
    for index in INDICES:
        raster = result.rasters[index]
        # the STAC Item refers to its COG by a relative href: both go to the same folder, names kept
        folder = f"{prefix}/rasters/{day}"
        keys[index] = f"{folder}/{raster.path.name}"
        store.put(keys[index], raster.path, content_type="image/tiff; application=geotiff; profile=cloud-optimized")
        store.put(f"{folder}/{raster.stac_path.name}", raster.stac_path, content_type="application/geo+json")
    return [
        {
            "order_id": order.order_id,
            "plot_id": stats.plot_id,
            "capture_date": order.capture_date,
            "captured_at": captured_at,
            **{name: getattr(stats, name) for name in baselines.STATISTICS},
            "valid_fraction": stats.valid_fraction,
            "pixels": stats.pixels,
            "masked": json.dumps(stats.masked, sort_keys=True),
            "image_key": image_key,
            "image_sha256": image_sha256,
            "ndvi_key": keys["ndvi"],
            "ndvi_sha256": result.rasters["ndvi"].sha256,
            "evi_key": keys["evi"],
            "lai_key": keys["lai"],
        }
        for stats in result.plots
    ]


@dg.asset(
    group_name="imagery",
    kinds={"postgres", "s3"},
    partitions_def=daily_partitions,
    deps=[satellite_orders],
    pool="spexi",
    check_specs=[
        dg.AssetCheckSpec("ndvi_in_range", asset="ndvi_rasters", description="plot NDVI statistics within -1..1"),
        dg.AssetCheckSpec("valid_fractions", asset="ndvi_rasters", description="valid fractions within 0..1"),
        dg.AssetCheckSpec("rasters_are_cogs", asset="ndvi_rasters", description="every stored raster is a valid COG"),
    ],
)
def ndvi_rasters(
    context: dg.AssetExecutionContext,
    config: RastersConfig,
    timescaledb: TimescaleDBResource,
    spexi: SpexiResource,
    object_store: ObjectStoreResource,
) -> dg.MaterializeResult:
    """Every completed order captured on the day: GeoTIFF to object storage (sha256), NDVI/EVI/LAI
    COGs and STAC Items, per-plot statistics (`plot_ndvi_observations`, the day replaced at once).
    An unusable image fails its order with the reason; a failed download leaves it owed to the sensor."""
    day = partition_day(context)
    owed = timescaledb.read_frame(
        "SELECT o.request_id, o.order_id, o.plot_id, o.capture_date, o.image_key, o.image_sha256,"
        " o.download_attempts, p.geometry FROM satellite_orders o JOIN plots p USING (plot_id)"
        " WHERE o.capture_date = :day AND o.status = 'completed' ORDER BY o.order_id",
        {"day": day},
    )
    rows, processed, problems = [], [], {}
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="ndvi-") as tmp:
        for order in owed.itertuples():
            try:
                plot_rows = _process_order(order, order.geometry, spexi, object_store, config.key_prefix, Path(tmp))
            except VendorError as error:
                status = book.record_download_failure(
                    timescaledb, order.request_id, order.download_attempts + 1, str(error), now
                )
                problems[order.order_id] = f"download failed (order left {status}): {error}"
                continue
            except ImageryError as error:
                book.set_status(
                    timescaledb, order.request_id, "failed", now, str(error), error=f"unusable image: {error}"
                )
                problems[order.order_id] = f"unusable image: {error}"
                continue
            rows.extend(plot_rows)
            processed.append((order.request_id, plot_rows[0]["image_key"], plot_rows[0]["image_sha256"]))
    frame = pd.DataFrame(rows, columns=OBSERVATION_COLUMNS)
    with timescaledb.begin() as conn:
        timescaledb.replace_in(conn, "plot_ndvi_observations", frame, "capture_date = :day", {"day": day})
        for request_id, image_key, image_sha256 in processed:
            conn.execute(
                sa.text(
                    "UPDATE satellite_orders SET processed_at = :at, image_key = :key, image_sha256 = :sha,"
                    " error = NULL, updated_at = :at WHERE request_id = :rid"
                ),
                {"at": now, "key": image_key, "sha": image_sha256, "rid": request_id},
            )
    for order_id, problem in problems.items():
        context.log.warning(f"order {order_id}: {problem}")

    statistic_columns = ["ndvi_mean", "ndvi_median", "ndvi_p10", "ndvi_p90"]
    ndvi = frame[statistic_columns].astype(float)  # None (no valid pixel) is NaN, never out of range
    out_of_range = int(((ndvi < -1) | (ndvi > 1)).sum().sum())
    bad_fractions = int(((frame["valid_fraction"] < 0) | (frame["valid_fraction"] > 1)).sum())
    not_cog = invalid_cogs(
        object_store, [key for row in rows for key in (row["ndvi_key"], row["evi_key"], row["lai_key"])]
    )
    return dg.MaterializeResult(
        metadata={
            "orders": len(owed),
            "images_processed": len(processed),
            "observations": len(frame),
            "problems": dg.MetadataValue.json(problems),
            "ndvi_mean": float(frame["ndvi_mean"].mean()) if frame["ndvi_mean"].notna().any() else float("nan"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="ndvi_in_range", passed=out_of_range == 0, metadata={"values_outside": out_of_range}
            ),
            dg.AssetCheckResult(
                check_name="valid_fractions", passed=bad_fractions == 0, metadata={"outside_0_1": bad_fractions}
            ),
            dg.AssetCheckResult(
                check_name="rasters_are_cogs",
                passed=not not_cog,
                metadata={"checked": len(set(frame["ndvi_key"])) * 3, "invalid": dg.MetadataValue.json(not_cog)},
            ),
        ],
    )


def invalid_cogs(store: ObjectStoreResource, keys: list[str]) -> dict[str, str]:
    """The stored rasters that are not valid Cloud-Optimized GeoTIFFs, with rio-cogeo's errors."""
    from rio_cogeo.cogeo import cog_validate  # rasterio: not when the definitions load

    invalid = {}
    with tempfile.TemporaryDirectory(prefix="cog-check-") as tmp:
        for number, key in enumerate(dict.fromkeys(keys)):
            local = Path(tmp) / f"{number}.tif"
            store.download(key, local)
            valid, errors, _warnings = cog_validate(str(local), quiet=True)
            if not valid:
                invalid[key] = "; ".join(errors)
            local.unlink()
    return invalid


# -- daily NDVI ------------------------------------------------------------------------------------


class DailyNdviConfig(dg.Config):
    min_valid_fraction: float = Field(
        default=VegetationParams().min_valid_fraction,
        ge=0,
        le=1,
        description="images with fewer valid pixels in the plot do not count",
    )


@dg.asset(
    freshness_policy=NIGHTLY_FRESHNESS,
    group_name="imagery",
    kinds={"postgres"},
    partitions_def=daily_partitions,
    deps=[ndvi_rasters],
    check_specs=[
        dg.AssetCheckSpec(
            "daily_valid_fractions",
            asset="daily_ndvi",
            description="every plot-day comes from an image at or above the minimum valid fraction",
        )
    ],
)
def daily_ndvi(
    context: dg.AssetExecutionContext, config: DailyNdviConfig, timescaledb: TimescaleDBResource
) -> dg.MaterializeResult:
    """One row per plot and day with valid imagery (`daily_ndvi`): the statistics of the day's image
    with the highest valid fraction; `sources` lists every image that counted."""
    day = partition_day(context)
    observations = timescaledb.read_frame(
        "SELECT * FROM plot_ndvi_observations WHERE capture_date = :day", {"day": day}
    )
    daily = baselines.daily_ndvi(observations, config.min_valid_fraction)
    timescaledb.replace_rows("daily_ndvi", daily, "day = :day", {"day": day})
    below = int((daily["valid_fraction"] < config.min_valid_fraction).sum())
    return dg.MaterializeResult(
        metadata={
            "plots": len(daily),
            "images": len(observations),
            "images_below_min_valid": int((observations["valid_fraction"] < config.min_valid_fraction).sum()),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="daily_valid_fractions", passed=below == 0, metadata={"rows_below_minimum": below}
            )
        ],
    )


# -- baselines -------------------------------------------------------------------------------------


class BaselinesConfig(dg.Config):
    min_obs: int = Field(default=baselines.DEFAULT_MIN_OBS, ge=2, description="fewer days of imagery: missing")


@dg.asset(
    freshness_policy=BASELINES_FRESHNESS,
    group_name="imagery",
    kinds={"postgres"},
    partitions_def=weekly_partitions,
    deps=[
        plots,
        # the 60 days before the assessed week: nine whole weeks of daily partitions, ending at its Sunday
        dg.AssetDep(
            daily_ndvi,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-math.ceil(baselines.BASELINE_WINDOW_DAYS / 7), end_offset=-1
            ),
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "baselines_for_plots_in_season",
            asset="ndvi_baselines",
            description="every plot in season during the week has a baseline (not missing)",
        )
    ],
)
def ndvi_baselines(
    context: dg.AssetExecutionContext, config: BaselinesConfig, timescaledb: TimescaleDBResource
) -> dg.MaterializeResult:
    """Per plot and week (`ndvi_baselines`): mean, std (ddof 1), min, max and count of daily NDVI over
    the 60 days before the week; missing with the reason below the minimum count."""
    week_start = partition_day(context)
    week_end = week_start + dt.timedelta(days=6)
    first, last = baselines.baseline_window(week_start)
    in_season = timescaledb.read_frame(
        "SELECT plot_id FROM plots WHERE active AND sowing_date <= :end AND season_end >= :start",
        {"start": week_start, "end": week_end},
    )["plot_id"].tolist()
    daily = timescaledb.read_frame(
        "SELECT plot_id, day, ndvi_mean FROM daily_ndvi WHERE day BETWEEN :first AND :last",
        {"first": first, "last": last},
    )
    rows = baselines.ndvi_baselines(daily, in_season, week_start, min_obs=config.min_obs)
    timescaledb.replace_rows("ndvi_baselines", rows, "week_start = :week", {"week": week_start})
    missing = rows[rows["missing_reason"].notna()]
    return dg.MaterializeResult(
        metadata={
            "plots_in_season": len(in_season),
            "baselines": len(rows) - len(missing),
            "missing": len(missing),
            "window": f"{first}..{last}",
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="baselines_for_plots_in_season",
                passed=missing.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"missing": dg.MetadataValue.json(missing["plot_id"].head(100).tolist())},
            )
        ],
    )
