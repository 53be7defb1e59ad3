"""The Spexi simulator over real HTTP: order lifecycle, GeoTIFF downloads, image search."""

import datetime as dt
import json

import httpx
import numpy as np
import pytest
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds, transform_geom

from microcrop_assets.sandbox.config import SandboxConfig
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

pytestmark = pytest.mark.integration

NOW = dt.datetime(2025, 8, 1, 12, 0, tzinfo=dt.UTC)
DROUGHT = {
    "events": [
        {"kind": "drought", "start": "2025-06-01", "end": "2025-07-31", "area": {"bbox": [34.6, 0.15, 34.9, 0.45]}}
    ]
}


def order_body(plot_id="KE-KAK-001", capture_date="2025-07-25", **changes) -> dict:
    body = {
        "plot_id": plot_id,
        "location": {"latitude": 0.2382, "longitude": 34.6669},
        "area_hectares": 1.5,
        "resolution_meters": 0.5,
        "priority": "normal",
        "bands": ["red", "green", "blue", "nir"],
        "capture_date": capture_date,
    }
    body.update(changes)
    return body


@pytest.fixture(scope="module")
def clock():
    return ManualClock(NOW)


@pytest.fixture(scope="module")
def sandbox(clock):
    with running_sandbox(clock=clock, order_delay_s=60) as running:
        yield running


@pytest.fixture(scope="module")
def client(sandbox):
    with httpx.Client(
        base_url=sandbox.spexi_url, headers={"x-api-key": sandbox.credentials.spexi_api_key}, timeout=60
    ) as client:
        yield client


def download(client: httpx.Client, order_id: str) -> bytes:
    with client.stream("GET", f"/orders/{order_id}/download") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/tiff"
        chunks = list(response.iter_bytes())
    data = b"".join(chunks)
    assert len(data) == int(response.headers["content-length"])
    return data


def plot_geometry(plot_id: str) -> dict:
    document = json.loads(SandboxConfig().plots_file.read_text())
    return next(f["geometry"] for f in document["features"] if f["properties"]["plot_id"] == plot_id)


def plot_ndvi(data: bytes, plot_id: str = "KE-KAK-001") -> float:
    """Mean NDVI over the plot's valid, cloud-free pixels, from reflectance = DN * scale + offset."""
    with MemoryFile(data) as memory, memory.open() as image:
        dn = image.read().astype(float)
        reflectance = dn * np.array(image.scales)[:, None, None] + np.array(image.offsets)[:, None, None]
        red, blue, nir = (reflectance[image.descriptions.index(name)] for name in ("red", "blue", "nir"))
        plot = transform_geom("EPSG:4326", image.crs, plot_geometry(plot_id))
        inside = geometry_mask([plot], image.shape, image.transform, invert=True)
        valid = inside & (dn != image.nodata).all(axis=0) & (blue < 0.3)
    assert valid.sum() > 100
    return float(((nir - red) / (nir + red))[valid].mean())


def test_order_lifecycle_pending_processing_completed(sandbox, client, clock):
    created = client.post("/orders", json=order_body(capture_date="2025-07-01"))
    assert created.status_code == 201
    order_id = created.json()["order_id"]
    assert created.json()["status"] == "pending"
    assert client.get(f"/orders/{order_id}").json()["status"] == "pending"
    early = client.get(f"/orders/{order_id}/download")
    assert early.status_code == 409 and "pending" in early.json()["message"]
    clock.advance(seconds=30)
    assert client.get(f"/orders/{order_id}").json()["status"] == "processing"
    clock.advance(seconds=30)
    done = client.get(f"/orders/{order_id}").json()
    assert done["status"] == "completed"
    assert done["capture_date"] == "2025-07-01" and done["plot_id"] == "KE-KAK-001"
    assert done["download_url"] == f"{sandbox.spexi_url}/orders/{order_id}/download"
    assert httpx.get(done["download_url"], headers=client.headers).status_code == 200
    # a completed order cannot be cancelled
    assert client.delete(f"/orders/{order_id}").status_code == 409


