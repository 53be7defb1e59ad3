"""WeatherXMResource against the sandbox over real HTTP, and its pure parsers."""

import datetime as dt
import math

import dagster as dg
import h3
import pandas as pd
import pytest

from microcrop_assets.resources.http import VendorAuthError, VendorNotFound
from microcrop_assets.resources.weatherxm import (
    OBSERVATION_COLUMNS,
    Station,
    WeatherXMResource,
    observations_frame,
    parse_stations,
)
from microcrop_assets.sandbox.embedded import running_sandbox

from .fixtures.clients import weatherxm


@pytest.fixture(scope="module")
def sandbox():
    with running_sandbox() as running:
        yield running


@pytest.fixture
def client(sandbox, redis_resource):
    return weatherxm(sandbox, redis_resource)


@pytest.fixture(scope="module")
def stations(sandbox, redis_resource):
    return weatherxm(sandbox, redis_resource).all_stations()


def _km(lat1, lon1, lat2, lon2):
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


@pytest.mark.integration
def test_all_stations_are_typed(sandbox, stations):
    assert len(stations) == sandbox.config.station_count
    first = stations[0]
    assert isinstance(first, Station) and first.id and first.name
    assert h3.is_valid_cell(first.cell_id) and h3.get_resolution(first.cell_id) == 7
    assert all(0 <= s.qod <= 1 for s in stations)
    assert first.created_at.tzinfo == dt.UTC and first.elevation is not None


@pytest.mark.integration
def test_both_station_list_envelopes_give_the_same_stations(redis_resource, stations):
    # the reference schema: a bare array with cellIndex instead of {"stations": [...]} with cellId
    with running_sandbox(station_list_shape="reference") as reference:
        assert weatherxm(reference, redis_resource).all_stations() == stations


@pytest.mark.integration
def test_stations_near_bounds_and_cell(client, stations):
    centre = stations[0]
    near = client.stations_near(centre.lat, centre.lon, radius_m=20_000)
    assert centre.id in {s.id for s in near}
    assert all(_km(centre.lat, centre.lon, s.lat, s.lon) <= 20.0 + 1e-6 for s in near)
    assert len(near) < len(stations)

    box = (centre.lat - 0.2, centre.lon - 0.2, centre.lat + 0.2, centre.lon + 0.2)
    inside = client.stations_in_bounds(*box)
    assert centre.id in {s.id for s in inside}
    assert all(box[0] <= s.lat <= box[2] and box[1] <= s.lon <= box[3] for s in inside)
    expected = {s.id for s in stations if box[0] <= s.lat <= box[2] and box[1] <= s.lon <= box[3]}
    assert {s.id for s in inside} == expected

    in_cell = client.stations_in_cell(centre.cell_id)
    assert centre.id in {s.id for s in in_cell} and all(s.cell_id == centre.cell_id for s in in_cell)


@pytest.mark.integration
def test_history_is_one_utc_day_as_a_frame(client, stations):
    station = stations[0]
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)
    history = client.history(station.id, day)
    frame = history.observations
    assert tuple(frame.columns) == OBSERVATION_COLUMNS and len(frame) > 200
    assert isinstance(frame["ts"].dtype, pd.DatetimeTZDtype) and str(frame["ts"].dt.tz) == "UTC"
    assert frame["ts"].is_monotonic_increasing
    assert (frame["ts"].dt.date == day).all()
    assert (frame["station_id"] == station.id).all()
    assert frame["temperature"].dtype == "float64" and frame["temperature"].between(-60, 60).all()
    assert frame["precipitation_accumulated"].ge(0).all()
    assert history.day == day and 0 <= history.qod <= 1 and history.health.station_id == station.id


@pytest.mark.integration
def test_latest_and_health(client, stations):
    station = stations[0]
    latest = client.latest(station.id)
    assert latest.observed_at.tzinfo == dt.UTC
    assert dt.datetime.now(dt.UTC) - latest.observed_at < dt.timedelta(days=60)
    assert {"temperature", "precipitation_accumulated", "humidity"} <= set(latest.observation)
    assert latest.location["lat"] == pytest.approx(station.lat)
    health = client.health(station.id)
    assert 0 <= health.qod <= 1 and 0 <= health.location_quality <= 1
    assert health.location_reason in (None, "LOCATION_NOT_VERIFIED", "LOCATION_UNKNOWN")


