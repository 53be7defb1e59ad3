"""The WeatherXM simulator over real HTTP: shapes, status codes, determinism, data quirks, scenarios."""

import datetime as dt
import json

import h3
import httpx
import numpy as np
import pytest

from microcrop_assets.sandbox.config import SandboxConfig
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox
from microcrop_assets.sandbox.scenario import SCENARIOS_DIR, ScenarioError, load_scenario, parse_scenario

from .conftest import SANDBOX_NOW as NOW

KAKAMEGA = [34.6, 0.15, 34.9, 0.45]
DROUGHT = {"events": [{"kind": "drought", "start": "2025-06-01", "end": "2025-07-31", "area": {"bbox": KAKAMEGA}}]}
OBSERVATION_FIELDS = [
    "timestamp",
    "temperature",
    "feels_like",
    "dew_point",
    "precipitation_rate",
    "precipitation_accumulated",
    "humidity",
    "wind_speed",
    "wind_gust",
    "wind_direction",
    "uv_index",
    "pressure",
    "solar_irradiance",
    "icon",
]


@pytest.fixture(scope="module")
def client(sandbox):
    with httpx.Client(
        base_url=sandbox.weatherxm_url, headers={"X-API-KEY": sandbox.credentials.weatherxm_api_key}, timeout=30
    ) as client:
        yield client


def walk_rain(observations: list[dict]) -> float:
    """science.md section 1: add increases of the counter; after a drop add the new value alone."""
    counter = [o["precipitation_accumulated"] for o in observations]
    return sum(b - a if b >= a else b for a, b in zip(counter, counter[1:], strict=False))


def utc_day(timestamp: str) -> dt.date:
    return dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC).date()


def history(client: httpx.Client, station, day: dt.date | str) -> httpx.Response:
    return client.get(f"/stations/{station.id}/history", params={"date": str(day)})


def observations(client: httpx.Client, station, day: dt.date | str) -> list[dict]:
    response = history(client, station, day)
    assert response.status_code == 200, response.text
    return response.json()["observations"]


@pytest.mark.integration
def test_station_list_live_shape(client):
    response = client.get("/stations")
    assert response.status_code == 200
    stations = response.json()["stations"]
    assert 30 <= len(stations) <= 60
    first = stations[0]
    assert list(first) == ["id", "name", "cellId", "lastDayQod", "createdAt", "location"]
    assert set(first["location"]) == {"lat", "lon", "elevation"}
    for station in stations:
        assert h3.get_resolution(station["cellId"]) == 7
        assert h3.latlng_to_cell(station["location"]["lat"], station["location"]["lon"], 7) == station["cellId"]
        assert 0 <= station["lastDayQod"] <= 1
        assert dt.datetime.fromisoformat(station["createdAt"]) <= NOW
    assert len({s["id"] for s in stations}) == len(stations)


@pytest.mark.integration
def test_reference_envelope_by_query_and_by_config(client):
    by_query = client.get("/stations", params={"_shape": "reference"}).json()
    assert isinstance(by_query, list) and "cellIndex" in by_query[0] and "cellId" not in by_query[0]
    with running_sandbox(clock=ManualClock(NOW), station_list_shape="reference") as other:
        response = httpx.get(
            f"{other.weatherxm_url}/stations/near",
            params={"lat": 0.24, "lon": 34.67, "radius": 30000},
            headers={"x-api-key": other.credentials.weatherxm_api_key},
        )
    assert response.status_code == 200
    assert isinstance(response.json(), list) and "cellIndex" in response.json()[0]


@pytest.mark.integration
def test_every_demo_plot_has_several_stations_within_50_km(sandbox, client):
    for plot in sandbox.sandbox.world.plots:
        response = client.get("/stations/near", params={"lat": plot.lat, "lon": plot.lon, "radius": 50_000})
        assert response.status_code == 200
        assert len(response.json()["stations"]) >= 4, plot.plot_id


@pytest.mark.integration
def test_near_is_sorted_and_filtered_by_radius(client):
    near = client.get("/stations/near", params={"lat": 0.3, "lon": 34.75, "radius": 20_000}).json()["stations"]
    wide = client.get("/stations/near", params={"lat": 0.3, "lon": 34.75, "radius": 60_000}).json()["stations"]
    assert 0 < len(near) < len(wide)
    assert {s["id"] for s in near} <= {s["id"] for s in wide}


