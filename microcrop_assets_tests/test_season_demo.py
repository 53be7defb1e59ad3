"""The season demo end to end, as a user runs it (`microcrop demo`), on a shortened scenario: the
first week of June with the drought, the flood and the heat wave under way, 12 plots over the four
regions. Its outputs are checked against the scenario and the proofs against their own content."""

import datetime as dt
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from shapely.geometry import Point

from microcrop_assets.cli import main
from microcrop_assets.defs.damage.assets import damage_assessments
from microcrop_assets.proofs.cid import file_cid
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.sandbox.config import SandboxConfig
from microcrop_assets.sandbox.scenario import load_scenario
from microcrop_assets.sandbox.world import World, crop_condition, crop_conditions
from microcrop_assets.science.policy import CROP_CALENDARS
from microcrop_assets.season.files import SEASON_PLOTS_FILE
from microcrop_assets.season.plot_generator import region_of
from microcrop_assets.season.run import load_season
from microcrop_assets.season.truth import true_conditions, true_losses
from microcrop_assets_tests.fixtures.season import html_elements

SCENARIO = Path(__file__).parent / "data" / "season_short.json"
PLOTS = 12


@pytest.fixture(scope="module")
def season_demo(database_url, tmp_path_factory):
    """`microcrop demo --scenario season_short.json --plots 12` in a fresh MICROCROP_HOME, against the
    test server (the demo builds its own database `<test database>_season` there)."""
    home = tmp_path_factory.mktemp("season_home")
    env = {
        key: value
        for key, value in __import__("os").environ.items()
        if not key.startswith(("DATABASE_URL", "MINIO_", "REDIS_URL", "DAGSTER_", "BASE_", "ORACLE_", "PAYOUT_"))
    }
    env.update(MICROCROP_HOME=str(home), DATABASE_URL=database_url)
    done = subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "demo", "--scenario", str(SCENARIO), "--plots", str(PLOTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    season_url = sa.engine.make_url(database_url)
    season_url = season_url.set(database=f"{season_url.database}_season")
    engine = sa.create_engine(season_url)
    yield done, home, engine
    engine.dispose()
    admin = sa.create_engine(season_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{season_url.database}" WITH (FORCE)'))
    admin.dispose()


def rows(engine, sql: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.text(sql)).mappings()]


@pytest.mark.e2e
def test_the_demo_runs_and_prints_stages_summary_and_report(season_demo):
    done, home, _ = season_demo
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stderr == "", done.stderr[-3000:]  # no warnings, no Dagster events on the terminal
    out = done.stdout
    assert "12 plots in 4 regions (KE-BUS, KE-KAK, KE-KER, KE-KIS), 7 days 2025-06-02...2025-06-08" in out
    for stage in ("plots, weather stations", "spin-up weather 2025-03-19...2025-06-01", "week  1/1"):
        assert re.search(rf"^  {re.escape(stage)}.* +\d+\.\d s$", out, re.M), out
    for region in ("KE-BUS", "KE-KAK", "KE-KER", "KE-KIS"):
        # plots, assessed, triggered, payout, proofs, paid; true losses, paid without one, losses unpaid
        assert re.search(rf"^{region} +3 +3 +\d+ +[\d,]+\.\d\d +\d+ +\d+ +\d +\d +\d$", out, re.M), out
    assert re.search(r"^total payout [\d,]+\.\d\d USDC; \d+ proofs pinned; \d+ of \d+ payouts confirmed", out, re.M)
    report = Path(re.search(r"^report: (.+)$", out, re.M)[1])
    assert report.parent == home / "reports" and report.is_file()


@pytest.mark.e2e
def test_triggered_plots_lie_in_the_scenario_areas_and_every_event_triggers(season_demo):
    _, _, engine = season_demo
    events = load_scenario(SCENARIO).events
    plots = {f["properties"]["plot_id"]: f for f in json.loads(SEASON_PLOTS_FILE.read_text())["features"]}
    triggered = rows(
        engine,
        "SELECT DISTINCT d.plot_id, p.centroid_lon, p.centroid_lat FROM damage_assessments d"
        " JOIN plots p USING (plot_id) WHERE d.triggered",
    )
    assert triggered, "no plot triggered"
    kinds = set()
    for plot in triggered:
        centre = Point(float(plot["centroid_lon"]), float(plot["centroid_lat"]))
        inside = [event.kind for event in events if event.area.intersects(centre)]
        assert inside, f"{plot['plot_id']} triggered outside every scenario area"
        kinds.update(inside)
        assert plot["plot_id"] in plots
    assert kinds == {"drought", "flood", "heat_wave"}  # each event's region paid
    assert not any(region_of(plot["plot_id"]) == "KE-KIS" for plot in triggered)  # the control


@pytest.mark.e2e
def test_every_proof_verifies_and_every_payout_is_confirmed(season_demo):
    _, home, engine = season_demo
    proven = rows(
        engine,
        "SELECT assessment_id, proof_cid, proof_key, payout_micro_usdc FROM damage_assessments"
        " WHERE triggered ORDER BY assessment_id",
    )
    assert proven and all(row["proof_cid"] for row in proven)  # every triggered assessment proven
    for row in proven:
        copy = home / "objects" / "microcrop-season" / row["proof_key"]
        assert file_cid(copy.read_bytes()) == row["proof_cid"]
        assert main(["verify-proof", str(copy)]) == 0  # schema, canonical bytes, assessment recomputed
    payouts = rows(engine, "SELECT assessment_id, status, tx_hash, payout_micro_usdc FROM payouts")
    paid = {row["assessment_id"] for row in proven if row["payout_micro_usdc"] > 0}
    assert {row["assessment_id"] for row in payouts} == paid
    assert all(row["status"] == "confirmed" and row["tx_hash"] for row in payouts)


@pytest.mark.e2e
def test_the_report_is_self_contained_with_every_section(season_demo):
    done, _, engine = season_demo
    report = Path(re.search(r"^report: (.+)$", done.stdout, re.M)[1])
    text = report.read_text(encoding="utf-8")
    elements = html_elements(text)
    tags = [tag for tag, _ in elements.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not any(str(attrs.get("src", "")).startswith(("http", "//")) for _, attrs in elements.tags)
    assert "@import" not in text and "url(" not in text
    assert sum(1 for tag, attrs in elements.tags if tag == "svg" and attrs.get("class") == "chart") == 12
    assert len(re.findall(r'<circle cx="[\d.]+" cy="[\d.]+" r="4.5"', text)) == PLOTS  # the map
    for heading in ("Season by region", "Basis risk", "Map", "Sample plots", "Payouts and their proofs"):
        assert heading in text
    paid = rows(
        engine, "SELECT proof_cid FROM damage_assessments WHERE proof_cid IS NOT NULL AND payout_micro_usdc > 0"
    )
    local = {attrs["href"] for tag, attrs in elements.tags if tag == "a" and attrs["href"].startswith("file:")}
    assert paid and len(local) == len({row["proof_cid"] for row in paid})  # each payout's proof, its copy
    for row in paid:
        assert f"ipfs://{row['proof_cid']}" in text


@pytest.mark.integration
def test_bad_arguments_are_one_line():
    with pytest.raises(ValueError, match=r"--days 8: the scenario.s season has 7 days"):
        load_season(SCENARIO, days=8)
    with pytest.raises(ValueError, match=r"--plots 0: the season has 220 plots"):
        load_season(SCENARIO, plots=0)
    done = subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "demo", "--scenario", "missing.json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr == "microcrop demo: scenario file 'missing.json' does not exist\n"


@pytest.mark.unit
def test_plots_subset_keeps_every_region():
    season = load_season(SCENARIO, plots=6)
    ids = [f["properties"]["plot_id"] for f in season.plots["features"]]
    assert len(ids) == 6 and {region_of(i) for i in ids} == {"KE-BUS", "KE-KAK", "KE-KER", "KE-KIS"}
    assert season.days == 7 and season.first == dt.date(2025, 6, 2)


def reference_condition(world, plot, day: dt.date) -> float:
    """The sandbox's canopy condition for one day, written out from its documented formula (one
    weather query per day, as the imagery did before the range version existed)."""
    calendar = CROP_CALENDARS[plot.crop]
    age = (day - plot.sowing_date).days
    flowering, maturity = calendar["flowering"], calendar["maturity"]
    if age < flowering:
        green = 0.05 + 0.9 / (1 + math.exp(-(age - 0.5 * flowering) / (0.12 * flowering)))
    else:
        assert age < maturity  # June: every season plot is between flowering and maturity or before
        green = 0.95
    weather = world.point_weather(plot.lon, plot.lat, day - dt.timedelta(days=29), day)
    water = 0.4 + 0.6 * min(1.0, max(0.0, (float(weather["rain"].sum()) - 10) / 50))
    heat = max(0.5, 1 - 0.04 * int((weather["tmax"][-14:] > 35).sum()))
    waterlogged = 0.75 if (weather["rain"][-14:] > 150).any() else 1.0
    return round(0.05 + (green - 0.05) * water * heat * waterlogged, 4)


@pytest.mark.unit
def test_true_loss_is_zero_outside_the_events_and_the_series_is_the_daily_truth():
    config = SandboxConfig(scenario=load_scenario(SCENARIO), plots_file=SEASON_PLOTS_FILE)
    first, last = dt.date(2025, 6, 2), dt.date(2025, 6, 8)
    world = World(config)
    for plot_id in ("KE-KAK-001", "KE-BUS-002", "KE-KER-003", "KE-KIS-004"):
        plot = world.plot_by_id[plot_id]
        series = crop_conditions(world, plot.lon, plot.lat, plot.crop, plot.sowing_date, first, last)
        expected = [reference_condition(world, plot, first + dt.timedelta(days=k)) for k in range(7)]
        assert series.tolist() == expected  # the imagery's truth and the report's are one
        assert crop_condition(world, plot.lon, plot.lat, plot.crop, plot.sowing_date, last) == expected[-1]
    losses = true_losses(true_conditions(config, first, last)).set_index("plot_id")
    control = losses[losses.index.str.startswith("KE-KIS")]
    assert (control["shortfall"] == 0).all() and not control["true_loss"].any()
    drought = losses[losses.index.str.startswith("KE-KAK")]
    assert drought["true_loss"].mean() > 0.8


@pytest.mark.e2e
def test_the_week_assessed_in_reverse_order_pays_the_same_per_plot(season_demo):
    """Issue 14: the demo assessed its days in order; the same inputs assessed last day first pay every
    plot-season the same total (its largest entitlement). Runs last: it replaces the demo's assessments."""
    _, _, engine = season_demo
    query = "SELECT plot_id, sum(payout_micro_usdc) AS paid FROM damage_assessments GROUP BY plot_id ORDER BY plot_id"
    in_order = rows(engine, query)
    days = [row["day"] for row in rows(engine, "SELECT DISTINCT day FROM damage_assessments ORDER BY day DESC")]
    assert sum(row["paid"] for row in in_order) > 0 and len(days) == 7
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM damage_assessments"))
    db = TimescaleDBResource(url=engine.url.render_as_string(hide_password=False))
    for day in days:
        result = dg.materialize([damage_assessments], resources={"timescaledb": db}, partition_key=day.isoformat())
        assert result.success
    assert rows(engine, query) == in_order