def test_cancel_and_unknown_orders(client):
    order_id = client.post("/orders", json=order_body(capture_date="2025-06-01")).json()["order_id"]
    cancelled = client.delete(f"/orders/{order_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/orders/{order_id}").json()["status"] == "cancelled"
    assert client.get(f"/orders/{order_id}/download").status_code == 409
    for method in ("GET", "DELETE"):
        assert client.request(method, "/orders/ord_nope").status_code == 404


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"bands": ["red", "swir"]}, "swir"),
        ({"bands": []}, "bands"),
        ({"priority": "urgent"}, "priority"),
        ({"resolution_meters": 0}, "resolution_meters"),
        ({"area_hectares": "big"}, "area_hectares"),
        ({"location": {"latitude": 0.2}}, "location"),
        ({"capture_date": "2025-31-01"}, "capture_date"),
        ({"capture_date": "2026-01-01"}, "capture_date"),
        ({"resolution_meters": 0.001}, "pixels"),
    ],
)
def test_bad_order_bodies_are_400(client, change, words):
    response = client.post("/orders", json=order_body(**change))
    assert response.status_code == 400
    assert words in response.json()["message"]


def test_missing_fields_and_non_json_are_400(client):
    body = order_body()
    del body["priority"]
    assert "priority" in client.post("/orders", json=body).json()["message"]
    assert client.post("/orders", content=b"{nope", headers={"content-type": "application/json"}).status_code == 400


def test_auth(sandbox):
    url = f"{sandbox.spexi_url}/image?bbox=34,0,35,1"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"x-api-key": "wrong"}).status_code == 401
    assert httpx.get(url, headers={"X-Api-Key": sandbox.credentials.spexi_api_key}).status_code == 200
    endpoints = (("POST", "/orders"), ("GET", "/orders/x"), ("DELETE", "/orders/x"), ("GET", "/orders/x/download"))
    for method, path in endpoints:
        response = httpx.request(method, sandbox.spexi_url + path, headers={"x-api-key": "wrong"}, json=order_body())
        assert response.status_code == 401 and response.json()["message"], path


def test_geotiff_is_four_band_reflectance_with_nodata_and_tags(client, clock):
    order_id = client.post("/orders", json=order_body(resolution_meters=0.25)).json()["order_id"]
    clock.advance(seconds=60)
    data = download(client, order_id)
    with MemoryFile(data) as memory, memory.open() as image:
        assert image.count == 4 and image.dtypes == ("uint16",) * 4
        assert image.descriptions == ("red", "green", "blue", "nir")
        assert image.nodata == 0
        assert image.res == (0.25, 0.25)
        assert image.crs.to_epsg() == 32636  # UTM 36N, metres
        assert image.scales == (0.0001,) * 4 and image.offsets == (-0.1,) * 4
        tags = image.tags()
        assert tags["SCALE"] == "0.0001" and tags["OFFSET"] == "-0.1" and "reflectance" in tags["reflectance_formula"]
        assert tags["PLOT_ID"] == "KE-KAK-001" and tags["CAPTURE_DATE"] == "2025-07-25"
        bands = image.read()
        assert (bands[:, 0, :] == 0).all() and (bands[:, :, -1] == 0).all()  # nodata around the flown area
        assert (bands > 0).all(axis=0).mean() > 0.5
        # the plot lies inside the raster
        west, south, east, north = transform_bounds(image.crs, "EPSG:4326", *image.bounds)
    assert west < 34.6662 and east > 34.6677 and south < 0.2377 and north > 0.2387
    ndvi = plot_ndvi(data)
    assert -1 < ndvi < 1


def test_cloud_patches_are_bright_in_every_band():
    with running_sandbox(clock=ManualClock(NOW)) as sandbox:
        client = httpx.Client(base_url=sandbox.spexi_url, headers={"x-api-key": sandbox.credentials.spexi_api_key})
        cloud_covers = []
        for day in range(1, 13):
            order_id = client.post("/orders", json=order_body(capture_date=f"2025-05-{day:02d}")).json()["order_id"]
            with MemoryFile(download(client, order_id)) as memory, memory.open() as image:
                cloud_covers.append(float(image.tags()["CLOUD_COVER"]))
                if cloud_covers[-1] > 0.02:
                    reflectance = image.read().astype(float) * 0.0001 - 0.1
                    cloudy = reflectance[2] > 0.3
                    assert (reflectance[:, cloudy] > 0.25).all()
        client.close()
    assert 0 < sum(c > 0 for c in cloud_covers) < len(cloud_covers)