@pytest.mark.integration
def test_bounds_and_cell_lists(client):
    box = {"min_lat": 0.15, "min_lon": 34.6, "max_lat": 0.45, "max_lon": 34.9}
    inside = client.get("/stations/bounds", params=box).json()["stations"]
    assert inside
    assert all(0.15 <= s["location"]["lat"] <= 0.45 and 34.6 <= s["location"]["lon"] <= 34.9 for s in inside)
    cell = inside[0]["cellId"]
    in_cell = client.get(f"/cells/{cell}/stations").json()["stations"]
    assert inside[0]["id"] in {s["id"] for s in in_cell}
    assert client.get("/cells/not-a-cell/stations").status_code == 400


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/stations/near", {"lat": 0.2, "lon": 34.7}),
        ("/stations/near", {"lat": 0.2, "lon": 34.7, "radius": "far"}),
        ("/stations/near", {"lat": 95, "lon": 34.7, "radius": 1000}),
        ("/stations/bounds", {"min_lat": 0.5, "min_lon": 34, "max_lat": 0.1, "max_lon": 35}),
        ("/stations/bounds", {"min_lat": 0.1}),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, path, params):
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert isinstance(response.json()["message"], str) and response.json()["message"]


@pytest.mark.integration
def test_auth_missing_wrong_and_case_insensitive(sandbox):
    url = f"{sandbox.weatherxm_url}/stations"
    missing = httpx.get(url)
    wrong = httpx.get(url, headers={"X-API-KEY": "not-the-key"})
    assert missing.status_code == wrong.status_code == 401
    assert "message" in missing.json() and "message" in wrong.json()
    assert "not-the-key" not in wrong.text
    assert httpx.get(url, headers={"x-Api-kEY": sandbox.credentials.weatherxm_api_key}).status_code == 200
    station = sandbox.sandbox.world.stations[0]
    for path in (
        "/stations/near?lat=0&lon=34&radius=9",
        "/stations/bounds?min_lat=0&min_lon=34&max_lat=1&max_lon=35",
        f"/cells/{station.cell_id}/stations",
        f"/stations/{station.id}/latest",
        f"/stations/{station.id}/history?date=2025-06-01",
        f"/stations/{station.id}/health",
    ):
        assert httpx.get(sandbox.weatherxm_url + path).status_code == 401, path


@pytest.mark.integration
def test_history_shape_units_and_utc_day(sandbox, client):
    world = sandbox.sandbox.world
    local = next(
        s for s in world.stations if s.utc_offset_hours == 3 and not s.offline and s.data_start < dt.date(2025, 5, 1)
    )
    response = history(client, local, "2025-05-10")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["date", "health", "observations", "location"]
    assert body["date"] == "2025-05-10"
    assert set(body["health"]) == {"timestamp", "data_quality", "location_quality"}
    readings = body["observations"]
    assert 200 < len(readings) <= 288
    assert list(readings[0]) == OBSERVATION_FIELDS
    assert readings[0]["timestamp"].endswith("+03:00")
    assert {utc_day(o["timestamp"]) for o in readings} == {dt.date(2025, 5, 10)}
    stamps = [dt.datetime.fromisoformat(o["timestamp"]) for o in readings]
    steps = {(b - a) % dt.timedelta(minutes=5) for a, b in zip(stamps, stamps[1:], strict=False)}
    assert stamps == sorted(stamps) and steps == {dt.timedelta(0)}
    values = {name: np.array([o[name] for o in readings]) for name in OBSERVATION_FIELDS[1:-1]}
    assert 5 < values["temperature"].min() < values["temperature"].max() < 45
    assert values["humidity"].min() >= 0 and values["humidity"].max() <= 100
    assert values["pressure"].min() >= 800 and values["pressure"].max() <= 1100
    assert values["solar_irradiance"].min() >= 0 and values["solar_irradiance"].max() > 200
    assert values["wind_direction"].min() >= 0 and values["wind_direction"].max() < 360
    assert (values["wind_gust"] >= values["wind_speed"]).all()
    assert (values["dew_point"] <= values["temperature"]).all()


@pytest.mark.integration
def test_latest_and_health(sandbox, client):
    station = next(s for s in sandbox.sandbox.world.stations if not s.offline)
    latest = client.get(f"/stations/{station.id}/latest").json()
    assert list(latest) == ["observation", "health", "location"]
    assert dt.datetime.fromisoformat(latest["observation"]["timestamp"]) <= NOW
    assert NOW - dt.datetime.fromisoformat(latest["observation"]["timestamp"]) < dt.timedelta(hours=6)
    health = client.get(f"/stations/{station.id}/health").json()["health"]
    assert 0 <= health["data_quality"]["score"] <= 1
    assert set(health["location_quality"]) == {"score", "reason"}
    reasons = {
        client.get(f"/stations/{s.id}/health").json()["health"]["location_quality"]["reason"]
        for s in sandbox.sandbox.world.stations
    }
    assert {"LOCATION_NOT_VERIFIED", "LOCATION_UNKNOWN"} <= reasons


