"""satellite_orders against the Spexi sandbox, PostgreSQL and Redis: who is ordered, once, retries, and
placements of unknown outcome (never placed again until a person settles them)."""

import datetime as dt
import threading

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from microcrop_assets.cli import main as cli
from microcrop_assets.defs.imagery.assets import satellite_orders
from microcrop_assets.defs.imagery.orders import (
    WINDOW_HOLDING,
    OrderRequest,
    Placement,
    check_open_orders,
    place_order,
    plan_orders,
)
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

from .fixtures.orders import (
    empty_imagery,
    imagery_resources,
    order_book,
    set_stress,
    vendor_order_images,
    vendor_orders,
)

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


def order(resources, day: dt.date, instance: dg.DagsterInstance | None = None, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [satellite_orders],
        resources=resources,
        instance=instance,
        partition_key=day.isoformat(),
        run_config={"ops": {"satellite_orders": {"config": config}}},
        raise_on_error=False,
    )


@pytest.mark.unit
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_two_concurrent_runs_place_each_order_once(book, instant_sandbox, tmp_path):
    day = DAY + dt.timedelta(days=8)  # a capture day no other test of the module orders for
    set_stress(book, day, STRESS)
    barrier = threading.Barrier(2)
    results = []

    def run(instance):
        resources = imagery_resources(instant_sandbox, book, tmp_path)  # its own clients, same Redis and DB
        barrier.wait()
        results.append(order(resources, day, instance=instance, concurrency=6))

    # each run's Dagster instance made here, one at a time: building one stamps its storage with
    # Alembic, whose command API is not thread-safe (two at once failed a run with KeyError 'script')
    instances = [dg.DagsterInstance.ephemeral() for _ in range(2)]
    threads = [threading.Thread(target=run, args=(instance,)) for instance in instances]
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


@pytest.mark.integration
@pytest.mark.parametrize("holding", WINDOW_HOLDING)
def test_the_database_refuses_a_second_live_order_inside_the_window(book, holding):
    row = {"plot": "KE-KAK-001", "at": CLOCK}
    later = DAY + dt.timedelta(days=4)
    insert = sa.text(
        "INSERT INTO satellite_orders (request_id, plot_id, reason, priority, requested_day, window_end,"
        " requested_at, capture_date, status) VALUES (:rid, :plot, 'stress', 'high', :day, :end, :at, :day, :status)"
    )
    with book.begin() as conn:
        conn.execute(insert, {**row, "rid": "a", "day": DAY, "end": DAY + dt.timedelta(days=5), "status": holding})
    second = {**row, "rid": "b", "day": later, "end": later + dt.timedelta(days=5), "status": "pending"}
    with pytest.raises(sa.exc.IntegrityError, match="satellite_orders_one_per_window"), book.begin() as conn:
        conn.execute(insert, second)
    # a failed order releases the window
    with book.begin() as conn:
        conn.execute(sa.text("UPDATE satellite_orders SET status = 'failed' WHERE request_id = 'a'"))
        conn.execute(insert, second)


ORDERS = ("POST", "/spexi/developer-api/api/v1/orders")
ORDER_PATHS = ["/spexi/developer-api/api/v1/orders"]


def outcomes(result: dg.ExecuteInProcessResult) -> dict:
    return result.asset_materializations_for_node("satellite_orders")[0].metadata["outcomes"].value


def unknown_check(result: dg.ExecuteInProcessResult):
    return [c for c in result.get_asset_check_evaluations() if c.check_name == "no_unknown_placements"][0]


@pytest.mark.unit
def test_plan_orders_never_retries_a_placement_of_unknown_outcome():
    plots = pd.DataFrame(
        {
            "plot_id": ["C", "D"],
            "sowing_date": [dt.date(2025, 3, 1)] * 2,
            "season_end": [dt.date(2025, 9, 30)] * 2,
            "stress_trigger": [0.5, 0.5],
        }
    )
    stress = pd.DataFrame({"plot_id": ["C", "D"], "weather_stress": [0.1, 0.1]})
    history = pd.DataFrame(
        {
            "plot_id": ["C", "D", "D"],
            "requested_day": [DAY - dt.timedelta(days=1), DAY - dt.timedelta(days=2), DAY - dt.timedelta(days=1)],
            "status": ["placement_unknown", "placement_failed", "placement_unknown"],
            "reason": ["routine", "stress", "stress"],
        }
    )
    # C: its order may exist, so routine is not due; D: its failed placement was retried, and that
    # retry's outcome is unknown: not retried again
    assert plan_orders(plots, stress, history, DAY, routine_every_days=14, retry_days=3).empty


