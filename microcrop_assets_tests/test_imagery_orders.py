"""satellite_orders against the Spexi sandbox, PostgreSQL and Redis: who is ordered, once, and retries."""

import datetime as dt
import threading

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from microcrop_assets.imagery.assets import satellite_orders
from microcrop_assets.imagery.orders import plan_orders
from microcrop_assets.sandbox.testing import ManualClock, running_sandbox

from .fixtures_orders import empty_imagery, imagery_resources, order_book, set_stress, vendor_orders

DAY = dt.date(2025, 7, 20)
CLOCK = dt.datetime(2025, 8, 1, 12, tzinfo=dt.UTC)
KAKAMEGA = [f"KE-KAK-{i:03d}" for i in range(1, 7)]
KISUMU = [f"KE-KIS-{i:03d}" for i in range(1, 7)]
# the Kakamega plots over the default stress_trigger (0.5), the Kisumu plots under it
STRESS = {**dict.fromkeys(KAKAMEGA, 0.8), **dict.fromkeys(KISUMU, 0.1)}


@pytest.fixture
def book(db):
    empty_imagery(db)
    return db


@pytest.fixture(scope="module")
def instant_sandbox():
    """Orders complete at once, so Spexi's public image search shows every order placed."""
    with running_sandbox(clock=ManualClock(CLOCK), order_delay_s=0) as running:
        yield running


def order(resources, day: dt.date, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [satellite_orders],
        resources=resources,
        partition_key=day.isoformat(),
        run_config={"ops": {"satellite_orders": {"config": config}}},
        raise_on_error=False,
    )


def test_plan_orders_stressed_plots_routine_cadence_and_retries():
    plots = pd.DataFrame(
        {
            "plot_id": ["A", "B", "C", "D", "E"],
            "sowing_date": [dt.date(2025, 3, 1)] * 4 + [dt.date(2025, 8, 1)],  # E not sown yet
            "season_end": [dt.date(2025, 9, 30)] * 5,
            "stress_trigger": [0.5, 0.9, 0.5, 0.5, 0.5],
        }
    )
    stress = pd.DataFrame({"plot_id": ["A", "B", "C", "D", "E"], "weather_stress": [0.5, 0.8, 0.1, 0.2, 0.9]})
    history = pd.DataFrame(
        {
            "plot_id": ["B", "C", "D"],
            "requested_day": [DAY - dt.timedelta(days=3), DAY - dt.timedelta(days=20), DAY - dt.timedelta(days=1)],
            "status": ["completed", "completed", "placement_failed"],
            "reason": ["routine", "routine", "stress"],
        }
    )
    plan = plan_orders(plots, stress, history, DAY, routine_every_days=14, retry_days=3).set_index("plot_id")
    # A: at its trigger (>=); B: under its own higher trigger and imaged 3 days ago; C: routine is due;
    # D: failed placement yesterday, retried for its original reason; E: out of season
    assert plan["reason"].to_dict() == {"A": "stress", "C": "routine", "D": "stress"}
    assert plan.loc["A", "priority"] == "high" and plan.loc["C", "priority"] == "normal"


def test_stressed_plots_are_ordered_once_inside_the_window(book, instant_sandbox, tmp_path):
    resources = imagery_resources(instant_sandbox, book, tmp_path)
    set_stress(book, DAY, STRESS)
    first = order(resources, DAY)
    assert first.success
    orders = order_book(book)
    assert len(orders) == 12 and orders["order_id"].notna().all() and orders["order_id"].is_unique
    by_plot = orders.set_index("plot_id")
    assert (by_plot.loc[KAKAMEGA, "reason"] == "stress").all() and (by_plot.loc[KAKAMEGA, "priority"] == "high").all()
    assert (by_plot.loc[KISUMU, "reason"] == "routine").all()
    assert (orders["capture_date"] == DAY + dt.timedelta(days=1)).all()
    assert [h["status"] for h in by_plot.loc["KE-KAK-001", "status_history"]] == ["placing", "pending"]

    # the same day again, and the next days inside the 5-day window: nothing new is ordered
    assert order(resources, DAY).success
    for later in (1, 4):
        set_stress(book, DAY + dt.timedelta(days=later), STRESS)
        result = order(resources, DAY + dt.timedelta(days=later))
        outcomes = result.asset_materializations_for_node("satellite_orders")[0].metadata["outcomes"].value
        assert outcomes == {"window_held": 6}, outcomes
    assert len(order_book(book)) == 12
    assert (vendor_orders(instant_sandbox, DAY + dt.timedelta(days=1)) == 1).all()

    # after the window a still-stressed plot is ordered again; routine plots wait for their cadence
    set_stress(book, DAY + dt.timedelta(days=5), STRESS)
    assert order(resources, DAY + dt.timedelta(days=5)).success
    again = order_book(book)
    assert len(again) == 18 and set(again.loc[again["requested_day"] == DAY + dt.timedelta(days=5), "plot_id"]) == set(
        KAKAMEGA
    )