@pytest.mark.integration
def test_unknown_station_404_and_bad_dates_400(sandbox, client):
    unknown = "00000000-0000-4000-8000-000000000000"
    for path in ("latest", "health", "history"):
        response = client.get(f"/stations/{unknown}/{path}", params={"date": "2025-06-01"})
        assert response.status_code == 404 and response.json()["message"]
    station = sandbox.sandbox.world.stations[0]
    for params in ({}, {"date": "2025-13-01"}, {"date": "01/06/2025"}, {"date": "20250601"}):
        response = client.get(f"/stations/{station.id}/history", params=params)
        assert response.status_code == 400, params
        assert "date" in response.json()["message"]
    assert history(client, station, "2025-08-02").status_code == 404  # the future


@pytest.mark.integration
def test_counter_resets_and_walk_recovers_daily_rain(sandbox, client):
    world, share = sandbox.sandbox.world, sandbox.sandbox.faults.faults.counter_reset_share
    day = dt.date(2025, 4, 1)
    resets = [
        (s, d)
        for s in world.stations
        if not s.offline and s.data_start < day
        for d in (day + dt.timedelta(days=k) for k in range(30))
        if world.resets_on(s, d, share) is not None and world.station_daily(s, d)["rain"] > 0
    ]
    assert len(resets) >= 10  # about one station-day in 30
    served = {(s, d): observations(client, s, d) for s, d in resets[:10]}
    for readings in served.values():
        counter = [o["precipitation_accumulated"] for o in readings]
        assert any(b < a for a, b in zip(counter, counter[1:], strict=False)), "the counter drops on a reset day"

    # the walk gives the day's rain (within rounding) when the readings at midnight and just before the
    # reset exist: rain hidden by other gaps shows up in the next reading of the counter
    def slots(readings: list[dict]) -> set[int]:
        return {
            (utc.hour * 60 + utc.minute) // 5
            for utc in (dt.datetime.fromisoformat(o["timestamp"]).astimezone(dt.UTC) for o in readings)
        }

    complete = [
        (key, readings) for key, readings in served.items() if {0, world.resets_on(*key, share) - 1} <= slots(readings)
    ]
    assert complete
    for (station, reset_day), readings in complete:
        assert walk_rain(readings) == pytest.approx(world.station_daily(station, reset_day)["rain"], abs=0.05)


@pytest.mark.integration
def test_gaps_poor_qod_and_offline_stations(sandbox, client):
    world = sandbox.sandbox.world
    gappy = next(s for s in world.stations if s.long_gaps)
    days = [dt.date(2025, 5, d) for d in range(1, 11)]
    counts = [len(observations(client, gappy, d)) for d in days]
    assert min(counts) < 0.8 * 288
    flaky = next(s for s in world.stations if s.flaky)
    scores = [history(client, flaky, d).json()["health"]["data_quality"]["score"] for d in days]
    assert min(scores) < 0.8 <= max(scores)
    offline = next(s for s in world.stations if s.offline)
    start, _ = offline.offline[0]
    response = history(client, offline, start)
    assert response.status_code == 404 and "offline" in response.json()["message"]
    assert history(client, offline, start - dt.timedelta(days=1)).status_code == 200


@pytest.mark.integration
def test_same_seed_same_bytes_other_seed_differs(sandbox, client):
    station = sandbox.sandbox.world.stations[3]
    paths = [
        "/stations",
        f"/stations/{station.id}/history?date=2025-03-03",
        f"/stations/{station.id}/latest",
        "/stations/near?lat=0.2&lon=34.7&radius=40000",
    ]
    with running_sandbox(clock=ManualClock(NOW)) as twin, running_sandbox(clock=ManualClock(NOW), seed=99) as other:
        twin_client = httpx.Client(base_url=twin.weatherxm_url, headers=client.headers)
        other_client = httpx.Client(base_url=other.weatherxm_url, headers=client.headers)
        for path in paths:
            assert twin_client.get(path).content == client.get(path).content, path
        assert other_client.get("/stations").content != client.get("/stations").content
        twin_client.close()
        other_client.close()