def test_same_seed_same_bytes_and_drought_lowers_ndvi():
    # maize sown 2025-03-15 is between flowering and maturity; the drought started on 2025-06-01
    body = order_body(capture_date="2025-07-01")
    images = []
    for options in ({}, {}, {"seed": 11}, {"scenario": DROUGHT}):
        with running_sandbox(clock=ManualClock(NOW), **options) as sandbox:
            other = httpx.Client(base_url=sandbox.spexi_url, headers={"x-api-key": sandbox.credentials.spexi_api_key})
            order_id = other.post("/orders", json=body).json()["order_id"]
            images.append((order_id, download(other, order_id)))
            other.close()
    (id_a, normal), (id_b, twin), (id_c, other_seed), (_, drought) = images
    assert id_a == id_b and normal == twin
    assert id_c != id_a and other_seed != normal
    assert 0.65 < plot_ndvi(normal) < 0.85
    assert 0.25 < plot_ndvi(drought) < 0.45
    assert plot_ndvi(normal) - plot_ndvi(drought) > 0.2


def test_order_ids_are_deterministic_per_plot_sequence():
    ids = []
    for _ in range(2):
        with running_sandbox(clock=ManualClock(NOW)) as sandbox:
            headers = {"x-api-key": sandbox.credentials.spexi_api_key}
            ids.append(
                [
                    httpx.post(f"{sandbox.spexi_url}/orders", json=order_body(), headers=headers).json()["order_id"]
                    for _ in range(3)
                ]
            )
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3  # the same body ordered again is a new order


def test_failure_share_fails_orders_with_a_reason():
    with running_sandbox(clock=ManualClock(NOW), order_failure_share=0.5) as sandbox:
        client = httpx.Client(base_url=sandbox.spexi_url, headers={"x-api-key": sandbox.credentials.spexi_api_key})
        states = []
        for day in range(1, 21):
            order_id = client.post("/orders", json=order_body(capture_date=f"2025-06-{day:02d}")).json()["order_id"]
            states.append(client.get(f"/orders/{order_id}").json())
        client.close()
    failed = [s for s in states if s["status"] == "failed"]
    assert 3 <= len(failed) <= 17
    assert all(s["failure_reason"] and "download_url" not in s for s in failed)
    assert all(s["status"] == "completed" for s in states if s not in failed)


def test_image_search_filters_and_requires_a_spatial_filter(client, clock):
    location = {"latitude": -0.388, "longitude": 35.0636}
    body = order_body(plot_id="KE-KIS-003", capture_date="2025-07-20", location=location)
    order_id = client.post("/orders", json=body).json()["order_id"]
    clock.advance(seconds=60)
    near = client.get("/image", params={"p": "35.0636,-0.3881,150"})
    assert near.status_code == 200
    collection = near.json()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert features and all(f["properties"]["plot_id"] == "KE-KIS-003" for f in features)
    ordered = [f for f in features if f["id"] == order_id]
    assert ordered and ordered[0]["properties"]["bands"] == ["red", "green", "blue", "nir"]
    refresh = [f for f in features if f["properties"]["source"] == "standard_refresh"]
    assert refresh and all(f["properties"]["captured_at"] <= "2025-08-01" for f in refresh)
    assert httpx.get(refresh[0]["properties"]["download_url"], headers=client.headers).status_code == 200
    feature = ordered[0]
    assert feature["geometry"]["type"] == "Polygon" and feature["properties"]["pitch"] == -90

    by_date = client.get("/image", params={"bbox": "35.0,-0.4,35.1,-0.38", "captured_at": "2025-07-20"})
    by_date = by_date.json()["features"]
    assert [f["id"] for f in by_date] == [order_id]
    wkt = "POLYGON((35.06 -0.39, 35.07 -0.39, 35.07 -0.38, 35.06 -0.38, 35.06 -0.39))"
    assert order_id in {f["id"] for f in client.get("/image", params={"polygon": wkt}).json()["features"]}
    assert client.get("/image", params={"bbox": "10,10,10.1,10.1"}).json()["features"] == []

    bad = ({}, {"p": "35.06"}, {"bbox": "1,2,3"}, {"polygon": "POLYGON((nope"}, {"p": "1,2", "captured_at": "July"})
    for params in bad:
        response = client.get("/image", params=params)
        assert response.status_code == 400, params
        assert response.json()["message"]
