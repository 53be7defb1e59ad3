"""Weather assets: WeatherXM stations -> readings -> station days -> per-plot stress indices.

Thin on purpose: read inputs, call `microcrop_assets.science`, write tables, report metadata.
"""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from microcrop_assets import settings
from microcrop_assets.defs.plots.assets import plots
from microcrop_assets.defs.shared import NIGHTLY_FRESHNESS, daily_partitions
from microcrop_assets.defs.weather import gaps, quality
from microcrop_assets.resources.http import VendorError
from microcrop_assets.resources.timescaledb import TimescaleDBResource, time_window
from microcrop_assets.resources.weatherxm import OBSERVATION_COLUMNS, WeatherXMResource
from microcrop_assets.science.geo import assign_stations, query_bounds
from microcrop_assets.science.plot_indices import LOOKBACK_DAYS, compute_weather_indices
from microcrop_assets.science.stations import station_days


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    window = context.partition_time_window
    days = (window.end - window.start).days
    return [window.start.date() + dt.timedelta(days=i) for i in range(days)]


def utc_day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


# -- stations --------------------------------------------------------------------------------------


class StationsConfig(dg.Config):
    radius_km: float = Field(default=50.0, gt=0, description="stations farther than this never serve a plot")
    max_stations_per_plot: int = Field(default=8, ge=1, description="nearest stations kept per plot")
    cell_degrees: float = Field(default=1.0, gt=0, description="plots are grouped into bounds queries per cell")


# refreshed at 23:40 UTC, before the nightly run that needs the assignments
STATIONS_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 0 * * *", lower_bound_delta=dt.timedelta(hours=1))
# today's readings are refreshed every WEATHER_FETCH_INTERVAL minutes: three missed ticks fail
READINGS_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(minutes=3 * settings.env_int("WEATHER_FETCH_INTERVAL", 5)),
    warn_window=dt.timedelta(minutes=2 * settings.env_int("WEATHER_FETCH_INTERVAL", 5)),
)


@dg.asset(
    freshness_policy=STATIONS_FRESHNESS,
    group_name="weather",
    kinds={"postgres"},
    deps=[plots],
    pool="weatherxm",
    check_specs=[
        dg.AssetCheckSpec(
            "plots_have_stations",
            asset="weather_stations",
            description="every active plot has a station within the radius",
        )
    ],
)
def weather_stations(
    context: dg.AssetExecutionContext,
    config: StationsConfig,
    timescaledb: TimescaleDBResource,
    weatherxm: WeatherXMResource,
) -> dg.MaterializeResult:
    """Station catalogue near the active plots (`weather_stations`) and plot assignments (`plot_stations`)."""
    plot_frame = timescaledb.read_frame("SELECT plot_id, centroid_lat, centroid_lon FROM plots WHERE active")
    boxes = query_bounds(plot_frame["centroid_lat"], plot_frame["centroid_lon"], config.radius_km, config.cell_degrees)
    found = {}
    for box in boxes:
        for station in weatherxm.stations_in_bounds(box.min_lat, box.min_lon, box.max_lat, box.max_lon):
            found[station.id] = station
    catalogue = pd.DataFrame(
        [
            {
                "station_id": s.id,
                "name": s.name,
                "cell_id": s.cell_id,
                "lat": s.lat,
                "lon": s.lon,
                "elevation": s.elevation,
                "qod": s.qod,
                "created_at": s.created_at,
            }
            for s in found.values()
        ],
        columns=["station_id", "name", "cell_id", "lat", "lon", "elevation", "qod", "created_at"],
    ).assign(refreshed_at=dt.datetime.now(dt.UTC))
    assignments = assign_stations(plot_frame, catalogue, config.radius_km, config.max_stations_per_plot)
    used = catalogue[catalogue["station_id"].isin(assignments["station_id"])]

    with timescaledb.begin() as conn:
        staging = timescaledb.stage_in(conn, "weather_stations", used, list(used.columns))
        timescaledb.upsert_from(conn, "weather_stations", staging, "station_id", list(used.columns), "active = true")
        # stations no plot uses any more are kept (history) but marked inactive
        conn.execute(
            sa.text(
                f"UPDATE weather_stations SET active = false WHERE station_id NOT IN (SELECT station_id FROM {staging})"
            )
        )
        timescaledb.replace_in(conn, "plot_stations", assignments, "true", {})

    served = assignments["plot_id"].nunique()
    unserved = sorted(set(plot_frame["plot_id"]) - set(assignments["plot_id"]))
    return dg.MaterializeResult(
        metadata={
            "vendor_calls": len(boxes),
            "stations_found": len(catalogue),
            "stations_assigned": len(used),
            "plots_served": served,
            "plots_without_station": dg.MetadataValue.json(unserved[:100]),
            "median_distance_km": float(assignments["distance_km"].median()) if len(assignments) else float("nan"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="plots_have_stations",
                passed=not unserved,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"plots_without_station": len(unserved)},
            )
        ],
    )


