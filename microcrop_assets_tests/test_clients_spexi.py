"""SpexiResource against the sandbox: image search, the order lifecycle, streamed GeoTIFF downloads."""

import datetime as dt
import hashlib
import io
import logging

import httpx
import pytest
import rasterio

from microcrop_assets.resources.http import (
    VendorAuthError,
    VendorNotFound,
    VendorRateLimited,
    VendorRequestError,
    VendorResponseError,
    VendorUnavailable,
)
from microcrop_assets.resources.spexi import BANDS, SpexiResource, order_request, search_params
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

from .fixtures.clients import retries, spexi

pytestmark = pytest.mark.integration

PLOT = {"plot_id": "KE-KAK-001", "latitude": 0.2382, "longitude": 34.667, "area_hectares": 1.5}
CHUNK = 16 * 1024  # the client's download buffer; the GeoTIFFs below are much larger
ORDER_DELAY_S = 60


@pytest.fixture(scope="module")
def clock():
    return ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
def sandbox(clock):
    with running_sandbox(clock=clock, order_delay_s=ORDER_DELAY_S) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults(sandbox):
    yield
    sandbox.clear_faults()


@pytest.fixture
def client(sandbox, redis_resource) -> SpexiResource:
    return spexi(sandbox, redis_resource, download_chunk_bytes=CHUNK)


@pytest.fixture(scope="module")
def completed(sandbox, clock, redis_resource):
    """A completed four-band order and the sha256 of its GeoTIFF."""
    client = spexi(sandbox, redis_resource)
    order = client.create_order(**PLOT, resolution_meters=0.5)
    clock.advance(seconds=ORDER_DELAY_S + 1)
    buffer = io.BytesIO()
    download = client.download_order(order.order_id, buffer)
    assert download.sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()
    return order.order_id, download


def test_search_by_point_bbox_and_polygon(client):
    lon, lat = PLOT["longitude"], PLOT["latitude"]
    by_point = client.search_images(point=(lon, lat, 200))
    assert by_point["type"] == "FeatureCollection" and by_point["features"]
    assert {f["properties"]["plot_id"] for f in by_point["features"]} == {"KE-KAK-001"}
    by_bbox = client.search_images(bbox=(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01))
    square = f"POLYGON(({lon - 0.01} {lat - 0.01}, {lon + 0.01} {lat - 0.01}, {lon + 0.01} {lat + 0.01}, " \
             f"{lon - 0.01} {lat + 0.01}, {lon - 0.01} {lat - 0.01}))"  # fmt: skip
    by_polygon = client.search_images(polygon_wkt=square)
    ids = {f["id"] for f in by_point["features"]}
    assert ids <= {f["id"] for f in by_bbox["features"]} and ids <= {f["id"] for f in by_polygon["features"]}
    # filters reach the API: every sandbox capture is nadir, so an oblique pitch finds nothing
    assert client.search_images(point=(lon, lat, 200), pitch=-45)["features"] == []
    assert client.search_images(point=(lon, lat, 200), pitch=-90, focused=True)["features"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of point, bbox, polygon_wkt; got none"),
        ({"point": (34.6, 0.2), "bbox": (34, 0, 35, 1)}, r"got \['point', 'bbox'\]"),
        ({"point": (34.6, 0.2, 0)}, "radius 0"),
        ({"bbox": (35, 0, 34, 1)}, "min_lon < max_lon"),
        ({"polygon_wkt": "POLYGON((0 0, 1"}, "not valid WKT"),
        ({"point": (34.6, 0.2), "cloud_cover": 10}, r"unknown image search filters \['cloud_cover'\]"),
    ],
)
def test_search_arguments_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        search_params(**kwargs)