@pytest.mark.integration
@pytest.mark.parametrize(
    ("lost", "client", "first_day"),
    [
        ({"drop_after_handling": 12}, {}, DAY - dt.timedelta(days=10)),  # connection dropped after handling
        ({"hold_response_ms": 1500}, {"read_timeout_seconds": 0.3}, DAY - dt.timedelta(days=14)),  # read timeout
    ],
    ids=["dropped", "held"],
)
def test_an_order_whose_answer_is_lost_is_never_placed_again(book, instant_sandbox, tmp_path, lost, client, first_day):
    handled = instant_sandbox.sandbox.faults.handled
    before = handled[ORDERS]
    resources = imagery_resources(instant_sandbox, book, tmp_path, **client)
    set_stress(book, first_day, STRESS)
    instant_sandbox.set_faults(**lost, paths=ORDER_PATHS)
    try:
        first = order(resources, first_day)
    finally:
        instant_sandbox.clear_faults()
    assert first.success
    assert handled[ORDERS] - before == 12  # Spexi placed every order; no answer came back
    orders = order_book(book)
    assert len(orders) == 12 and (orders["status"] == "placement_unknown").all() and orders["order_id"].isna().all()
    assert orders["error"].str.contains("RemoteProtocolError|ReadTimeout").all()
    history = orders.set_index("plot_id").loc["KE-KAK-001", "status_history"]
    assert [h["status"] for h in history] == ["placing", "placement_unknown"] and history[1]["detail"]
    assert first.asset_materializations_for_node("satellite_orders")[0].metadata["placement_unknown"].value == 12
    check = unknown_check(first)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert all(plot in check.description for plot in STRESS) and "microcrop orders release" in check.description
    capture = first_day + dt.timedelta(days=1)
    assert set(vendor_orders(instant_sandbox, capture).items()) == {(plot, 1) for plot in STRESS}

    # the same day again (a rerun of the partition): the stressed plots are planned again and meet
    # their own request, which stays unknown; Spexi receives no second order
    rerun = order(resources, first_day)
    assert handled[ORDERS] - before == 12
    assert set(vendor_orders(instant_sandbox, capture).items()) == {(plot, 1) for plot in STRESS}
    assert rerun.success and outcomes(rerun) == {"already_requested": 6}, outcomes(rerun)
    rows = order_book(book)
    assert (rows["status"] == "placement_unknown").all() and (rows["placement_attempts"] == 1).all()
    assert not unknown_check(rerun).passed

    # the next day: the stressed plots meet their held window, the others are not due; nothing is placed
    set_stress(book, first_day + dt.timedelta(days=1), STRESS)
    second = order(resources, first_day + dt.timedelta(days=1))
    assert second.success and outcomes(second) == {"window_held": 6}, outcomes(second)
    assert handled[ORDERS] - before == 12
    assert set(vendor_orders(instant_sandbox, capture).items()) == {(plot, 1) for plot in STRESS}
    assert vendor_orders(instant_sandbox, capture + dt.timedelta(days=1)).empty
    # still counted, and the check still fails, until a person settles them
    assert second.asset_materializations_for_node("satellite_orders")[0].metadata["placement_unknown"].value == 12
    assert not unknown_check(second).passed


@pytest.mark.integration
def test_a_plot_whose_order_lock_another_run_holds_is_not_ordered(book, instant_sandbox, tmp_path):
    day = DAY - dt.timedelta(days=30)
    resources = imagery_resources(instant_sandbox, book, tmp_path)
    plot = book.read_frame(
        "SELECT centroid_lat, centroid_lon, CAST(area_ha AS float8) AS area_ha FROM plots WHERE plot_id = 'KE-KAK-001'"
    ).iloc[0]
    request = OrderRequest("KE-KAK-001", "stress", "high", plot.centroid_lat, plot.centroid_lon, plot.area_ha)
    handled = instant_sandbox.sandbox.faults.handled
    before = handled[ORDERS]

    def place() -> Placement:
        capture = day + dt.timedelta(days=1)
        return place_order(book, resources["redis"], resources["spexi"], request, day, capture, 5, 0.5, CLOCK)

    # another run ordering for the plot holds its lock (the key every run shares); no row in the
    # database, so only the lock can stop this placement
    with resources["redis"].lock("satellite-order:KE-KAK-001", ttl_seconds=60) as held:
        assert held
        skipped = place()
    assert skipped.outcome == "locked", skipped
    assert handled[ORDERS] == before
    assert order_book(book).empty
    # once the lock is free the same request is placed, once
    assert place().outcome == "placed"
    assert handled[ORDERS] - before == 1


