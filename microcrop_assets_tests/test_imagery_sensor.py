"""satellite_order_sensor ticks (build_sensor_context) against the Spexi sandbox and PostgreSQL."""

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from microcrop_assets.defs.imagery.assets import satellite_orders
from microcrop_assets.defs.imagery.orders import STATUS_CHUNK, check_open_orders
from microcrop_assets.defs.imagery.schedules import daily_ndvi_nightly, ndvi_baselines_weekly, satellite_orders_daily
from microcrop_assets.defs.imagery.sensors import satellite_order_sensor
from microcrop_assets.defs.shared import weekly_partitions
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox
from microcrop_assets.sandbox.spexi import FAILURE_REASONS

from .fixtures.orders import empty_imagery, imagery_resources, order_book, set_stress

DAY = dt.date(2025, 7, 20)
CLOCK = dt.datetime(2025, 8, 1, 12, tzinfo=dt.UTC)
STRESS = {**{f"KE-KAK-{i:03d}": 0.8 for i in range(1, 7)}, **{f"KE-KIS-{i:03d}": 0.1 for i in range(1, 7)}}
ORDER_DELAY_S = 3600


@pytest.fixture
def book(db):
    empty_imagery(db)
    return db


@pytest.fixture
def slow_sandbox():
    """Orders take an hour of sandbox time; about a quarter fail (seeded: the same ones every run)."""
    clock = ManualClock(CLOCK)
    with running_sandbox(clock=clock, order_delay_s=ORDER_DELAY_S, order_failure_share=0.25) as running:
        yield running, clock