def test_two_concurrent_runs_place_each_order_once(book, instant_sandbox, tmp_path):
    day = DAY + dt.timedelta(days=8)  # a capture day no other test of the module orders for
    set_stress(book, day, STRESS)
    barrier = threading.Barrier(2)
    results = []

    def run():
        resources = imagery_resources(instant_sandbox, book, tmp_path)  # its own clients, same Redis and DB
        barrier.wait()
        results.append(order(resources, day, concurrency=6))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result.success for result in results)
    placed = sum(r.asset_materializations_for_node("satellite_orders")[0].metadata["placed"].value for r in results)
    assert placed == 12
    orders = order_book(book)
    assert len(orders) == 12 and orders["plot_id"].is_unique
    spexi_view = vendor_orders(instant_sandbox, day + dt.timedelta(days=1))
    assert set(spexi_view.index) == set(STRESS) and (spexi_view == 1).all(), spexi_view


def test_the_database_refuses_a_second_live_order_inside_the_window(book):
    row = {
        "plot": "KE-KAK-001",
        "at": CLOCK,
        "status": "pending",
    }
    insert = sa.text(
        "INSERT INTO satellite_orders (request_id, plot_id, reason, priority, requested_day, window_end,"
        " requested_at, capture_date, status) VALUES (:rid, :plot, 'stress', 'high', :day, :end, :at, :day, :status)"
    )
    with book.begin() as conn:
        conn.execute(insert, {**row, "rid": "a", "day": DAY, "end": DAY + dt.timedelta(days=5)})
    with pytest.raises(sa.exc.IntegrityError, match="satellite_orders_one_per_window"), book.begin() as conn:
        conn.execute(insert, {**row, "rid": "b", "day": DAY + dt.timedelta(days=4), "end": DAY + dt.timedelta(days=9)})
    # a failed order releases the window
    with book.begin() as conn:
        conn.execute(sa.text("UPDATE satellite_orders SET status = 'failed' WHERE request_id = 'a'"))
        conn.execute(insert, {**row, "rid": "b", "day": DAY + dt.timedelta(days=4), "end": DAY + dt.timedelta(days=9)})


def test_failed_placements_are_recorded_and_retried_by_the_next_run(book, instant_sandbox, tmp_path):
    resources = imagery_resources(instant_sandbox, book, tmp_path)
    set_stress(book, DAY, STRESS)
    # every order POST answers 500: not repeated by the client (the server may have seen it)
    instant_sandbox.set_faults(share_5xx=1.0, paths=["/spexi/developer-api/api/v1/orders"])
    try:
        failed = order(resources, DAY)
    finally:
        instant_sandbox.clear_faults()
    assert failed.success
    orders = order_book(book)
    assert len(orders) == 12 and (orders["status"] == "placement_failed").all() and orders["order_id"].isna().all()
    assert orders["error"].str.contains("HTTP 5").all()
    assert instant_sandbox.credentials.spexi_api_key not in "".join(orders["error"])

    set_stress(book, DAY + dt.timedelta(days=1), STRESS)
    retried = order(resources, DAY + dt.timedelta(days=1))
    assert retried.success
    orders = order_book(book)
    live = orders[orders["status"] == "pending"]
    assert set(live["plot_id"]) == set(STRESS) and (live["requested_day"] == DAY + dt.timedelta(days=1)).all()