def test_order_lifecycle(client, clock):
    order = client.create_order(**PLOT, resolution_meters=1.0, priority="high", bands=("red", "nir"))
    assert order.status == "pending" and not order.is_final and order.order_id.startswith("ord_")
    with pytest.raises(VendorRequestError) as caught:  # no imagery before completion
        client.download_order(order.order_id, io.BytesIO())
    assert caught.value.status == 409 and "pending" in caught.value.message
    clock.advance(seconds=ORDER_DELAY_S // 2 + 1)
    assert client.order_status(order.order_id).status == "processing"
    clock.advance(seconds=ORDER_DELAY_S // 2)
    done = client.order_status(order.order_id)
    assert done.status == "completed" and done.is_final
    assert done.download_url.endswith(f"/orders/{order.order_id}/download")
    assert done.details["bands"] == ["red", "nir"] and done.details["priority"] == "high"
    with pytest.raises(VendorRequestError) as caught:
        client.cancel_order(order.order_id)
    assert caught.value.status == 409 and "can no longer be cancelled" in caught.value.message


def test_cancel_a_pending_order(client):
    order = client.create_order(**PLOT, resolution_meters=2.0, capture_date=dt.date(2025, 6, 1))
    cancelled = client.cancel_order(order.order_id)
    assert cancelled.status == "cancelled" and cancelled.is_final
    assert client.order_status(order.order_id).status == "cancelled"


def test_unknown_order_is_not_found(client):
    with pytest.raises(VendorNotFound) as caught:
        client.order_status("ord_does_not_exist")
    assert caught.value.status == 404 and "/orders/ord_does_not_exist" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"priority": "urgent"}, "priority 'urgent' is not one of"),
        ({"bands": ("red", "swir")}, "must be distinct names from"),
        ({"bands": ("red", "red")}, "must be distinct names from"),
        ({"bands": ()}, "must be distinct names from"),
        ({"area_hectares": 0}, "area_hectares 0 must be positive"),
        ({"latitude": 95}, "latitude 95"),
    ],
)
def test_order_fields_are_validated(changes, match):
    with pytest.raises(ValueError, match=match):
        order_request(**{**PLOT, "resolution_meters": 0.5, **changes})


def test_order_request_body():
    body = order_request(**PLOT, resolution_meters=0.5, capture_date=dt.date(2025, 6, 1))
    assert body == {
        "plot_id": "KE-KAK-001",
        "location": {"latitude": 0.2382, "longitude": 34.667},
        "area_hectares": 1.5,
        "resolution_meters": 0.5,
        "priority": "normal",
        "bands": list(BANDS),
        "capture_date": "2025-06-01",
    }


def test_streamed_download_to_a_path_is_a_four_band_geotiff(client, completed, tmp_path):
    order_id, expected = completed
    target = tmp_path / "KE-KAK-001.tif"
    download = client.download_order(order_id, target)
    assert download == expected and download.size > 10 * CHUNK
    assert download.content_type == "image/tiff" and target.stat().st_size == download.size
    assert hashlib.sha256(target.read_bytes()).hexdigest() == download.sha256
    with rasterio.open(target) as raster:
        assert raster.count == 4 and raster.width > 100 and raster.crs is not None
    assert [p.name for p in tmp_path.iterdir()] == ["KE-KAK-001.tif"]  # no temp file left behind


def test_streamed_download_to_the_object_store(client, completed, local_store):
    order_id, expected = completed
    stored = client.download_order_to_store(order_id, local_store, f"imagery/raw/{order_id}.tif")
    assert stored.sha256 == expected.sha256 and stored.size == expected.size
    assert stored.content_type == "image/tiff"
    assert hashlib.sha256(local_store.get_bytes(stored.key)).hexdigest() == expected.sha256


def test_streamed_download_to_a_forward_only_stream(client, completed):
    order_id, expected = completed

    class Sink(io.RawIOBase):  # a pipe: write only, cannot seek back for a retry
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, block):
            self.data += block
            return len(block)

    sink = Sink()
    assert client.download_order(order_id, sink) == expected
    assert hashlib.sha256(sink.data).hexdigest() == expected.sha256


def test_truncated_downloads_are_retried_whole(sandbox, client, completed, tmp_path, caplog):
    order_id, expected = completed
    sandbox.set_faults(share_truncated=0.5, paths=(f"/spexi/developer-api/api/v1/orders/{order_id}/download",))
    retrying = spexi(sandbox, client.redis, download_chunk_bytes=CHUNK, max_attempts=8)
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"):
        downloads = [retrying.download_order(order_id, tmp_path / f"copy-{i}.tif") for i in range(3)]
    assert all(d == expected for d in downloads)
    assert retries(caplog.records)  # at least one transfer was cut short and repeated
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == expected.sha256 for p in tmp_path.glob("copy-*"))


