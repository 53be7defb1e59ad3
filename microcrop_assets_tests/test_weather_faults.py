"""Vendor faults never change results: the weather chain against a faulty sandbox (plus the nightly
gap refetch when a fault outlasted every retry) stores exactly what it stores against a clean one."""

import datetime as dt
import json
import logging

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.plots.assets import DEMO_PLOTS, plots
from microcrop_assets.defs.weather import gaps
from microcrop_assets.defs.weather.assets import (
    READINGS_STAGE,
    weather_daily,
    weather_indices,
    weather_readings,
    weather_stations,
)
from microcrop_assets.defs.weather.schedules import weather_nightly
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

from .fixtures.clients import FAST, retries
from .fixtures.weather import chain_resources, registered

pytestmark = pytest.mark.integration

FIRST, LAST = dt.date(2025, 7, 29), dt.date(2025, 7, 31)
CLOCK = dt.datetime(2025, 8, 5, 12, tzinfo=dt.UTC)
NIGHTLY = dt.datetime(2025, 8, 1, 0, 15, tzinfo=dt.UTC)  # the nightly run after LAST
PLOTS = ("KE-KAK-001", "KE-KAK-004", "KE-KIS-001")
# the fault mix: 10 % 5xx, 5 % 429 (Retry-After 1 s), 2 % malformed JSON, 20 ms latency
VENDOR_FAULTS = {"share_5xx": 0.10, "share_429": 0.05, "retry_after_s": 1, "share_malformed": 0.02, "latency_ms": 20}
COMPARED = {  # table -> the order that makes its rows comparable one by one
    "weather_readings": "ts, station_id",
    "weather_daily": "day, station_id",
    "weather_indices": "day, plot_id",
}
TRUNCATED = "vendor_gaps, weather_indices, weather_daily, weather_station_health, weather_readings, plot_stations,"
TRUNCATED += " weather_stations, plots"


@pytest.fixture(scope="module")
def plots_file(tmp_path_factory) -> str:
    """Three demo plots in two regions, sown on FIRST so the short range is their whole index window."""
    document = json.loads(DEMO_PLOTS.read_text())
    document["features"] = [f for f in document["features"] if f["properties"]["plot_id"] in PLOTS]
    for feature in document["features"]:
        feature["properties"].update(sowing_date=FIRST.isoformat(), season_end="2025-11-30")
    path = tmp_path_factory.mktemp("plots") / "plots.geojson"
    path.write_text(json.dumps(document))
    return str(path)


def emptied(db) -> None:
    with db.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {TRUNCATED} CASCADE"))


def register(resources: dict, plots_source: str) -> list[str]:
    """Plots loaded and stations assigned, as every weather partition starts; the assigned station ids."""
    registered(resources, plots_source)
    query = "SELECT DISTINCT station_id FROM plot_stations ORDER BY station_id"
    return resources["timescaledb"].read_frame(query)["station_id"].tolist()


def run_chain(resources: dict, plots_source: str, first: dt.date = FIRST) -> dg.ExecuteInProcessResult:
    """Plots, stations, then readings + station days + indices over first..LAST in one run."""
    register(resources, plots_source)
    window = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": LAST.isoformat(),
    }
    result = dg.materialize([weather_readings, weather_daily, weather_indices], resources=resources, tags=window)
    assert result.success
    return result


def nightly_request(db) -> dg.RunRequest:
    with dg.build_schedule_context(scheduled_execution_time=NIGHTLY, resources={"timescaledb": db}) as context:
        return weather_nightly(context)


def run_nightly(resources: dict) -> dg.ExecuteInProcessResult:
    """What the nightly schedule asks for, executed by the schedule's own job."""
    request = nightly_request(resources["timescaledb"])
    defs = dg.Definitions(
        assets=[plots, weather_stations, weather_readings, weather_daily, weather_indices],
        jobs=[weather_nightly.job],
        resources=resources,
    )
    result = defs.resolve_job_def(weather_nightly.job.name).execute_in_process(
        tags=request.tags, partition_key=request.partition_key, run_config=request.run_config
    )
    assert result.success
    return result


def table_rows(db) -> dict[str, list[str]]:
    """Every row of the compared tables as PostgreSQL prints it (float8 text is exact), in key order."""
    return {
        table: db.read_frame(f"SELECT t::text AS row FROM {table} t ORDER BY {order}")["row"].tolist()
        for table, order in COMPARED.items()
    }


