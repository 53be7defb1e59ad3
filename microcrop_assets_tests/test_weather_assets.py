"""The weather chain materialized against the sandbox over real HTTP, PostgreSQL and Redis."""

import datetime as dt
import json
import math
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.plots.assets import DEMO_PLOTS, plots
from microcrop_assets.resources.minio import ObjectStoreResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.sandbox.testing import ManualClock, running_sandbox
from microcrop_assets.weather.assets import weather_daily, weather_indices, weather_readings, weather_stations
from microcrop_assets.weather.schedules import weather_nightly, weather_readings_intraday

from .fixtures_clients import weatherxm

DROUGHT = DEMO_PLOTS.parent.parent / "sandbox" / "scenarios" / "drought_kakamega.json"
FIRST, LAST = dt.date(2025, 7, 10), dt.date(2025, 7, 31)
CLOCK = dt.datetime(2025, 8, 5, 12, tzinfo=dt.UTC)
WEATHER_TABLES = (
    "weather_indices",
    "weather_daily",
    "weather_station_health",
    "weather_readings",
    "plot_stations",
    "weather_stations",
)


@pytest.fixture
def late_sown_plots(tmp_path):
    """The demo plots sown on FIRST, so a short range holds each plot's whole index window."""
    document = json.loads(DEMO_PLOTS.read_text())
    for feature in document["features"]:
        feature["properties"].update(sowing_date=FIRST.isoformat(), season_end="2025-11-30")
    path = tmp_path / "plots.geojson"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.fixture
def empty_store(db):
    with db.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(WEATHER_TABLES)}, plots CASCADE"))
    return db