def test_download_gives_up_when_every_transfer_is_truncated(sandbox, client, completed, tmp_path):
    order_id, _ = completed
    sandbox.set_faults(share_truncated=1.0, paths=("/spexi/",))
    target = tmp_path / "never.tif"
    with pytest.raises(VendorUnavailable) as caught:
        client.download_order(order_id, target)
    assert caught.value.status in (None, 200) and f"/orders/{order_id}/download" in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a partial temp file


# -- a POST that may have reached the vendor is never repeated ---------------------------------------

ORDERS = ("POST", "/spexi/developer-api/api/v1/orders")


def test_an_order_whose_answer_is_dropped_is_not_placed_twice(sandbox, client):
    placed = sandbox.sandbox.faults.handled
    before = placed[ORDERS]
    sandbox.set_faults(drop_after_handling=1, paths=("/spexi/",))
    with pytest.raises(VendorUnavailable) as caught:
        client.create_order(**PLOT, resolution_meters=2.0)
    assert caught.value.status is None and isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert placed[ORDERS] - before == 1  # the vendor placed it once; the client did not ask again

    # the same fault on a GET is retried: repeating a read is harmless
    order = client.create_order(**PLOT, resolution_meters=2.0)
    path = ("GET", f"/spexi/developer-api/api/v1/orders/{order.order_id}")
    sandbox.set_faults(drop_after_handling=1, paths=("/spexi/",))
    assert client.order_status(order.order_id).order_id == order.order_id
    assert placed[path] == 2 and placed[ORDERS] - before == 2


def test_an_order_whose_answer_times_out_is_not_placed_twice(sandbox, redis_resource):
    impatient = spexi(sandbox, redis_resource, read_timeout_seconds=0.3)
    placed = sandbox.sandbox.faults.handled
    before = placed[ORDERS]
    sandbox.set_faults(hold_response_ms=1500, paths=("/spexi/",))
    with pytest.raises(VendorUnavailable) as caught:
        impatient.create_order(**PLOT, resolution_meters=2.0)
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert placed[ORDERS] - before == 1


@pytest.mark.parametrize(
    ("faults", "client_settings", "order", "kind", "acted"),
    [
        # refused before it was processed: safe to place again
        ({"fail_next": 9, "fail_next_status": 503}, {}, {}, VendorUnavailable, False),
        ({"fail_next": 9, "fail_next_status": 429}, {}, {}, VendorRateLimited, False),
        ({}, {"api_key": "wrong-spexi-key-3c1d"}, {}, VendorAuthError, False),
        ({}, {}, {"capture_date": dt.date(2099, 1, 1)}, VendorRequestError, False),  # 400: validation
        ({}, {"api_url": "http://127.0.0.1:9/spexi"}, {}, VendorUnavailable, False),  # connection refused
        # the vendor may have placed it: never placed again without a person
        ({"fail_next": 1, "fail_next_status": 500}, {}, {}, VendorUnavailable, True),
        ({"fail_next": 1, "fail_next_status": 502}, {}, {}, VendorUnavailable, True),
        ({"fail_next": 1, "fail_next_status": 504}, {}, {}, VendorUnavailable, True),
        ({"drop_after_handling": 1}, {}, {}, VendorUnavailable, True),
        ({"hold_response_ms": 1500}, {"read_timeout_seconds": 0.3}, {}, VendorUnavailable, True),
        ({"malformed_next": 1}, {}, {}, VendorResponseError, True),  # 201 whose body is cut short
    ],
    ids=["503", "429", "401", "400", "refused", "500", "502", "504", "dropped", "held", "cut-body"],
)
def test_every_order_failure_says_whether_spexi_may_have_acted(
    sandbox, redis_resource, faults, client_settings, order, kind, acted
):
    client = spexi(sandbox, redis_resource, **client_settings)
    sandbox.set_faults(**faults, paths=("/spexi/",))
    with pytest.raises(kind) as caught:
        client.create_order(**PLOT, resolution_meters=2.0, **order)
    assert caught.value.may_have_acted is acted, caught.value