# -- readings --------------------------------------------------------------------------------------

READINGS_STAGE = "weather_readings"  # the stage name of this asset's vendor gaps


class ReadingsConfig(dg.Config):
    max_failed_share: float = Field(
        default=0.2, ge=0, le=1, description="fail the run when a whole day's first pass loses more than this share"
    )
    concurrency: int = Field(default=4, ge=1, le=32, description="parallel history calls (rate limit still holds)")
    refetch_gaps: bool = Field(
        default=False,
        description="the nightly gap refetch: days before the range's last fetch only their stations with open"
        " gaps; the last day is fetched whole",
    )


@dataclass(frozen=True)
class DayFetch:
    """One UTC day of some stations: their readings and health, and the stations that failed (-> error)."""

    day: dt.date
    readings: pd.DataFrame
    health: pd.DataFrame
    failures: dict[str, str]


def _fetch_day(weatherxm: WeatherXMResource, station_ids: list[str], day: dt.date, concurrency: int) -> DayFetch:
    """Every station's history for one UTC day; failures are collected, not raised."""

    def one(station_id: str):
        try:
            return station_id, weatherxm.history(station_id, day), None
        except VendorError as error:  # one bad station never stops the others; a bug in ours still does
            return station_id, None, f"{type(error).__name__}: {error}"

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, station_ids))
    frames, health, failures = [], [], {}
    for station_id, history, error in results:
        if error:
            failures[station_id] = error
            continue
        frames.append(history.observations)
        health.append(
            {
                "station_id": station_id,
                "day": day,
                "qod": history.qod,
                "location_quality": history.location_quality,
                "location_reason": history.location_reason,
            }
        )
    readings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(OBSERVATION_COLUMNS))
    return DayFetch(
        day,
        readings,
        pd.DataFrame(health, columns=["station_id", "day", "qod", "location_quality", "location_reason"]),
        failures,
    )


def _store_day(
    timescaledb: TimescaleDBResource, fetched: DayFetch, scope: list[str] | None
) -> tuple[pd.DataFrame, int]:
    """One transaction per day: the fetched stations' rows replace theirs (every station's when `scope`
    is None, else only those in `scope`); a station that failed keeps what it had and gets a gap.
    Returns (the readings stored, how many were dropped for lying outside the UTC day)."""
    day = fetched.day
    start, end = utc_day_bounds(day)
    readings = fetched.readings
    in_day = (readings["ts"] >= start) & (readings["ts"] < end) if len(readings) else np.array([], bool)
    # time-ordered rows append to the (ts, station_id) key: the fast bulk-load order
    readings = readings.loc[in_day].drop_duplicates(["station_id", "ts"]).sort_values(["ts", "station_id"])
    stations = "NOT station_id = ANY(:failed)" + ("" if scope is None else " AND station_id = ANY(:scope)")
    params = {"start": start, "end": end, "day": day, "failed": list(fetched.failures), "scope": scope}
    now = dt.datetime.now(dt.UTC)
    with timescaledb.begin() as conn:
        timescaledb.replace_in(
            conn, "weather_readings", readings, f"{time_window('ts')} AND {stations}", params, OBSERVATION_COLUMNS
        )
        timescaledb.replace_in(conn, "weather_station_health", fetched.health, f"day = :day AND {stations}", params)
        gaps.record_gaps(conn, READINGS_STAGE, "weatherxm", day, fetched.failures, now)
        gaps.resolve_gaps(conn, READINGS_STAGE, day, now, keys=scope, still_failing=fetched.failures)
    return readings, int((~in_day).sum())


