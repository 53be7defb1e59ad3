"""The UI in a real browser: `microcrop ui` on loopback, Debian's headless chromium driven by
Playwright. A partition of `weather_readings` is launched by clicking through the asset graph and
must succeed; screenshots go to $MICROCROP_ARTIFACTS (default the pytest tmp dir). Through the
GraphQL API every schedule and sensor of the Definitions is loaded and can be stopped and started.
The same browser opens a season report (offline HTML under MICROCROP_HOME/reports) and screenshots it.

One `dagster dev` serves the whole module (starting it is most of the module's time)."""

import datetime as dt
import os
import re
import struct
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from microcrop_assets import settings
from microcrop_assets.definitions import defs
from microcrop_assets_tests.fixtures.ui import (
    LOCATION,
    REPOSITORY_SELECTOR,
    START_SCHEDULE,
    START_SENSOR,
    graphql,
    instigators,
    launch,
    start_ui,
    stop_all,
    stop_ui,
    wait_for_run,
)

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never a downloaded build
# headless on a closed network: no GPU, and none of Chromium's background connections
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="module")
def ui(tmp_path_factory, database_url):
    process, url = start_ui(tmp_path_factory.mktemp("ui"), database_url)
    try:
        graphql(url, "mutation { setNuxSeen }")  # no newsletter dialog over the page
        yield url
    finally:
        stop_ui(process)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context(viewport=VIEWPORT)
    # two cores shared by many: the first render can be slow
    context.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MICROCROP_ARTIFACTS") or tmp_path_factory.mktemp("artifacts")) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, folder: Path, name: str, full_page: bool = False) -> Path:
    """A PNG of the viewport (or the whole page), checked to be one (signature, size, not a blank few bytes)."""
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=full_page)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width == VIEWPORT["width"], (path, width)
    assert height == VIEWPORT["height"] if not full_page else height >= VIEWPORT["height"], (path, height)
    assert len(data) > 30_000, f"{path} is only {len(data)} bytes: an empty page?"
    print(f"screenshot: {path}")
    return path


@pytest.fixture(scope="module")
def stations_run(ui) -> str:
    """The plots and their stations, which the page's day of readings needs: one run, launched at the
    module's start so it goes on while the schedule test does."""
    return launch(ui, "plots", "weather_stations")


@pytest.mark.usefixtures("stations_run")
def test_every_schedule_and_sensor_loads_and_starts(ui):
    """Runs first in the module: it leaves everything stopped, so no scheduled run competes with the
    browser's run for the two cores."""
    repository = defs.get_repository_def()
    schedules, sensors = instigators(ui)
    assert set(schedules) == {s.name for s in repository.schedule_defs}
    assert set(sensors) == {s.name for s in repository.sensor_defs}

    stop_all(ui)  # the project's default is RUNNING: starting needs them stopped first
    schedules, sensors = instigators(ui)
    assert {state["status"] for state in [*schedules.values(), *sensors.values()]} == {"STOPPED"}
    # The daemon's scheduler iteration works from a snapshot of the stored states (Dagster 1.13
    # `_scheduler/scheduler.py`) and writes states back: once, on a loaded machine, a schedule started
    # here read STOPPED right after its start returned RUNNING. A user would press Start again; so does
    # this, at most three times, and every schedule and sensor must end RUNNING.
    for _ in range(3):
        for name, state in schedules.items():
            if state["status"] != "RUNNING":
                selector = {**REPOSITORY_SELECTOR, "scheduleName": name}
                answer = graphql(ui, START_SCHEDULE, selector=selector)["startSchedule"]
                assert answer.get("scheduleState", {}).get("status") == "RUNNING", (name, answer)
        for name, state in sensors.items():
            if state["status"] != "RUNNING":
                answer = graphql(ui, START_SENSOR, selector={**REPOSITORY_SELECTOR, "sensorName": name})["startSensor"]
                assert answer.get("sensorState", {}).get("status") == "RUNNING", (name, answer)
        schedules, sensors = instigators(ui)
        if {state["status"] for state in [*schedules.values(), *sensors.values()]} == {"RUNNING"}:
            break
    assert {name for name, state in schedules.items() if state["status"] == "RUNNING"} == set(schedules)
    assert {name for name, state in sensors.items() if state["status"] == "RUNNING"} == set(sensors)

    stop_all(ui)
    schedules, sensors = instigators(ui)
    assert {state["status"] for state in [*schedules.values(), *sensors.values()]} == {"STOPPED"}


