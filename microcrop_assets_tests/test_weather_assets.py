"""The weather chain materialized against the sandbox over real HTTP, PostgreSQL and Redis."""

import datetime as dt
import math

import dagster as dg
import pytest

from microcrop_assets.defs.weather.assets import weather_daily, weather_indices, weather_readings
from microcrop_assets.defs.weather.schedules import weather_nightly, weather_readings_intraday
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox
from microcrop_assets.sandbox.scenario import SCENARIOS_DIR
from microcrop_assets_tests.fixtures.weather import SOWING_DAY, chain_resources, registered

pytestmark = pytest.mark.integration

DROUGHT = SCENARIOS_DIR / "drought_kakamega.json"
FIRST, LAST = SOWING_DAY, dt.date(2025, 7, 31)
CLOCK = dt.datetime(2025, 8, 5, 12, tzinfo=dt.UTC)


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


def test_drought_raises_drought_stress_for_exactly_the_plots_inside_its_area(empty_weather, late_sown_plots, tmp_path):
    results = {}
    for name, scenario in (("baseline", None), ("drought", DROUGHT)):
        with running_sandbox(scenario=scenario, clock=ManualClock(CLOCK)) as sandbox:
            run_chain(chain_resources(sandbox, empty_weather, tmp_path), late_sown_plots, FIRST, LAST)
        results[name] = stresses(empty_weather, LAST)
    assert len(results["drought"]) == 12 and not any(math.isnan(v) for v in results["drought"].values())
    raised = {p for p in results["drought"] if results["drought"][p] > results["baseline"][p]}
    assert raised == {f"KE-KAK-{i:03d}" for i in range(1, 7)}, results
    for plot in results["drought"]:
        if plot.startswith("KE-KIS"):
            assert results["drought"][plot] == results["baseline"][plot]

    # the chain's tables are consistent with each other
    rows = empty_weather.read_frame(
        "SELECT count(*) AS n, count(DISTINCT station_id) AS stations, min(ts) AS first, max(ts) AS last"
        " FROM weather_readings"
    ).iloc[0]
    assert rows["n"] > 0 and rows["first"].date() == FIRST and rows["last"].date() == LAST
    daily = empty_weather.read_frame("SELECT count(*) AS n FROM weather_daily").iloc[0]["n"]
    assert daily == rows["stations"] * ((LAST - FIRST).days + 1)
    index_row = empty_weather.read_frame(
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


def history_path(station_id: str) -> str:
    return f"/weatherxm/api/v1/stations/{station_id}/history"


def day_content(db, day: dt.date) -> str:
    """An ordered hash of every stored row of the day: readings, station health and vendor gaps."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return db.read_frame(
        "SELECT md5(string_agg(r::text, E'\\n' ORDER BY r.ts, r.station_id)) AS readings,"
        " (SELECT md5(string_agg(h::text, E'\\n' ORDER BY h.station_id)) FROM weather_station_health h"
        "  WHERE h.day = :day) AS health"
        " FROM weather_readings r WHERE r.ts >= :start AND r.ts < :end",
        {"day": day, "start": start, "end": start + dt.timedelta(days=1)},
    ).to_json()


def open_gap_keys(db, day: dt.date) -> dict[str, str]:
    frame = db.read_frame(
        "SELECT key, reason FROM vendor_gaps WHERE stage = 'weather_readings' AND day = :d AND resolved_at IS NULL",
        {"d": day},
    )
    return dict(zip(frame["key"], frame["reason"], strict=True))


def events_text(result) -> str:
    return "".join(str(event) for event in result.all_events)


def test_a_station_answering_404_is_listed_skipped_and_left_as_a_gap(empty_weather, late_sown_plots, tmp_path):
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(chain_resources(sandbox, empty_weather, tmp_path), late_sown_plots)
        stations = empty_weather.read_frame("SELECT DISTINCT station_id FROM plot_stations ORDER BY 1")["station_id"]
        gone = stations.iloc[1]
        sandbox.set_faults(fail_next=1000, fail_next_status=404, paths=[history_path(gone)])
        result = dg.materialize([weather_readings], resources=resources, partition_key=LAST.isoformat())
        key = sandbox.credentials.weatherxm_api_key

    assert result.success
    metadata = result.asset_materializations_for_node("weather_readings")[0].metadata
    failures = metadata["failures"].value
    assert metadata["station_days_failed"].value == 1 and list(failures) == [f"{LAST} {gone}"]
    assert failures[f"{LAST} {gone}"].startswith("VendorNotFound") and "HTTP 404" in failures[f"{LAST} {gone}"]
    stored = set(empty_weather.read_frame("SELECT DISTINCT station_id FROM weather_readings")["station_id"])
    assert stored == set(stations) - {gone}
    assert list(open_gap_keys(empty_weather, LAST)) == [gone]
    answered = [c for c in result.get_asset_check_evaluations() if c.check_name == "stations_answered"][0]
    assert not answered.passed and answered.metadata["gap_stations"].value == {LAST.isoformat(): [gone]}
    assert key not in events_text(result)


@pytest.mark.parametrize("failing", [2, 3], ids=["exactly_at_the_share_stores", "just_above_the_share_fails"])
def test_failed_share_threshold_at_its_boundary(empty_weather, late_sown_plots, tmp_path, failing):
    day = LAST
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(chain_resources(sandbox, empty_weather, tmp_path), late_sown_plots)
        stations = empty_weather.read_frame("SELECT DISTINCT station_id FROM plot_stations ORDER BY 1")["station_id"]
        assert dg.materialize([weather_readings], resources=resources, partition_key=day.isoformat()).success
        before = day_content(empty_weather, day)
        broken = list(stations.iloc[:failing])
        sandbox.set_faults(share_5xx=1.0, paths=[history_path(s) for s in broken])
        threshold = {"ops": {"weather_readings": {"config": {"max_failed_share": 2 / len(stations)}}}}
        result = dg.materialize(
            [weather_readings],
            resources=resources,
            partition_key=day.isoformat(),
            run_config=threshold,
            raise_on_error=False,
        )
        key = sandbox.credentials.weatherxm_api_key

    assert result.success is (failing == 2)
    gaps = open_gap_keys(empty_weather, day)
    if failing == 2:  # stored: the failing stations keep their rows and are recorded as gaps
        assert sorted(gaps) == sorted(broken)
    else:  # the whole day is left exactly as it was, and every station of it is a gap to refetch
        assert day_content(empty_weather, day) == before
        assert sorted(gaps) == sorted(stations) and all(gaps[s].startswith("VendorUnavailable") for s in broken)
        assert gaps[stations.iloc[-1]] == f"day not stored: 3 of {len(stations)} stations failed"
        failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
        assert f"3 of {len(stations)} stations failed" in str(failure)
    # the failed run's errors (URLs, vendor messages) never carry the API key
    assert key not in events_text(result) and "VendorUnavailable" in events_text(result)


def test_rerunning_a_day_replaces_it(empty_weather, late_sown_plots, tmp_path):
    day = LAST.isoformat()
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(chain_resources(sandbox, empty_weather, tmp_path), late_sown_plots)
        counts = []
        for _ in range(2):
            assert dg.materialize([weather_readings, weather_daily], resources=resources, partition_key=day).success
            counts.append(
                empty_weather.read_frame(
                    "SELECT (SELECT count(*) FROM weather_readings) AS r, (SELECT count(*) FROM weather_daily) AS d"
                )
                .iloc[0]
                .tolist()
            )
    assert counts[0] == counts[1] and counts[0][0] > 0


def test_physical_range_check_passes_on_sandbox_readings(empty_weather, late_sown_plots, tmp_path):
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = registered(chain_resources(sandbox, empty_weather, tmp_path), late_sown_plots)
        result = dg.materialize([weather_readings], resources=resources, partition_key=LAST.isoformat())
    check = [c for c in result.get_asset_check_evaluations() if c.check_name == "readings_physical_ranges"][0]
    assert check.passed and check.metadata["temperature"].value == 0


def test_schedules_target_today_and_yesterday(empty_weather):
    moment = dt.datetime(2025, 7, 31, 0, 15, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        today = weather_readings_intraday(dg.build_schedule_context(instance=instance, scheduled_execution_time=moment))
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=moment, resources={"timescaledb": empty_weather}
        ) as context:
            nightly = weather_nightly(context)
    assert today.partition_key == "2025-07-31"
    assert nightly.partition_key == "2025-07-30" and nightly.run_key == "weather-nightly-2025-07-30"