def assert_same_rows(actual: dict[str, list[str]], expected: dict[str, list[str]]) -> None:
    for table, rows in expected.items():
        assert len(rows) > 0, f"the clean run stored no {table}"
        differing = [(a, e) for a, e in zip(actual[table], rows, strict=False) if a != e]
        assert len(actual[table]) == len(rows) and not differing, (
            f"{table}: {len(actual[table])} rows vs {len(rows)} fault-free; first differences {differing[:2]}"
        )


def open_gaps(db) -> dict[str, list[str]]:
    frame = gaps.open_gaps(db, READINGS_STAGE, FIRST, LAST)
    return {day.isoformat(): sorted(frame.loc[frame["day"] == day, "key"]) for day in sorted(set(frame["day"]))}


def check(result, name: str) -> dg.AssetCheckEvaluation:
    return [c for c in result.get_asset_check_evaluations() if c.check_name == name][0]


@pytest.fixture(scope="module")
def fault_free(db, plots_file, tmp_path_factory) -> dict[str, list[str]]:
    emptied(db)
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        run_chain(chain_resources(sandbox, db, tmp_path_factory.mktemp("clean")), plots_file)
    assert open_gaps(db) == {}
    return table_rows(db)


def test_vendor_faults_leave_the_same_tables(db, plots_file, fault_free, tmp_path, caplog):
    emptied(db)
    with (
        running_sandbox(clock=ManualClock(CLOCK), faults=VENDOR_FAULTS) as sandbox,
        caplog.at_level(logging.WARNING, logger="microcrop.vendors"),
    ):
        resources = chain_resources(sandbox, db, tmp_path)
        result = run_chain(resources, plots_file)
        if open_gaps(db):  # a fault outlasted every retry and the second pass: the nightly run fills it
            run_nightly(resources)
    metadata = result.asset_materializations_for_node("weather_readings")[0].metadata
    assert metadata["station_days_fetched"].value == 3 * metadata["stations"].value
    retried = " ".join(r.getMessage() for r in retries(caplog.records))
    assert "HTTP 5" in retried and "not valid JSON" in retried  # the faults were there and were retried
    assert open_gaps(db) == {}
    assert_same_rows(table_rows(db), fault_free)


def test_a_fault_outlasting_every_retry_leaves_a_gap_the_nightly_run_fills(db, plots_file, fault_free, tmp_path):
    emptied(db)
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = chain_resources(sandbox, db, tmp_path)
        stations = register(resources, plots_file)
        broken = stations[0]  # answers 503 to every history call until the vendor recovers
        sandbox.set_faults(share_5xx=1.0, paths=[f"/weatherxm/api/v1/stations/{broken}/history"])
        result = run_chain(resources, plots_file)

        every_day = {d.isoformat(): [broken] for d in (FIRST, FIRST + dt.timedelta(days=1), LAST)}
        assert open_gaps(db) == every_day
        answered = check(result, "stations_answered")
        assert not answered.passed and answered.metadata["gap_stations"].value == every_day
        metadata = result.asset_materializations_for_node("weather_readings")[0].metadata
        assert metadata["station_days_retried"].value == 3 and metadata["station_days_failed"].value == 3
        recorded = db.read_frame("SELECT attempts, reason FROM vendor_gaps")
        assert (recorded["attempts"] == 2).all() and recorded["reason"].str.startswith("VendorUnavailable").all()
        assert table_rows(db)["weather_readings"] != fault_free["weather_readings"]

        # the nightly run while the fault lasts: the gaps stay open, one more attempt each
        request = nightly_request(db)
        assert request.tags["dagster/asset_partition_range_start"] == FIRST.isoformat()
        assert request.tags["dagster/asset_partition_range_end"] == LAST.isoformat()
        assert request.run_config["ops"]["weather_readings"]["config"]["refetch_gaps"] is True
        run_nightly(resources)
        assert open_gaps(db) == every_day
        assert (db.read_frame("SELECT attempts FROM vendor_gaps")["attempts"] == 4).all()
        assert nightly_request(db).run_key != request.run_key  # the attempts moved on: the next night re-runs

        # the vendor recovers: the next nightly run fetches only the gap stations of the earlier days
        sandbox.clear_faults()
        refetch = run_nightly(resources)
    metadata = refetch.asset_materializations_for_node("weather_readings")[0].metadata
    assert metadata["station_days_fetched"].value == 2 + len(stations)  # two gap days, then LAST whole
    assert check(refetch, "stations_answered").passed
    assert open_gaps(db) == {}
    resolved = db.read_frame("SELECT attempts FROM vendor_gaps WHERE resolved_at IS NOT NULL")
    assert len(resolved) == 3
    assert_same_rows(table_rows(db), fault_free)
    assert nightly_request(db).run_key == "weather-nightly-2025-07-31"


