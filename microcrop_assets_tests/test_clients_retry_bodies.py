"""2xx answers whose JSON body is cut short: retried on calls safe to repeat, typed when retries run out,
never repeated for a POST the server may already have acted on."""

import logging

import pytest

from microcrop_assets.resources.http import VendorResponseError
from microcrop_assets.resources.weatherxm import parse_stations

from .fixtures.clients import FAST, pinata, retries, spexi, weatherxm

pytestmark = pytest.mark.integration

WEATHERXM_ONLY = ("/weatherxm/",)
PLOT = {"plot_id": "KE-KAK-001", "latitude": 0.2382, "longitude": 34.667, "area_hectares": 1.5}


@pytest.fixture
def faults(sandbox):
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()


def test_a_get_whose_body_is_cut_short_is_retried_until_it_is_whole(faults, redis_resource, caplog):
    client = weatherxm(faults, redis_resource)
    expected = client.stations_near(0.3, 34.8, 50_000)
    faults.set_faults(malformed_next=FAST["max_attempts"] - 1, paths=WEATHERXM_ONLY)
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"):
        assert client.stations_near(0.3, 34.8, 50_000) == expected
    warned = retries(caplog.records)
    assert len(warned) == FAST["max_attempts"] - 1
    assert all("body is not valid JSON" in r.getMessage() and r.status == 200 for r in warned)


def test_a_body_cut_on_every_attempt_is_a_typed_error_naming_the_endpoint(faults, redis_resource, caplog):
    faults.set_faults(share_malformed=1.0, paths=WEATHERXM_ONLY)
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"), pytest.raises(VendorResponseError) as caught:
        weatherxm(faults, redis_resource).stations_near(0.3, 34.8, 50_000)
    assert caught.value.status == 200 and "not valid JSON" in caught.value.message
    assert "GET" in str(caught.value) and "/stations/near?lat=0.3&lon=34.8&radius=50000" in str(caught.value)
    assert len(retries(caplog.records)) == FAST["max_attempts"] - 1


def test_a_well_formed_body_of_the_wrong_shape_is_not_retried(faults, redis_resource, caplog):
    client = weatherxm(faults, redis_resource)
    station = client.all_stations()[0]
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"), pytest.raises(VendorResponseError) as caught:
        client._client.request_json("GET", f"/stations/{station.id}/health", parse=parse_stations)
    assert "unexpected response shape" in caught.value.message
    assert not retries(caplog.records)  # the same answer would come back


def test_a_post_is_not_repeated_after_a_cut_body_unless_marked_safe(faults, redis_resource, caplog):
    orders = spexi(faults, redis_resource)
    faults.set_faults(malformed_next=1, paths=("/spexi/",))
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"), pytest.raises(VendorResponseError) as caught:
        orders.create_order(**PLOT, resolution_meters=0.5)  # the order may exist: a retry could order twice
    assert caught.value.method == "POST" and not retries(caplog.records)

    # Pinata pins are content-addressed, so the client marks the POST safe to repeat
    faults.set_faults(malformed_next=1, paths=("/pinata/",))
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"):
        pin = pinata(faults, redis_resource).pin_file("evidence.bin", b"evidence bytes")
    assert pin.cid and len(retries(caplog.records)) == 1