def resources_for(sandbox, db, tmp_path, **client):
    redis = RedisResource(key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    return {
        "timescaledb": db,
        "minio": ObjectStoreResource(local_root=str(tmp_path / "objects")),
        "redis": redis,
        "weatherxm": weatherxm(sandbox, redis, **client),
    }


def registered(resources: dict, plots_source: str) -> dict:
    """Plots loaded and stations assigned: what every weather partition starts from."""
    setup = dg.materialize(
        [plots, weather_stations],
        resources=resources,
        run_config={"ops": {"plots": {"config": {"source": plots_source}}}},
    )
    assert setup.success
    return resources


def run_chain(resources, plots_source: str, first: dt.date, last: dt.date) -> None:
    registered(resources, plots_source)
    window = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
    daily = dg.materialize([weather_readings, weather_daily], resources=resources, tags=window)
    assert daily.success
    indices = dg.materialize([weather_indices], resources=resources, partition_key=last.isoformat())
    assert indices.success


def stresses(db, day: dt.date) -> dict[str, float]:
    frame = db.read_frame("SELECT plot_id, drought_stress FROM weather_indices WHERE day = :d", {"d": day})
    return dict(zip(frame["plot_id"], frame["drought_stress"], strict=True))


def test_drought_raises_drought_stress_for_exactly_the_plots_inside_its_area(empty_store, late_sown_plots, tmp_path):
    results = {}
    for name, scenario in (("baseline", None), ("drought", DROUGHT)):
        with running_sandbox(scenario=scenario, clock=ManualClock(CLOCK)) as sandbox:
            run_chain(resources_for(sandbox, empty_store, tmp_path), late_sown_plots, FIRST, LAST)
        results[name] = stresses(empty_store, LAST)
    assert len(results["drought"]) == 12 and not any(math.isnan(v) for v in results["drought"].values())
    raised = {p for p in results["drought"] if results["drought"][p] > results["baseline"][p]}
    assert raised == {f"KE-KAK-{i:03d}" for i in range(1, 7)}, results
    for plot in results["drought"]:
        if plot.startswith("KE-KIS"):
            assert results["drought"][plot] == results["baseline"][plot]

    # the chain's tables are consistent with each other
    rows = empty_store.read_frame(
        "SELECT count(*) AS n, count(DISTINCT station_id) AS stations, min(ts) AS first, max(ts) AS last"
        " FROM weather_readings"
    ).iloc[0]
    assert rows["n"] > 0 and rows["first"].date() == FIRST and rows["last"].date() == LAST
    daily = empty_store.read_frame("SELECT count(*) AS n FROM weather_daily").iloc[0]["n"]
    assert daily == rows["stations"] * ((LAST - FIRST).days + 1)
    index_row = empty_store.read_frame(
        "SELECT * FROM weather_indices WHERE plot_id = 'KE-KAK-003' AND day = :d", {"d": LAST}
    ).iloc[0]
    assert index_row["in_season"] and index_row["window_days"] == 22 and index_row["n_stations"] >= 1
    assert len(index_row["stations"]) == index_row["n_stations"] == len(index_row["weights"])
    assert sum(index_row["weights"]) == pytest.approx(1.0, abs=1e-5)
    assert set(index_row["layers"]) == {
        "drought_rain",
        "drought_dry_spell",
        "flood_daily",
        "flood_3day",
        "heat_tmax",
        "heat_degree_days",
    }


def test_station_failures_are_reported_skipped_or_fail_the_day(empty_store, late_sown_plots, tmp_path):
    day = LAST.isoformat()
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(resources_for(sandbox, empty_store, tmp_path), late_sown_plots)
        stations = empty_store.read_frame("SELECT DISTINCT station_id FROM plot_stations ORDER BY 1")["station_id"]
        first = dg.materialize([weather_readings], resources=resources, partition_key=day)
        before = empty_store.read_frame("SELECT count(*) AS n FROM weather_readings")["n"].iloc[0]

        broken = stations.iloc[0]
        sandbox.set_faults(share_5xx=1.0, paths=[f"/weatherxm/api/v1/stations/{broken}/history"])
        skipped = dg.materialize([weather_readings], resources=resources, partition_key=day)
        metadata = skipped.asset_materializations_for_node("weather_readings")[0].metadata
        assert skipped.success and metadata["station_days_failed"].value == 1
        assert broken in json.dumps(metadata["failures"].value) and "VendorUnavailable" in json.dumps(
            metadata["failures"].value
        )
        kept = empty_store.read_frame("SELECT count(DISTINCT station_id) AS n FROM weather_readings")["n"].iloc[0]
        assert kept == len(stations) - 1
        answered = [c for c in skipped.get_asset_check_evaluations() if c.check_name == "stations_answered"][0]
        assert not answered.passed
        # the failing calls' errors reached metadata and logs without the API key
        key = sandbox.credentials.weatherxm_api_key
        assert key not in "".join(str(event) for event in skipped.all_events)

        # most stations failing: the run fails and the day keeps what it had
        sandbox.clear_faults()
        assert dg.materialize([weather_readings], resources=resources, partition_key=day).success
        sandbox.set_faults(share_5xx=1.0, paths=["/weatherxm/api/v1/stations/"])
        failed = dg.materialize([weather_readings], resources=resources, partition_key=day, raise_on_error=False)
        assert not failed.success
        after = empty_store.read_frame("SELECT count(*) AS n FROM weather_readings")["n"].iloc[0]
        assert after == before
    assert first.success


def test_rerunning_a_day_replaces_it(empty_store, late_sown_plots, tmp_path):
    day = LAST.isoformat()
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(resources_for(sandbox, empty_store, tmp_path), late_sown_plots)
        counts = []
        for _ in range(2):
            assert dg.materialize([weather_readings, weather_daily], resources=resources, partition_key=day).success
            counts.append(
                empty_store.read_frame(
                    "SELECT (SELECT count(*) FROM weather_readings) AS r, (SELECT count(*) FROM weather_daily) AS d"
                )
                .iloc[0]
                .tolist()
            )
    assert counts[0] == counts[1] and counts[0][0] > 0


def test_physical_range_check_passes_on_sandbox_readings(empty_store, late_sown_plots, tmp_path):
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(resources_for(sandbox, empty_store, tmp_path), late_sown_plots)
        result = dg.materialize([weather_readings], resources=resources, partition_key=LAST.isoformat())
    check = [c for c in result.get_asset_check_evaluations() if c.check_name == "readings_physical_ranges"][0]
    assert check.passed and check.metadata["temperature"].value == 0


def test_schedules_target_today_and_yesterday():
    moment = dt.datetime(2025, 7, 31, 0, 15, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        today = weather_readings_intraday(dg.build_schedule_context(instance=instance, scheduled_execution_time=moment))
        nightly = weather_nightly(dg.build_schedule_context(instance=instance, scheduled_execution_time=moment))
    assert today.partition_key == "2025-07-31"
    assert nightly.partition_key == "2025-07-30" and nightly.run_key == "weather-nightly-2025-07-30"