@pytest.mark.integration
def test_drought_dries_stations_inside_and_leaves_outside_untouched(sandbox, client):
    world = sandbox.sandbox.world
    inside = [
        s
        for s in world.stations
        if KAKAMEGA[0] <= s.lon <= KAKAMEGA[2]
        and KAKAMEGA[1] <= s.lat <= KAKAMEGA[3]
        and not s.offline
        and not s.long_gaps
    ][:2]
    outside = next(s for s in world.stations if s.lat < 0 and not s.offline)
    days = [dt.date(2025, 6, 10) + dt.timedelta(days=k) for k in range(30)]
    with running_sandbox(clock=ManualClock(NOW), scenario=DROUGHT) as dry:
        dry_client = httpx.Client(base_url=dry.weatherxm_url, headers=client.headers, timeout=30)
        for station in inside:
            normal = [observations(client, station, d) for d in days]
            drought = [observations(dry_client, station, d) for d in days]
            assert sum(map(walk_rain, normal)) > 30
            assert sum(map(walk_rain, drought)) < 0.1 * sum(map(walk_rain, normal))
            tmax_rise = [
                max(o["temperature"] for o in b) - max(o["temperature"] for o in a)
                for a, b in zip(normal, drought, strict=True)
            ]
            assert np.median(tmax_rise) > 1.5
        for d in days[::7]:
            assert history(dry_client, outside, d).content == history(client, outside, d).content
        # before the event the drought world is the normal world
        assert history(dry_client, inside[0], "2025-05-20").content == history(client, inside[0], "2025-05-20").content
        dry_client.close()


@pytest.mark.integration
def test_flood_and_heat_wave_events(sandbox):
    station = next(s for s in sandbox.sandbox.world.stations if not s.offline and not s.long_gaps and s.lat > 0)
    area = {"bbox": [station.lon - 0.01, station.lat - 0.01, station.lon + 0.01, station.lat + 0.01]}
    scenario = {
        "events": [
            {"kind": "flood", "start": "2025-04-01", "end": "2025-04-10", "area": area, "intensity": 1},
            {"kind": "heat_wave", "start": "2025-02-01", "end": "2025-02-10", "area": area},
        ]
    }
    with running_sandbox(clock=ManualClock(NOW), scenario=scenario) as extreme:
        headers = {"X-API-KEY": extreme.credentials.weatherxm_api_key}

        def day(date: str) -> list[dict]:
            url = f"{extreme.weatherxm_url}/stations/{station.id}/history"
            return httpx.get(url, params={"date": date}, headers=headers).json()["observations"]

        flood_rain = [walk_rain(day(f"2025-04-{d:02d}")) for d in range(1, 11)]
        heat_tmax = [max(o["temperature"] for o in day(f"2025-02-{d:02d}")) for d in range(2, 10)]
    assert max(flood_rain) > 150
    assert min(flood_rain) > 5
    assert min(heat_tmax) > 35


@pytest.mark.unit
def test_scenario_validation_names_the_problem(tmp_path):
    event = {"kind": "drought", "start": "2025-06-01", "end": "2025-07-31", "area": {"bbox": KAKAMEGA}}
    cases = [
        ({**event, "kind": "tsunami"}, "kind"),
        ({**event, "end": "2025-05-01"}, "before start"),
        ({**event, "area": {"bbox": [35, 0, 34, 1]}}, "bbox"),
        ({**event, "area": {"bbox": [34, 0, 35]}}, "bbox"),
        ({**event, "start": "June"}, "start"),
        ({**event, "intensity": -1}, "intensity"),
        ({**event, "area": {"type": "Point", "coordinates": [34, 0]}}, "Polygon"),
    ]
    for bad, words in cases:
        with pytest.raises(ScenarioError, match=words):
            parse_scenario({"events": [bad]}, "test.json")
    polygon = {"type": "Polygon", "coordinates": [[[34.6, 0.15], [34.9, 0.15], [34.9, 0.45], [34.6, 0.15]]]}
    assert parse_scenario({"events": [{**event, "area": polygon}]}).events[0].area.area > 0
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ScenarioError, match="broken.json"):
        load_scenario(path)
    # the example drought covers exactly the northern (KE-KAK-*) cluster
    example = load_scenario(SCENARIOS_DIR / "drought_kakamega.json").events[0]
    centres = plot_centres()
    lons, lats = np.array(list(centres.values())).T
    covered = example.covers(lons, lats)
    assert {plot for plot, inside in zip(centres, covered, strict=True) if inside} == {
        plot for plot in centres if plot.startswith("KE-KAK")
    }
    assert sum(covered) == 6


def plot_centres() -> dict[str, tuple[float, float]]:
    document = json.loads(SandboxConfig().plots_file.read_text())
    centres = {}
    for feature in document["features"]:
        ring = np.array(feature["geometry"]["coordinates"][0])
        centres[feature["properties"]["plot_id"]] = (float(ring[:, 0].mean()), float(ring[:, 1].mean()))
    return centres