def place(resources, day: dt.date) -> None:
    result = dg.materialize([satellite_orders], resources=resources, partition_key=day.isoformat())
    assert result.success


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def tick(instance, resources, cursor: str | None = None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return satellite_order_sensor(context)


@pytest.mark.integration
@pytest.mark.parametrize("bulk_path", [None, "/orders/status"], ids=["per_order", "bulk"])
def test_completion_requests_one_run_per_capture_date_once(book, instance, slow_sandbox, tmp_path, bulk_path):
    sandbox, clock = slow_sandbox
    resources = imagery_resources(sandbox, book, tmp_path, order_statuses_path=bulk_path)
    set_stress(book, DAY, STRESS)
    place(resources, DAY)  # 12 orders captured DAY + 1
    later = DAY + dt.timedelta(days=6)
    set_stress(book, later, STRESS)
    place(resources, later)  # the 6 stressed plots again, captured `later` + 1
    assert len(order_book(book)) == 18

    quiet = tick(instance, resources)
    assert quiet.run_requests == [] and quiet.cursor == ""
    assert set(order_book(book)["status"]) == {"pending"}

    clock.advance(seconds=ORDER_DELAY_S)
    done = tick(instance, resources)
    orders = order_book(book)
    completed, failed = orders[orders["status"] == "completed"], orders[orders["status"] == "failed"]
    assert len(completed) + len(failed) == 18 and len(failed) >= 1 and len(completed) >= 2
    assert failed["error"].isin(FAILURE_REASONS).all()
    assert [h["status"] for h in failed["status_history"].iloc[0]] == ["placing", "pending", "failed"]
    assert completed["completed_at"].notna().all() and completed["error"].isna().all()
    dates = sorted({d.isoformat() for d in completed["capture_date"]})
    assert sorted(r.partition_key for r in done.run_requests) == dates  # exactly one per capture date
    assert all(r.run_key.startswith(f"ndvi_rasters:{r.partition_key}:") for r in done.run_requests)

    again = tick(instance, resources)
    assert again.run_requests == []

    # a requested run that processed nothing within the grace period (failed, lost) is asked again
    with book.begin() as conn:
        conn.execute(sa.text("UPDATE satellite_orders SET raster_requested_at = now() - interval '7 hours'"))
    stale = tick(instance, resources)
    assert sorted(r.partition_key for r in stale.run_requests) == dates
    assert not {r.run_key for r in stale.run_requests} & {r.run_key for r in done.run_requests}
    assert tick(instance, resources).run_requests == []


@pytest.mark.integration
def test_vendor_errors_keep_orders_open_and_stale_orders_expire(book, instance, slow_sandbox, tmp_path):
    sandbox, clock = slow_sandbox
    resources = imagery_resources(sandbox, book, tmp_path)
    set_stress(book, DAY, STRESS)
    place(resources, DAY)
    clock.advance(seconds=ORDER_DELAY_S)
    sandbox.set_faults(share_5xx=1.0, paths=["/spexi/developer-api/api/v1/orders/"])
    try:
        blocked = tick(instance, resources)
    finally:
        sandbox.clear_faults()
    orders = order_book(book)
    assert blocked.run_requests == [] and set(orders["status"]) == {"pending"}
    assert orders["error"].str.startswith("status check failed").all() and orders["checked_at"].notna().all()

    # an order still open seven days after it was placed is closed with the reason
    stale = orders["request_id"].iloc[0]
    with book.begin() as conn:
        conn.execute(
            sa.text("UPDATE satellite_orders SET requested_at = now() - interval '8 days' WHERE request_id = :r"),
            {"r": stale},
        )
    tick(instance, resources)
    row = order_book(book).set_index("request_id").loc[stale]
    assert row["status"] == "expired" and row["error"] == "not completed within 7 days of the order"
    assert row["status_history"][-1]["status"] == "expired"
    assert (order_book(book)["status"] != "pending").sum() == 12  # the others answered this time


@pytest.mark.integration
def test_open_orders_are_paged_with_a_cursor(book, slow_sandbox, tmp_path):
    sandbox, _clock = slow_sandbox
    resources = imagery_resources(sandbox, book, tmp_path)
    set_stress(book, DAY, STRESS)
    place(resources, DAY)
    ids = sorted(order_book(book)["request_id"])
    now = dt.datetime.now(dt.UTC)
    cursors, checked = [""], 0
    for _ in range(3):
        page = check_open_orders(book, resources["spexi"], cursors[-1], 5, now)
        cursors.append(page.next_cursor)
        checked += page.checked
    assert cursors == ["", ids[4], ids[9], ""] and checked == 12
    assert order_book(book)["checked_at"].notna().all()

    # out of time after the first chunk of status calls: the cursor resumes after the last order asked
    hurried = check_open_orders(book, resources["spexi"], "", 100, now, time_budget_s=0)
    assert hurried.checked == STATUS_CHUNK and hurried.next_cursor == ids[STATUS_CHUNK - 1]


@pytest.mark.unit
def test_schedules_target_yesterday_and_the_week_starting_on_the_sunday():
    sunday = dt.datetime(2025, 7, 27, 2, 0, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=sunday)
        orders, daily, weekly = (
            s(context) for s in (satellite_orders_daily, daily_ndvi_nightly, ndvi_baselines_weekly)
        )
    assert orders.partition_key == daily.partition_key == "2025-07-26"
    assert orders.run_key == "satellite-orders-2025-07-26"
    assert weekly.partition_key == "2025-07-27" and weekly.run_key == "ndvi-baselines-2025-07-27"
    # the week starting today is a partition already (its baseline comes from the weeks before it)
    today = dt.datetime.now(dt.UTC).date()
    this_sunday = today - dt.timedelta(days=(today.weekday() + 1) % 7)
    assert weekly_partitions.get_last_partition_key() == this_sunday.isoformat()


@pytest.mark.integration
@pytest.mark.parametrize("bulk_path", [None, "/orders/status"], ids=["per_order", "bulk"])
def test_an_order_spexi_does_not_know_fails_with_that_reason(book, slow_sandbox, tmp_path, bulk_path):
    sandbox, _clock = slow_sandbox
    resources = imagery_resources(sandbox, book, tmp_path, order_statuses_path=bulk_path)
    set_stress(book, DAY, STRESS)
    place(resources, DAY)
    with book.begin() as conn:
        conn.execute(sa.text("UPDATE satellite_orders SET order_id = 'ord_unknown' WHERE plot_id = 'KE-KIS-001'"))
    check_open_orders(book, resources["spexi"], "", 100, dt.datetime.now(dt.UTC))
    orders = order_book(book).set_index("plot_id")
    assert orders.loc["KE-KIS-001", "status"] == "failed"
    assert orders.loc["KE-KIS-001", "error"].startswith("Spexi does not know this order")
    assert (orders.drop("KE-KIS-001")["status"] == "pending").all()
