"""Spexi: search existing drone imagery, and the contract order API for new captures.

Orders follow the lifecycle in reference/vendors.md (`pending -> processing -> completed | failed |
cancelled`). Ordered GeoTIFFs are streamed to a file or the object store in bounded chunks: a
multispectral plot image never has to fit in memory, and a truncated transfer is retried whole.
"""

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from pydantic import Field

from microcrop_assets.resources.http import (
    Download,
    MiB,
    ResponseLimit,
    VendorError,
    VendorNotFound,
    VendorResource,
    configured_limit,
    parse_text,
)
from microcrop_assets.resources.object_store import ObjectStoreResource, StoredObject, validate_key

PRIORITIES = ("low", "normal", "high")
BANDS = ("red", "green", "blue", "nir")
ORDER_STATUSES = ("pending", "processing", "completed", "failed", "cancelled")
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
SEARCH_FILTERS = frozenset({"pitch", "heading", "altitude", "captured_at", "focused"})
_SPOOL_BYTES = 16 * 1024 * 1024  # larger downloads spill from memory to a temp file


@dataclass(frozen=True)
class Order:
    order_id: str
    status: str  # one of ORDER_STATUSES
    download_url: str | None
    details: dict[str, Any]  # the whole response, for fields beyond the contract

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


# -- pure parsing and validation ------------------------------------------------------------------


def parse_order(payload: Any) -> Order:
    if not isinstance(payload, dict):
        raise TypeError(f"order is {type(payload).__name__}, expected an object")
    raw_id, status = payload.get("order_id"), payload.get("status")
    if not raw_id or isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise ValueError(f"order has no usable order_id ({raw_id!r})")
    order_id = parse_text(str(raw_id), "order_id")
    if status not in ORDER_STATUSES:
        raise ValueError(f"order {order_id} has status {status!r}, expected one of {ORDER_STATUSES}")
    # text columns: the failure reason becomes the order's error (defs/imagery/orders.py)
    parse_text(payload.get("failure_reason"), f"order {order_id} failure_reason")
    return Order(order_id, status, parse_text(payload.get("download_url"), f"order {order_id} download_url"), payload)


def parse_order_statuses(payload: Any) -> dict[str, Order]:
    """A bulk status answer {orders: [...], not_found: [...]}: the orders found, by id."""
    if not isinstance(payload, dict) or not isinstance(payload.get("orders"), list):
        raise ValueError("expected an object with an 'orders' array")
    orders = [parse_order(item) for item in payload["orders"]]
    return {order.order_id: order for order in orders}