@pytest.mark.integration
def test_unknown_station_is_not_found(client):
    with pytest.raises(VendorNotFound) as caught:
        client.history("00000000-0000-0000-0000-000000000000", dt.date(2025, 6, 1))
    error = caught.value
    assert error.status == 404 and error.vendor == "weatherxm" and "not found" in error.message
    assert "/stations/00000000-0000-0000-0000-000000000000/history?date=2025-06-01" in str(error)


@pytest.mark.integration
def test_wrong_key_is_an_auth_error(sandbox, redis_resource):
    with pytest.raises(VendorAuthError) as caught:
        weatherxm(sandbox, redis_resource, api_key="wrong-weatherxm-key").all_stations()
    assert caught.value.status == 401 and caught.value.message == "Invalid API key"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.stations_near(91, 0, 1000), "latitude 91"),
        (lambda c: c.stations_near(0, 0, 0), "radius_m 0"),
        (lambda c: c.stations_in_bounds(1, 1, 0, 2), "min_lat < max_lat"),
        (lambda c: c.stations_in_cell("not-a-cell"), "'not-a-cell' is not a valid H3"),
        (lambda c: c.history("", dt.date(2025, 1, 1)), "station id ''"),
    ],
)
def test_bad_arguments_fail_before_any_request(call, match, redis_resource):
    # nothing listens on port 9: a request would end in VendorUnavailable, not ValueError
    client = WeatherXMResource(
        api_url="http://127.0.0.1:9/none", api_key="k-unused", redis=redis_resource, max_attempts=1
    )
    with pytest.raises(ValueError, match=match):
        call(client)


@pytest.mark.integration
def test_history_wants_a_date_not_a_datetime(client):
    with pytest.raises(TypeError, match="datetime.date"):
        client.history("any", dt.datetime(2025, 6, 1, tzinfo=dt.UTC))


# -- pure parsers ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_parse_stations_rejects_unexpected_shapes():
    with pytest.raises(ValueError, match="'stations' array"):
        parse_stations({"data": []})
    with pytest.raises(ValueError, match="no location"):
        parse_stations([{"id": "a"}])
    assert parse_stations({"stations": []}) == [] and parse_stations([]) == []


@pytest.mark.unit
def test_observations_keep_the_sender_offset_and_store_utc():
    frame = observations_frame(
        "st-1",
        [
            {"timestamp": "2025-06-01T03:00:00+03:00", "temperature": 20.5, "icon": "sunny"},
            {"timestamp": "2025-05-31T23:55:00Z", "precipitation_accumulated": 1.25},
        ],
    )
    assert list(frame["ts"]) == [
        pd.Timestamp("2025-05-31T23:55:00Z"),
        pd.Timestamp("2025-06-01T00:00:00Z"),
    ]
    assert list(frame["utc_offset_minutes"]) == [0, 180]
    assert frame["temperature"].isna().tolist() == [True, False] and frame["icon"].tolist() == [None, "sunny"]
    empty = observations_frame("st-1", [])
    assert tuple(empty.columns) == OBSERVATION_COLUMNS and empty.empty


@pytest.mark.integration
def test_resource_from_environment_inside_a_dagster_run(sandbox, redis_resource, monkeypatch):
    monkeypatch.setenv("WEATHERXM_API_URL", sandbox.weatherxm_url)
    monkeypatch.setenv("WEATHERXM_API_KEY", sandbox.credentials.weatherxm_api_key)
    resource = WeatherXMResource(
        api_url=dg.EnvVar("WEATHERXM_API_URL"), api_key=dg.EnvVar("WEATHERXM_API_KEY"), redis=redis_resource
    )

    @dg.asset
    def station_count(weatherxm: WeatherXMResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"stations": len(weatherxm.all_stations())})

    result = dg.materialize([station_count], resources={"weatherxm": resource})
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["stations"].value == sandbox.config.station_count
