"""stress_trigger_sensor: weather_indices days with stressed plots become one imagery + assessment run per day."""

import datetime as dt

import dagster as dg
import pytest

from microcrop_assets.defs.damage.assets import damage_assessments
from microcrop_assets.defs.damage.jobs import stress_response_job
from microcrop_assets.defs.damage.schedules import damage_nightly
from microcrop_assets.defs.damage.sensors import stress_trigger_sensor
from microcrop_assets.defs.shared import daily_partitions
from microcrop_assets.resources.timescaledb import TimescaleDBResource

from .fixtures.damage import add_plot, add_weather

DAY = dt.date(2025, 6, 10)
RESOURCES = {"timescaledb": TimescaleDBResource(url="postgresql://unused")}  # never connected: definitions only


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def indices_materialized(instance, *days: dt.date) -> None:
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization("weather_indices", partition=day.isoformat()))


def tick(instance, db, cursor=None) -> dg.SensorResult:
    # the context manager tears the resources down after the tick, as the daemon does
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"timescaledb": db}) as context:
        return stress_trigger_sensor(context)


@pytest.mark.integration
def test_one_run_per_stressed_day_and_none_on_the_next_tick(damage_db, instance, monkeypatch):
    db = damage_db
    monkeypatch.setenv("STRESS_REASSESS_DAYS", "5")
    for plot_id in ("A", "B", "C", "D"):
        add_plot(db, plot_id)
    add_plot(db, "E", terms={"stress_trigger": "0.8"})
    add_weather(db, "A", DAY, 0.5)  # at the default 0.5 trigger
    add_weather(db, "B", DAY, 0.9)
    add_weather(db, "C", DAY, 0.49)  # below it
    add_weather(db, "D", DAY, 0.7)
    add_weather(db, "E", DAY, 0.7)  # below its policy's 0.8
    add_weather(db, "A", DAY + dt.timedelta(days=1), 0.2)  # a calm day: no run
    add_weather(db, "D", DAY - dt.timedelta(days=4), 0.7)  # D was assessed 4 days ago: within the 5 recent days
    dg.materialize([damage_assessments], resources={"timescaledb": db}, partition_key="2025-06-06")
    indices_materialized(instance, DAY, DAY + dt.timedelta(days=1))

    first = tick(instance, db)
    assert [r.partition_key for r in first.run_requests] == [DAY.isoformat()]
    request = first.run_requests[0]
    assert request.tags["microcrop/stressed_plots"] == "2"  # A and B
    assert request.run_key.startswith(f"stress-response-{DAY.isoformat()}-")
    assert stress_trigger_sensor.job_name == "stress_response_job"

    # the next tick sees no new materialization: nothing requested
    second = tick(instance, db, cursor=first.cursor)
    assert not second.run_requests
    # re-reading the same events (a lost cursor) gives the same run key, which Dagster runs once
    assert tick(instance, db).run_requests[0].run_key == request.run_key


@pytest.mark.integration
def test_a_day_gaining_stressed_plots_gets_a_new_run_key_and_assessed_plots_drop_out(damage_db, instance):
    db = damage_db
    add_plot(db, "A")
    add_plot(db, "B")
    add_weather(db, "A", DAY, 0.6)
    add_weather(db, "B", DAY, 0.1)
    indices_materialized(instance, DAY)
    first = tick(instance, db)
    add_weather(db, "B", DAY, 0.6)  # the day was recomputed (intraday refresh) and B is now stressed
    indices_materialized(instance, DAY)
    second = tick(instance, db, cursor=first.cursor)
    assert second.run_requests[0].tags["microcrop/stressed_plots"] == "2"
    assert second.run_requests[0].run_key != first.run_requests[0].run_key

    dg.materialize([damage_assessments], resources={"timescaledb": db}, partition_key=DAY.isoformat())
    indices_materialized(instance, DAY)
    third = tick(instance, db, cursor=second.cursor)
    assert not third.run_requests and third.cursor != second.cursor  # both assessed: nothing left to ask for


@pytest.mark.unit
def test_stress_response_job_selects_imagery_orders_once_merged():
    """Without the imagery domain the job assesses damage; with a satellite_orders asset it orders imagery too."""

    @dg.asset(name="satellite_orders", partitions_def=daily_partitions)
    def satellite_orders_stand_in() -> None:
        return None

    common = {"jobs": [stress_response_job], "sensors": [stress_trigger_sensor], "resources": RESOURCES}
    alone = dg.Definitions(assets=[damage_assessments], **common)
    merged = dg.Definitions(assets=[damage_assessments, satellite_orders_stand_in], **common)

    def keys(defs):
        return set(defs.resolve_job_def("stress_response_job").asset_layer.executable_asset_keys)

    assert keys(alone) == {dg.AssetKey("damage_assessments")}
    assert keys(merged) == {dg.AssetKey("damage_assessments"), dg.AssetKey("satellite_orders")}


@pytest.mark.unit
def test_nightly_assessment_runs_yesterday_once():
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 6, 11, 1, 30, tzinfo=dt.UTC))
    request = damage_nightly(context)
    assert request.partition_key == "2025-06-10" and request.run_key == "damage-nightly-2025-06-10"