@dg.asset(
    freshness_policy=READINGS_FRESHNESS,
    group_name="weather",
    kinds={"postgres"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[weather_stations],
    pool="weatherxm",
    check_specs=[
        dg.AssetCheckSpec(
            "readings_physical_ranges",
            asset="weather_readings",
            description="temperature -60..60 C, humidity 0..100 %, rain >= 0, pressure 800..1100 hPa",
        ),
        dg.AssetCheckSpec(
            "stations_answered",
            asset="weather_readings",
            description="every station day of the run's days is stored: none is left as an open vendor gap",
        ),
    ],
)
def weather_readings(
    context: dg.AssetExecutionContext,
    config: ReadingsConfig,
    timescaledb: TimescaleDBResource,
    weatherxm: WeatherXMResource,
) -> dg.MaterializeResult:
    """Every assigned station's observations per UTC day (`weather_readings`, one row per station and timestamp).

    A station day that fails every retry is tried once more at the end of the run; one still failing
    keeps its stored rows and is recorded in `vendor_gaps`, which the nightly run fetches again."""
    station_ids = timescaledb.read_frame("SELECT DISTINCT station_id FROM plot_stations ORDER BY station_id")[
        "station_id"
    ].tolist()
    days = partition_days(context)
    open_before = gaps.open_gaps(timescaledb, READINGS_STAGE, days[0], days[-1])
    loaded, dropped, attempted, out_of_range, retry_later = 0, 0, 0, {}, {}

    def store(fetched: DayFetch, scope: list[str] | None) -> None:
        nonlocal loaded, dropped
        stored, outside = _store_day(timescaledb, fetched, scope)
        loaded, dropped = loaded + len(stored), dropped + outside
        for name, count in quality.out_of_range_counts(stored).items():
            out_of_range[name] = out_of_range.get(name, 0) + count

    for day in days:
        scope = None
        if config.refetch_gaps and day != days[-1]:
            scope = sorted(open_before.loc[open_before["day"] == day, "key"])
            if not scope:
                continue
        asked = station_ids if scope is None else scope
        fetched = _fetch_day(weatherxm, asked, day, config.concurrency)
        attempted += len(asked)
        share = len(fetched.failures) / len(station_ids) if station_ids else 0.0
        if scope is None and share > config.max_failed_share:
            summary = f"{len(fetched.failures)} of {len(station_ids)} stations failed"
            # the day keeps its rows (maybe a partial intraday fetch): every station of it is a gap
            missing = {station: f"day not stored: {summary}" for station in station_ids} | fetched.failures
            with timescaledb.begin() as conn:
                gaps.record_gaps(conn, READINGS_STAGE, "weatherxm", day, missing, dt.datetime.now(dt.UTC))
            raise dg.Failure(
                description=f"{day}: {summary} ({share:.0%} > {config.max_failed_share:.0%});"
                " nothing stored for the day",
                metadata={"failures": dg.MetadataValue.json(fetched.failures)},
            )
        store(fetched, scope)
        if fetched.failures:
            retry_later[day] = sorted(fetched.failures)
        context.log.info(f"{day}: {len(fetched.readings)} readings, {len(fetched.failures)} stations failed")

    # the second pass: a vendor fault rarely outlasts the whole run
    failed = {}
    for day, stations in retry_later.items():
        fetched = _fetch_day(weatherxm, stations, day, config.concurrency)
        store(fetched, stations)
        failed.update({f"{day} {station}": error for station, error in fetched.failures.items()})

    still_open = gaps.open_gaps(timescaledb, READINGS_STAGE, days[0], days[-1])
    open_stations = still_open.groupby(still_open["day"].astype(str))["key"].agg(list).to_dict()
    return dg.MaterializeResult(
        metadata={
            "readings_loaded": loaded,
            "stations": len(station_ids),
            "station_days_fetched": attempted,
            "station_days_retried": sum(len(stations) for stations in retry_later.values()),
            "station_days_failed": len(failed),
            "failures": dg.MetadataValue.json(dict(list(failed.items())[:50])),
            "open_gaps": len(still_open),
            "readings_outside_utc_day": dropped,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="readings_physical_ranges",
                passed=not any(out_of_range.values()),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={k: int(v) for k, v in out_of_range.items()},
            ),
            dg.AssetCheckResult(
                check_name="stations_answered",
                passed=still_open.empty,
                severity=dg.AssetCheckSeverity.WARN,
                description=None if still_open.empty else f"incomplete days: {', '.join(open_stations)}",
                metadata={
                    "answered_share": 1 - len(failed) / attempted if attempted else 1.0,
                    "open_gaps": len(still_open),
                    "gap_stations": dg.MetadataValue.json(open_stations),
                },
            ),
        ],
    )


# -- station days ----------------------------------------------------------------------------------


class DailyConfig(dg.Config):
    interval_minutes: int = Field(default=5, ge=1, description="observation slot length for coverage")
    min_coverage: float = Field(default=0.8, ge=0, le=1, description="coverage gate (reported in the check)")