def parse_feature_collection(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise TypeError(f"image search answer is {type(payload).__name__}, expected a GeoJSON FeatureCollection")
    if payload.get("type") != "FeatureCollection":
        raise ValueError(f"expected a GeoJSON FeatureCollection, got type {payload.get('type')!r}")
    if not isinstance(payload.get("features"), list):
        raise ValueError("FeatureCollection has no 'features' array")
    return payload


def search_params(
    point: Sequence[float] | None = None,
    bbox: Sequence[float] | None = None,
    polygon_wkt: str | None = None,
    **filters: Any,
) -> dict[str, str]:
    """Query parameters of an image search: exactly one spatial filter, then optional filters."""
    given = [name for name, value in (("point", point), ("bbox", bbox), ("polygon_wkt", polygon_wkt)) if value]
    if len(given) != 1:
        raise ValueError(f"image search needs exactly one of point, bbox, polygon_wkt; got {given or 'none'}")
    params: dict[str, str] = {}
    if point:
        if len(point) not in (2, 3):
            raise ValueError(f"point {tuple(point)!r} must be (lon, lat) or (lon, lat, radius_m)")
        _check_lon_lat(point[0], point[1], "point")
        if len(point) == 3 and not point[2] > 0:
            raise ValueError(f"point radius {point[2]!r} must be positive (metres)")
        params["p"] = ",".join(str(v) for v in point)
    elif bbox:
        if len(bbox) != 4:
            raise ValueError(f"bbox {tuple(bbox)!r} must be (min_lon, min_lat, max_lon, max_lat)")
        min_lon, min_lat, max_lon, max_lat = bbox
        _check_lon_lat(min_lon, min_lat, "bbox")
        _check_lon_lat(max_lon, max_lat, "bbox")
        if min_lon >= max_lon or min_lat >= max_lat:
            raise ValueError(f"bbox {tuple(bbox)!r} needs min_lon < max_lon and min_lat < max_lat")
        params["bbox"] = ",".join(str(v) for v in bbox)
    else:
        import shapely  # imported on use: the definitions load without it

        try:
            shapely.from_wkt(polygon_wkt)
        except shapely.errors.GEOSException as exc:
            raise ValueError(f"polygon_wkt {polygon_wkt[:80]!r} is not valid WKT: {exc}") from None
        params["polygon"] = polygon_wkt
    unknown = sorted(set(filters) - SEARCH_FILTERS)
    if unknown:
        raise ValueError(f"unknown image search filters {unknown}; known: {sorted(SEARCH_FILTERS)}")
    for name, value in filters.items():
        if value is not None:
            params[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return params


def order_request(
    plot_id: str,
    latitude: float,
    longitude: float,
    area_hectares: float,
    resolution_meters: float,
    priority: str = "normal",
    bands: Sequence[str] = BANDS,
    capture_date: dt.date | None = None,
) -> dict[str, Any]:
    """The JSON body of POST /orders, after checking every field."""
    if not isinstance(plot_id, str) or not plot_id.strip():
        raise ValueError(f"plot_id {plot_id!r} must be a non-empty string")
    _check_lon_lat(longitude, latitude, f"plot {plot_id}")
    if not area_hectares > 0:
        raise ValueError(f"plot {plot_id}: area_hectares {area_hectares!r} must be positive")
    if not resolution_meters > 0:
        raise ValueError(f"plot {plot_id}: resolution_meters {resolution_meters!r} must be positive")
    if priority not in PRIORITIES:
        raise ValueError(f"plot {plot_id}: priority {priority!r} is not one of {PRIORITIES}")
    if isinstance(bands, str):
        raise TypeError(f"plot {plot_id}: bands must be a sequence of band names, got the string {bands!r}")
    bands = list(bands)
    bad = [band for band in bands if band not in BANDS]
    if not bands or bad or len(set(bands)) != len(bands):
        raise ValueError(f"plot {plot_id}: bands {bands!r} must be distinct names from {BANDS}")
    body: dict[str, Any] = {
        "plot_id": plot_id,
        "location": {"latitude": latitude, "longitude": longitude},
        "area_hectares": area_hectares,
        "resolution_meters": resolution_meters,
        "priority": priority,
        "bands": bands,
    }
    if capture_date is not None:
        if not isinstance(capture_date, dt.date) or isinstance(capture_date, dt.datetime):
            raise TypeError(f"plot {plot_id}: capture_date must be a datetime.date, got {capture_date!r}")
        body["capture_date"] = capture_date.isoformat()
    return body


def _check_lon_lat(lon: float, lat: float, where: str) -> None:
    if not -180 <= lon <= 180 or not -90 <= lat <= 90:
        raise ValueError(f"{where}: longitude {lon!r} / latitude {lat!r} outside -180..180 / -90..90")


# -- the resource ---------------------------------------------------------------------------------


class SpexiResource(VendorResource):
    """Resource key `spexi`: SPEXI_API_URL, SPEXI_API_KEY."""

    vendor = "spexi"

    api_url: str = Field(default="https://world.spexi.com/developer-api/api/v1", description="SPEXI_API_URL")
    api_key: str = Field(repr=False, description="SPEXI_API_KEY, sent as x-api-key")
    rate_limit_per_minute: float = Field(default=10, gt=0, description="calls per minute, shared by all runs")
    images_path: str = "/image"
    orders_path: str = Field(default="/orders", description="contract API: create orders")
    order_path: str = Field(default="/orders/{order_id}", description="contract API: status (GET), cancel (DELETE)")
    order_download_path: str = Field(default="/orders/{order_id}/download", description="contract API: GeoTIFF")
    order_statuses_path: str | None = Field(
        default=None,
        description="optional bulk status endpoint (POST {order_ids} -> {orders, not_found}); unset: one GET per order",
    )
    order_statuses_batch: int = Field(default=500, ge=1, description="order ids per bulk status call")
    max_image_bytes: int | None = Field(
        default=None, ge=1, description="largest ordered GeoTIFF downloaded (unset: SPEXI_MAX_IMAGE_BYTES, else 2 GiB)"
    )

    def _auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def _image_limit(self) -> ResponseLimit:
        # a multispectral plot GeoTIFF is legitimately hundreds of MB: its own limit, far above the JSON one
        return configured_limit(self.max_image_bytes, "SPEXI_MAX_IMAGE_BYTES", 2048 * MiB)

    def _order_url(self, template: str, order_id: str) -> str:
        if not isinstance(order_id, str) or not order_id.strip():
            raise ValueError(f"order id {order_id!r} must be a non-empty string")
        return template.format(order_id=quote(order_id, safe=""))

    def search_images(
        self,
        point: Sequence[float] | None = None,
        bbox: Sequence[float] | None = None,
        polygon_wkt: str | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """Existing imagery as a GeoJSON FeatureCollection; `point` is (lon, lat[, radius_m])."""
        params = search_params(point, bbox, polygon_wkt, **filters)
        return self._client.request_json("GET", self.images_path, params=params, parse=parse_feature_collection)

    def create_order(
        self,
        plot_id: str,
        latitude: float,
        longitude: float,
        area_hectares: float,
        resolution_meters: float,
        priority: str = "normal",
        bands: Sequence[str] = BANDS,
        capture_date: dt.date | None = None,
    ) -> Order:
        """Order a capture. POST is not repeated after the server may have seen it (no duplicate orders)."""
        body = order_request(
            plot_id, latitude, longitude, area_hectares, resolution_meters, priority, bands, capture_date
        )
        return self._client.request_json("POST", self.orders_path, json=body, parse=parse_order)

    def order_status(self, order_id: str) -> Order:
        return self._client.request_json("GET", self._order_url(self.order_path, order_id), parse=parse_order)

    def order_statuses(self, order_ids: Sequence[str], concurrency: int = 8) -> dict[str, Order | VendorError]:
        """Every order's status (or the vendor error that stopped it), by order id.

        One bulk call per `order_statuses_batch` ids where the API has `order_statuses_path`, else
        one GET per order over `concurrency` threads (the shared rate limit still holds). A failed
        call marks its orders with the error: one bad answer never hides the others."""
        ids = list(dict.fromkeys(order_ids))
        results: dict[str, Order | VendorError] = {}
        if self.order_statuses_path:
            for start in range(0, len(ids), self.order_statuses_batch):
                batch = ids[start : start + self.order_statuses_batch]
                try:
                    found = self._client.request_json(
                        "POST", self.order_statuses_path, json={"order_ids": batch}, idempotent=True,
                        parse=parse_order_statuses,
                    )  # fmt: skip
                except VendorError as error:
                    results.update(dict.fromkeys(batch, error))
                    continue
                for order_id in batch:
                    results[order_id] = found.get(order_id) or VendorNotFound(
                        self.vendor, 404, f"order {order_id!r} not found", "POST", self.order_statuses_path
                    )
            return results

        def one(order_id: str) -> tuple[str, Order | VendorError]:
            try:
                return order_id, self.order_status(order_id)
            except VendorError as error:
                return order_id, error

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results.update(pool.map(one, ids))
        return results

    def cancel_order(self, order_id: str) -> Order:
        return self._client.request_json("DELETE", self._order_url(self.order_path, order_id), parse=parse_order)

    def download_order(self, order_id: str, dest: str | os.PathLike | BinaryIO) -> Download:
        """Stream a completed order's GeoTIFF to a path (written only when complete) or a binary file."""
        path = self._order_url(self.order_download_path, order_id)
        if isinstance(dest, str | os.PathLike):
            target = Path(dest)
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
                try:
                    download = self._client.download(path, tmp, self._image_limit())
                except BaseException:
                    os.unlink(tmp.name)
                    raise
            os.replace(tmp.name, target)
            return download
        if dest.seekable():
            return self._client.download(path, dest, self._image_limit())
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            download = self._client.download(path, spool, self._image_limit())
            spool.seek(0)
            shutil.copyfileobj(spool, dest, self.download_chunk_bytes)
        return download

    def download_order_to_store(self, order_id: str, store: ObjectStoreResource, key: str) -> StoredObject:
        """Stream a completed order's GeoTIFF into the object store under `key` (bounded memory)."""
        validate_key(key)  # before the transfer, not after it
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            path = self._order_url(self.order_download_path, order_id)
            download = self._client.download(path, spool, self._image_limit())
            spool.seek(0)
            return store.put(key, spool, content_type=download.content_type or "image/tiff")