def test_partition_materialized_from_the_asset_graph(ui, stations_run, page, artifacts):
    seeded = wait_for_run(ui, stations_run)
    assert seeded["status"] == "SUCCESS", seeded
    # a past day inside the dialog's default 90-day window, which no schedule touches
    day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=7)).isoformat()

    page.goto(f"{ui}/locations/{LOCATION}/asset-groups/weather")
    node = page.get_by_text("weather_readings", exact=True).first
    expect(node).to_be_visible()
    expect(page.get_by_text("weather_stations", exact=True).first).to_be_visible()
    expect(page.get_by_text("Loading…")).to_have_count(0)  # the nodes' status rows
    expect(page.get_by_text("Materialized").first).to_be_visible()  # the stations of the seeding run
    screenshot(page, artifacts, "asset_graph")

    node.click()
    page.get_by_role("button", name="Materialize selected…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize weather_readings")).to_be_visible()
    partitions = dialog.get_by_placeholder("No matching partitions")
    partitions.fill(day)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    screenshot(page, artifacts, "partition_dialog")
    dialog.get_by_role("button", name="Launch 1 run").click()
    toast = page.get_by_role("region", name="Notifications").get_by_role("listitem")
    expect(toast).to_contain_text("Launched run")
    toast.get_by_role("link", name="View").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))  # the app navigates without a page load
    run_id = re.search(r"/runs/([0-9a-f-]{36})", page.url)[1]

    run = wait_for_run(ui, run_id)
    assert run["status"] == "SUCCESS", run
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["dagster/partition"] == day
    assert tags["dagster/from_ui"] == "true"
    assert run["assetSelection"] == [{"path": ["weather_readings"]}]
    (materialization,) = run["assetMaterializations"]
    assert materialization["partition"] == day
    metadata = {entry["label"]: entry.get("intValue") for entry in materialization["metadataEntries"]}
    assert metadata["readings_loaded"] > 0
    assert metadata["station_days_failed"] == 0

    page.reload()  # the run page as it is now, finished
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"partition: {day}")).to_be_visible()
    expect(page.get_by_text("Succeeded (1)")).to_be_visible()  # once the run's events have loaded
    expect(page.get_by_text("Loading run logs…")).to_have_count(0)
    screenshot(page, artifacts, "partition_run")


def test_season_report_opens_offline_in_the_browser(page, artifacts):
    # the report module and its synthetic season come with wt/season (imported here, not at the top,
    # so the UI tests above run on a branch without it)
    from microcrop_assets.season import report
    from microcrop_assets_tests.test_report import synthetic

    data = synthetic()
    reports = settings.home() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "season-browser.html"
    path.write_text(report.render_report(data), encoding="utf-8")
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))

    page.goto(path.as_uri())
    expect(page).to_have_title(data.title)
    for heading in ("Season by region", "Basis risk", "Map", "Sample plots", "Payouts and their proofs"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    # every plot on the map; each payout, and their total, in exact USDC as the ledger holds them
    expect(page.locator("svg.map circle:has(title)")).to_have_count(len(data.plots))  # not the legend
    payouts = data.payouts["payout_micro_usdc"]
    for paid in payouts:
        expect(page.get_by_role("cell", name=report.usdc(paid), exact=True).first).to_be_visible()
    expect(page.get_by_text(f"total payout {report.usdc(sum(payouts))} USDC")).to_be_visible()
    screenshot(page, artifacts, "season_report", full_page=True)
    assert fetched == [path.as_uri()], f"the report fetched more than itself: {fetched}"