@pytest.mark.integration
def test_an_unexpected_error_while_ordering_leaves_the_placement_unknown_not_placing(book, instant_sandbox, tmp_path):
    """Not the client's VendorError (a bug, an answer it could not read): the row must not stay
    `placing`, which holds the window and is reported by nothing."""
    day = DAY - dt.timedelta(days=40)
    resources = imagery_resources(instant_sandbox, book, tmp_path)

    class BrokenSpexi:
        def create_order(self, *args, **kwargs):
            raise KeyError("orderId")

    request = OrderRequest("KE-KAK-001", "stress", "high", 0.28, 34.75, 1.0)
    placement = place_order(
        book, resources["redis"], BrokenSpexi(), request, day, day + dt.timedelta(days=1), 5, 0.5, CLOCK
    )
    assert placement.outcome == "placement_unknown" and "KeyError" in placement.detail
    (row,) = order_book(book).to_dict("records")
    assert row["status"] == "placement_unknown" and "KeyError" in row["error"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("refusal", "client", "first_day"),
    [
        ({"fail_next": 1000, "fail_next_status": 503}, {}, DAY - dt.timedelta(days=18)),
        ({}, {"api_url": "http://127.0.0.1:9/spexi/developer-api/api/v1"}, DAY - dt.timedelta(days=22)),
    ],
    ids=["503", "connection-refused"],
)
def test_a_refused_placement_is_retried_by_the_next_run_and_ordered_once(
    book, instant_sandbox, tmp_path, refusal, client, first_day
):
    set_stress(book, first_day, STRESS)
    instant_sandbox.set_faults(**refusal, paths=ORDER_PATHS)
    try:
        failed = order(imagery_resources(instant_sandbox, book, tmp_path, **client), first_day)
    finally:
        instant_sandbox.clear_faults()
    assert failed.success and unknown_check(failed).passed
    orders = order_book(book)
    assert len(orders) == 12 and (orders["status"] == "placement_failed").all() and orders["order_id"].isna().all()
    assert orders["error"].str.contains("HTTP 503|ConnectError").all()
    assert instant_sandbox.credentials.spexi_api_key not in "".join(orders["error"])

    retry_day = first_day + dt.timedelta(days=1)
    set_stress(book, retry_day, STRESS)
    retried = order(imagery_resources(instant_sandbox, book, tmp_path), retry_day)
    assert retried.success and outcomes(retried) == {"placed": 12}
    live = order_book(book).query("status == 'pending'")
    assert set(live["plot_id"]) == set(STRESS) and (live["requested_day"] == retry_day).all()
    assert vendor_orders(instant_sandbox, first_day + dt.timedelta(days=1)).empty
    assert set(vendor_orders(instant_sandbox, retry_day + dt.timedelta(days=1)).items()) == {(p, 1) for p in STRESS}


@pytest.mark.integration
def test_an_operator_records_or_releases_unknown_placements(
    book, instant_sandbox, tmp_path, monkeypatch, database_url, capsys
):
    day = DAY - dt.timedelta(days=26)
    resources = imagery_resources(instant_sandbox, book, tmp_path)
    set_stress(book, day, STRESS)
    # one call at a time, in plan order: the stressed Kakamega plots meet a 500 (Spexi did not act,
    # but the pipeline cannot know), the Kisumu plots' orders are placed and their answers dropped
    instant_sandbox.set_faults(fail_next=6, fail_next_status=500, drop_after_handling=6, paths=ORDER_PATHS)
    try:
        assert order(resources, day, concurrency=1).success
    finally:
        instant_sandbox.clear_faults()
    assert (order_book(book)["status"] == "placement_unknown").all()
    found = {
        image["plot_id"]: image["order_id"]
        for image in vendor_order_images(instant_sandbox, day + dt.timedelta(days=1))
    }
    assert set(found) == set(KISUMU)  # what the operator learns from Spexi

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert cli(["orders", "record", f"KE-KIS-001:{day}", found["KE-KIS-001"]]) == 0
    assert cli(["orders", "release", f"KE-KAK-001:{day}"]) == 0
    assert "recorded as pending" in capsys.readouterr().out
    for args, message in [
        (["release", f"KE-KIS-001:{day}"], f"'KE-KIS-001:{day}' is 'pending', not 'placement_unknown'"),
        (["record", f"KE-KIS-002:{day}", found["KE-KIS-001"]], f"already recorded for KE-KIS-001:{day}"),
        (["release", "KE-XXX-001:2025-01-01"], "'KE-XXX-001:2025-01-01' does not exist"),
    ]:
        assert cli(["orders", *args]) == 1
        assert message in capsys.readouterr().err

    by_plot = order_book(book).set_index("plot_id")
    assert by_plot.loc["KE-KIS-001", ["status", "order_id"]].tolist() == ["pending", found["KE-KIS-001"]]
    released = by_plot.loc["KE-KAK-001", "status_history"]
    assert [h["status"] for h in released] == ["placing", "placement_unknown", "placement_failed"]
    assert "released by an operator" in released[-1]["detail"]
    assert check_open_orders(book, resources["spexi"], "", 100, CLOCK).changed == {"completed": 1}

    # the next day: the released plot is ordered once; the other unknown placements still hold their window
    set_stress(book, day + dt.timedelta(days=1), STRESS)
    after = order(resources, day + dt.timedelta(days=1))
    assert outcomes(after) == {"placed": 1, "window_held": 5}, outcomes(after)
    assert dict(vendor_orders(instant_sandbox, day + dt.timedelta(days=2))) == {"KE-KAK-001": 1}
    check = unknown_check(after)
    assert not check.passed and check.metadata["placement_unknown"].value == 10
    assert "KE-KAK-002" in check.description and "KE-KAK-001" not in check.description
    assert "KE-KIS-001" not in check.description