@dg.asset(
    freshness_policy=NIGHTLY_FRESHNESS,
    group_name="weather",
    kinds={"postgres"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[weather_readings],
    check_specs=[
        dg.AssetCheckSpec(
            "station_day_coverage", asset="weather_daily", description="share of station days passing the coverage gate"
        )
    ],
)
def weather_daily(
    context: dg.AssetExecutionContext, config: DailyConfig, timescaledb: TimescaleDBResource
) -> dg.MaterializeResult:
    """Daily weather per station and UTC day (`weather_daily`): rain from the counter, temperatures, coverage, QoD."""
    window = context.partition_time_window
    readings = timescaledb.read_frame(
        "SELECT station_id, ts, temperature, humidity, precipitation_accumulated, pressure FROM weather_readings"
        " WHERE ts >= :start AND ts < :end",
        {"start": window.start, "end": window.end},
    )
    readings["ts"] = pd.to_datetime(readings["ts"], utc=True)
    daily = station_days(quality.mask_implausible(readings), interval_minutes=config.interval_minutes)
    health = timescaledb.read_frame(
        "SELECT station_id, day, qod FROM weather_station_health WHERE day >= :start AND day < :end",
        {"start": window.start.date(), "end": window.end.date()},
    )
    daily = daily.merge(health, on=["station_id", "day"], how="left")
    timescaledb.replace_time_window(
        "weather_daily",
        "day",
        window.start.date(),
        window.end.date(),
        daily,
        ["station_id", "day", "rain_mm", "tmax_c", "tmin_c", "tmean_c", "humidity_mean", "n_obs", "coverage", "qod"],
    )
    passing = float((daily["coverage"] >= config.min_coverage).mean()) if len(daily) else 0.0
    return dg.MaterializeResult(
        metadata={
            "station_days": len(daily),
            "rain_mm_mean": float(daily["rain_mm"].mean()) if len(daily) else 0.0,
            "coverage_passing_share": passing,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="station_day_coverage",
                passed=passing >= 0.5,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"passing_share": passing, "station_days": len(daily)},
            )
        ],
    )


# -- plot indices ----------------------------------------------------------------------------------


class IndicesConfig(dg.Config):
    min_coverage: float = Field(default=0.8, ge=0, le=1, description="station-day coverage gate")
    min_qod: float = Field(default=0.8, ge=0, le=1, description="station-day QoD gate (WeatherXM benchmark level)")
    max_stations: int = Field(default=5, ge=1, description="nearest passing stations averaged per plot day")
    min_complete_share: float = Field(
        default=0.9, ge=0, le=1, description="check: share of in-season plots with a complete index row"
    )


@dg.asset(
    freshness_policy=NIGHTLY_FRESHNESS,
    group_name="weather",
    kinds={"postgres"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        plots,
        weather_stations,
        dg.AssetDep(weather_daily, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(LOOKBACK_DAYS - 1))),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "plots_with_complete_indices",
            asset="weather_indices",
            description="share of in-season plots whose index row is complete",
        )
    ],
)
def weather_indices(
    context: dg.AssetExecutionContext, config: IndicesConfig, timescaledb: TimescaleDBResource
) -> dg.MaterializeResult:
    """Per active plot and day (`weather_indices`): plot weather, rain/heat indices, layer fractions and stresses."""
    days = partition_days(context)
    first = days[0] - dt.timedelta(days=LOOKBACK_DAYS - 1)
    plot_frame = timescaledb.read_frame(
        "SELECT plot_id, crop, sowing_date, season_end, policy_terms FROM plots WHERE active ORDER BY plot_id"
    )
    assignments = timescaledb.read_frame("SELECT plot_id, station_id, distance_km FROM plot_stations")
    daily = timescaledb.read_frame(
        "SELECT station_id, day, rain_mm, tmax_c, tmin_c, tmean_c, coverage, qod FROM weather_daily"
        " WHERE day >= :first AND day <= :last",
        {"first": first, "last": days[-1]},
    )
    rows = compute_weather_indices(
        plot_frame,
        assignments,
        daily,
        days,
        min_coverage=config.min_coverage,
        min_qod=config.min_qod,
        max_stations=config.max_stations,
    )
    timescaledb.replace_time_window("weather_indices", "day", days[0], days[-1] + dt.timedelta(days=1), rows)

    in_season = rows[rows["in_season"]]
    # complete = the stresses exist (a missing SPI, informational unless a layer uses it, does not count)
    complete = float(in_season["weather_stress"].notna().mean()) if len(in_season) else 1.0
    stressed = in_season[in_season["weather_stress"] >= 0.5]
    return dg.MaterializeResult(
        metadata={
            "rows": len(rows),
            "in_season_rows": len(in_season),
            "complete_share": complete,
            "max_weather_stress": float(in_season["weather_stress"].max()) if len(in_season) else 0.0,
            "high_stress_plot_days": len(stressed),
            "missing_reasons": dg.MetadataValue.json(in_season["missing_reason"].value_counts().head(10).to_dict()),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="plots_with_complete_indices",
                passed=complete >= config.min_complete_share,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"complete_share": complete},
            )
        ],
    )