def test_the_second_pass_fills_a_station_day_that_failed_every_retry(db, plots_file, tmp_path):
    emptied(db)
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = chain_resources(sandbox, db, tmp_path)
        broken = register(resources, plots_file)[0]
        attempts = resources["weatherxm"].max_attempts
        sandbox.set_faults(fail_next=attempts, paths=[f"/weatherxm/api/v1/stations/{broken}/history"])
        result = dg.materialize([weather_readings], resources=resources, partition_key=LAST.isoformat())
    metadata = result.asset_materializations_for_node("weather_readings")[0].metadata
    assert metadata["station_days_retried"].value == 1 and metadata["station_days_failed"].value == 0
    assert check(result, "stations_answered").passed
    gap = db.read_frame("SELECT key, attempts, resolved_at FROM vendor_gaps").iloc[0]
    assert gap["key"] == broken and gap["attempts"] == 1 and gap["resolved_at"] is not None
    stored = db.read_frame("SELECT count(*) AS n FROM weather_readings WHERE station_id = :s", {"s": broken})["n"].iloc[
        0
    ]
    assert stored > 0


def test_a_day_whose_run_failed_is_refetched_whole_by_the_nightly_run(db, plots_file, fault_free, tmp_path):
    emptied(db)
    with running_sandbox(clock=ManualClock(CLOCK)) as sandbox:
        resources = chain_resources(sandbox, db, tmp_path)
        stations = register(resources, plots_file)
        # an outage: most history calls of FIRST fail all their attempts, so the day's run fails
        outage = (len(stations) - 2) * FAST["max_attempts"]
        sandbox.set_faults(fail_next=outage, paths=["/weatherxm/api/v1/stations/"])
        failed = dg.materialize(
            [weather_readings], resources=resources, partition_key=FIRST.isoformat(), raise_on_error=False
        )
        # nothing of the day was stored, so every station is a gap, also those that answered
        assert not failed.success and open_gaps(db) == {FIRST.isoformat(): stations}
        reasons = db.read_frame("SELECT reason FROM vendor_gaps")["reason"]
        assert reasons.str.startswith("day not stored").any() and reasons.str.startswith("VendorUnavailable").any()
        run_chain(resources, plots_file, first=FIRST + dt.timedelta(days=1))  # the vendor is back
        refetch = run_nightly(resources)
    metadata = refetch.asset_materializations_for_node("weather_readings")[0].metadata
    assert metadata["station_days_fetched"].value == 2 * len(stations)  # FIRST whole again, LAST whole
    assert open_gaps(db) == {}
    assert_same_rows(table_rows(db), fault_free)


def test_nightly_refetches_only_gaps_of_the_last_n_days(db, monkeypatch):
    emptied(db)
    yesterday = NIGHTLY.date() - dt.timedelta(days=1)
    at = dt.datetime(2025, 8, 1, tzinfo=dt.UTC)
    with db.begin() as conn:
        for back, station in ((3, "st-a"), (3, "st-b"), (9, "st-old")):
            day = yesterday - dt.timedelta(days=back)
            gaps.record_gaps(conn, READINGS_STAGE, "weatherxm", day, {station: "VendorUnavailable: HTTP 503"}, at)
    request = nightly_request(db)
    assert request.tags["dagster/asset_partition_range_start"] == "2025-07-28"
    assert request.run_key == "weather-nightly-2025-07-31-gaps-from-2025-07-28-2-2"
    monkeypatch.setenv("WEATHER_GAP_REFETCH_DAYS", "10")
    assert nightly_request(db).tags["dagster/asset_partition_range_start"] == "2025-07-22"
    monkeypatch.setenv("WEATHER_GAP_REFETCH_DAYS", "3")  # the 3 days up to yesterday hold no gap
    plain = nightly_request(db)
    assert (
        plain.partition_key == "2025-07-31" and plain.run_key == "weather-nightly-2025-07-31" and not plain.run_config
    )
