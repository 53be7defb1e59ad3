"""Spexi simulator, mounted at {root}/spexi/developer-api/api/v1.

`GET /image` searches existing captures (the public API); `/orders` is the contract order lifecycle
MicroCrop uses (vendors.md): pending -> processing (half the delay) -> completed or failed (after the
delay), or cancelled. A completed order's capture downloads as a GeoTIFF (see imagery.py), streamed.
Existing captures are the completed orders plus a "standard refresh" of every plot about four times a
year (RGB only: multispectral bands come from orders). `GET /image/{image_id}/download` is a sandbox
addition giving those captures' bytes; its URL is in each Feature's `download_url`. So is
`POST /orders/status` ({"order_ids": [...]} -> {"orders": [...], "not_found": [...]}): many orders'
statuses per call, for clients configured with a bulk status path.
"""

import datetime as dt
import hmac
import json
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import shapely
import shapely.affinity
import shapely.wkt
from shapely.geometry import Point, box, mapping
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from microcrop_assets.sandbox.errors import ApiError
from microcrop_assets.sandbox.imagery import BANDS, MAX_PIXELS, Capture, grid_for, pixel_count, square_around
from microcrop_assets.sandbox.seeding import token, unit

if TYPE_CHECKING:
    from microcrop_assets.sandbox.state import Sandbox

PREFIX = "/spexi/developer-api/api/v1"
PRIORITIES = ("low", "normal", "high")
CHUNK_BYTES = 64 * 1024
REFRESH_EVERY_DAYS = 91
REFRESH_RESOLUTION_M = 0.25
DEFAULT_SEARCH_RADIUS_M = 100.0
BULK_STATUS_MAX = 1000  # order ids per POST /orders/status (a sandbox addition)
FAILURE_REASONS = (
    "no pilot accepted the mission before its deadline",
    "capture rejected by quality control: cloud cover above 60 %",
    "airspace restriction over the plot on the capture date",
)


@dataclass
class Order:
    order_id: str
    request: dict  # the validated order, echoed back
    capture: Capture
    created_at: dt.datetime
    delay_s: float
    fails: bool
    failure_reason: str | None
    cancelled_at: dt.datetime | None = None

    def status(self, now: dt.datetime) -> str:
        if self.cancelled_at is not None:
            return "cancelled"
        elapsed = (now - self.created_at).total_seconds()
        if elapsed >= self.delay_s:
            return "failed" if self.fails else "completed"
        return "processing" if elapsed >= self.delay_s / 2 else "pending"


class SpexiSimulator:
    """Spexi over one sandbox's world: image search, image downloads and the order lifecycle."""

    def __init__(self, sandbox: "Sandbox"):
        self.sandbox = sandbox
        self.world = sandbox.world
        self.orders: dict[str, Order] = {}
        self.orders_per_plot: dict[str, int] = {}
        self.lock = threading.Lock()  # guards the orders and their cancellation
        self.footprints: dict[tuple[str, float], object] = {}  # (plot, resolution) -> the capture's extent

    def routes(self) -> list[Route]:
        return [
            Route("/image", self.search),
            Route("/image/{image_id}/download", self.image_download),
            Route("/orders", self.create, methods=["POST"]),
            Route("/orders/status", self.statuses, methods=["POST"]),
            Route("/orders/{order_id}", self.get, methods=["GET"]),
            Route("/orders/{order_id}", self.cancel, methods=["DELETE"]),
            Route("/orders/{order_id}/download", self.download),
        ]

    def _authorise(self, request: Request) -> None:
        key = request.headers.get("x-api-key")
        if key is None:
            raise ApiError(401, "Missing API key: send it in the x-api-key header")
        if not hmac.compare_digest(key.encode(), self.sandbox.config.credentials.spexi_api_key.encode()):
            raise ApiError(401, "Invalid API key")

    def _footprint(self, capture: Capture):
        key = (capture.plot_id, capture.resolution_m)
        if key not in self.footprints:
            self.footprints[key] = grid_for(capture.geometry, capture.resolution_m).footprint()
        return self.footprints[key]

    def _order_json(self, order: Order, request: Request) -> dict:
        status = order.status(self.sandbox.now())
        body = {
            "order_id": order.order_id,
            "status": status,
            **order.request,
            "created_at": order.created_at.isoformat(),
        }
        if status == "completed":
            body["download_url"] = f"{_base_url(request)}/orders/{order.order_id}/download"
        if status == "failed":
            body["failure_reason"] = order.failure_reason
        return body

    def _find(self, request: Request) -> Order:
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            raise ApiError(404, f"order {request.path_params['order_id']!r} not found")
        return order

    async def create(self, request: Request) -> JSONResponse:
        self._authorise(request)
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"request body is not JSON: {error}") from None
        validated, capture_date = _validate_order(body, self.sandbox.now().date(), self.world.start)
        plot = self.world.plot_by_id.get(validated["plot_id"])
        if plot is not None:
            geometry, crop, sowing = plot.geometry, plot.crop, plot.sowing_date
        else:
            location = validated["location"]
            geometry = square_around(location["longitude"], location["latitude"], validated["area_hectares"])
            crop, sowing = "maize", dt.date(capture_date.year, 3, 15)
        pixels = await run_in_threadpool(pixel_count, geometry, validated["resolution_meters"])
        if pixels > MAX_PIXELS:
            raise ApiError(
                400,
                f"resolution_meters={validated['resolution_meters']} over plot {validated['plot_id']!r} gives "
                f"{pixels} pixels per band; the sandbox renders at most {MAX_PIXELS}",
            )
        seed = self.sandbox.config.seed
        with self.lock:
            sequence = self.orders_per_plot.get(validated["plot_id"], 0)
            self.orders_per_plot[validated["plot_id"]] = sequence + 1
            order_id = "ord_" + token(seed, "order", json.dumps(validated, sort_keys=True), sequence, length=24)
            fails = unit(seed, "order-fails", order_id) < self.sandbox.config.order_failure_share
            order = Order(
                order_id=order_id,
                request=validated,
                capture=Capture(
                    order_id,
                    validated["plot_id"],
                    geometry,
                    crop,
                    sowing,
                    capture_date,
                    validated["resolution_meters"],
                    tuple(b for b in BANDS if b in validated["bands"]),
                ),
                created_at=self.sandbox.now(),
                delay_s=self.sandbox.config.order_delay_s,
                fails=fails,
                failure_reason=FAILURE_REASONS[int(unit(seed, "order-reason", order_id) * 3)] if fails else None,
            )
            self.orders[order_id] = order
        return JSONResponse(
            {
                "order_id": order_id,
                "status": "pending",
                "plot_id": validated["plot_id"],
                "capture_date": validated["capture_date"],
                "created_at": order.created_at.isoformat(),
            },
            status_code=201,
        )

    async def get(self, request: Request) -> JSONResponse:
        self._authorise(request)
        return JSONResponse(self._order_json(self._find(request), request))

    async def statuses(self, request: Request) -> JSONResponse:
        """Sandbox addition (not in the contract API): many orders' statuses in one call."""
        self._authorise(request)
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as error:
            raise ApiError(400, f"request body is not JSON: {error}") from None
        ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiError(400, 'body must be {"order_ids": ["ord_...", ...]}')
        if len(ids) > BULK_STATUS_MAX:
            raise ApiError(400, f"{len(ids)} order ids asked; at most {BULK_STATUS_MAX} per call")
        found = [self.orders[i] for i in ids if i in self.orders]
        return JSONResponse(
            {
                "orders": [self._order_json(order, request) for order in found],
                "not_found": [i for i in ids if i not in self.orders],
            }
        )

    async def cancel(self, request: Request) -> JSONResponse:
        self._authorise(request)
        order = self._find(request)
        now = self.sandbox.now()
        with self.lock:
            status = order.status(now)
            if status in ("completed", "failed"):
                raise ApiError(409, f"order {order.order_id} is {status} and can no longer be cancelled")
            if order.cancelled_at is None:
                order.cancelled_at = now
        return JSONResponse(self._order_json(order, request))

    async def download(self, request: Request) -> Response:
        self._authorise(request)
        order = self._find(request)
        status = order.status(self.sandbox.now())
        if status != "completed":
            raise ApiError(409, f"order {order.order_id} is {status}; its imagery downloads once it is completed")
        return await self._stream(order.capture)

    async def _stream(self, capture: Capture) -> Response:
        data = await run_in_threadpool(self.sandbox.imagery.geotiff, capture)

        async def chunks():
            for start in range(0, len(data), CHUNK_BYTES):
                yield data[start : start + CHUNK_BYTES]

        return StreamingResponse(
            chunks(),
            media_type="image/tiff",
            headers={
                "content-length": str(len(data)),
                "content-disposition": f'attachment; filename="{capture.image_id}.tif"',
            },
        )

    def _catalogue(self, today: dt.date) -> list[Capture]:
        """Standard-refresh captures of every plot up to today, about every three months."""
        world = self.world
        captures = []
        for plot in world.plots:
            for cycle in range(max(0, (today - world.start).days // REFRESH_EVERY_DAYS + 1)):
                day = world.start + dt.timedelta(
                    days=45 + REFRESH_EVERY_DAYS * cycle + int(unit(world.seed, "refresh", plot.plot_id, cycle) * 20)
                )
                if day > today:
                    break
                image_id = "img_" + token(world.seed, "refresh", plot.plot_id, cycle, length=24)
                captures.append(
                    Capture(
                        image_id,
                        plot.plot_id,
                        plot.geometry,
                        plot.crop,
                        plot.sowing_date,
                        day,
                        REFRESH_RESOLUTION_M,
                        ("red", "green", "blue"),
                    )
                )
        return captures

    def _existing(self, now: dt.datetime) -> list[tuple[Capture, Order | None]]:
        found = [(capture, None) for capture in self._catalogue(now.date())]
        found += [(order.capture, order) for order in list(self.orders.values()) if order.status(now) == "completed"]
        return found

    async def search(self, request: Request) -> JSONResponse:
        self._authorise(request)
        area = _search_area(request)
        pitch = request.query_params.get("pitch")
        if pitch is not None:
            try:
                pitch_value = float(pitch)
            except ValueError:
                raise ApiError(400, f"query parameter pitch={pitch!r} is not a number") from None
        first, last = _captured_range(request.query_params.get("captured_at"))
        if pitch is not None and pitch_value != -90:
            return JSONResponse({"type": "FeatureCollection", "features": []})  # every capture is nadir

        def matching() -> list[dict]:
            found = []
            for capture, order in self._existing(self.sandbox.now()):
                if first <= capture.capture_date <= last and area.intersects(self._footprint(capture)):
                    found.append(_feature(capture, order, self._footprint(capture), _base_url(request)))
            return sorted(found, key=lambda f: (f["properties"]["captured_at"], f["id"]))

        return JSONResponse({"type": "FeatureCollection", "features": await run_in_threadpool(matching)})

    async def image_download(self, request: Request) -> Response:
        self._authorise(request)
        image_id = request.path_params["image_id"]
        for capture, _ in self._existing(self.sandbox.now()):
            if capture.image_id == image_id:
                return await self._stream(capture)
        raise ApiError(404, f"image {image_id!r} not found")


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _feature(capture: Capture, order, extent, base: str) -> dict:
    url = f"{base}/orders/{capture.image_id}/download" if order else f"{base}/image/{capture.image_id}/download"
    return {
        "type": "Feature",
        "id": capture.image_id,
        "geometry": mapping(shapely.set_precision(extent, 1e-7)),
        "properties": {
            "image_id": capture.image_id,
            "captured_at": f"{capture.capture_date.isoformat()}T09:30:00Z",
            "source": "order" if order else "standard_refresh",
            "order_id": order.order_id if order else None,
            "plot_id": capture.plot_id,
            "pitch": -90,
            "heading": 0,
            "altitude": 120,
            "focused": True,
            "resolution_meters": capture.resolution_m,
            "bands": list(capture.bands),
            "download_url": url,
        },
    }


def _search_area(request: Request):
    params = request.query_params
    areas = []
    if "p" in params:
        parts = params["p"].split(",")
        try:
            values = [float(part) for part in parts]
        except ValueError:
            values = []
        if len(values) not in (2, 3) or not all(math.isfinite(v) for v in values) or min(values[2:3], default=1) <= 0:
            raise ApiError(400, f"query parameter p={params['p']!r} must be lon,lat or lon,lat,radius_m (radius > 0)")
        lon, lat = values[0], values[1]
        radius = values[2] if len(values) == 3 else DEFAULT_SEARCH_RADIUS_M
        # a circle in degrees, stretched in longitude by the latitude
        circle = Point(lon, lat).buffer(radius / 111_320, quad_segs=16)
        areas.append(shapely.affinity.scale(circle, 1 / max(math.cos(math.radians(lat)), 0.01), 1, origin=(lon, lat)))
    if "bbox" in params:
        try:
            min_lon, min_lat, max_lon, max_lat = (float(v) for v in params["bbox"].split(","))
        except ValueError:
            raise ApiError(400, f"query parameter bbox={params['bbox']!r} is not minLon,minLat,maxLon,maxLat") from None
        if not (min_lon <= max_lon and min_lat <= max_lat):
            raise ApiError(400, f"query parameter bbox={params['bbox']!r}: min must not exceed max")
        areas.append(box(min_lon, min_lat, max_lon, max_lat))
    if "polygon" in params:
        try:
            polygon = shapely.wkt.loads(params["polygon"])
        except shapely.errors.ShapelyError:
            raise ApiError(400, f"query parameter polygon={params['polygon'][:80]!r} is not WKT") from None
        if polygon.geom_type not in ("Polygon", "MultiPolygon") or not polygon.is_valid:
            raise ApiError(400, f"query parameter polygon must be a valid WKT POLYGON, got {polygon.geom_type}")
        areas.append(polygon)
    if not areas:
        raise ApiError(400, "a spatial filter is required: p=lon,lat[,radius], bbox=... or polygon=<WKT>")
    area = areas[0]
    for other in areas[1:]:
        area = area.intersection(other)
    return area


def _captured_range(raw: str | None) -> tuple[dt.date, dt.date]:
    """captured_at filter: a day (YYYY-MM-DD) or an interval 'start/end' (either side may be empty)."""
    if not raw:
        return dt.date.min, dt.date.max
    start, _, end = raw.partition("/") if "/" in raw else (raw, "", raw)
    try:
        first = dt.date.fromisoformat(start[:10]) if start else dt.date.min
        last = dt.date.fromisoformat(end[:10]) if end else dt.date.max
    except ValueError:
        raise ApiError(400, f"query parameter captured_at={raw!r} must be YYYY-MM-DD or start/end") from None
    return first, last


def _validate_order(body, today: dt.date, world_start: dt.date) -> tuple[dict, dt.date]:
    """The order's fields, checked; 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise ApiError(400, "order body must be a JSON object")
    missing = [
        name
        for name in ("plot_id", "location", "area_hectares", "resolution_meters", "priority", "bands")
        if name not in body
    ]
    if missing:
        raise ApiError(400, f"order is missing field(s) {missing}")
    plot_id = body["plot_id"]
    if not isinstance(plot_id, str) or not plot_id.strip() or len(plot_id) > 128:
        raise ApiError(400, f"plot_id={plot_id!r} must be a non-empty string")
    location = body["location"]
    if not isinstance(location, dict) or {"latitude", "longitude"} - set(location):
        raise ApiError(400, f"location={location!r} must be {{latitude, longitude}}")
    latitude = _number_field(location["latitude"], "location.latitude", -90, 90)
    longitude = _number_field(location["longitude"], "location.longitude", -180, 180)
    area = _number_field(body["area_hectares"], "area_hectares", 0, 10_000, open_low=True)
    resolution = _number_field(body["resolution_meters"], "resolution_meters", 0, 100, open_low=True)
    if body["priority"] not in PRIORITIES:
        raise ApiError(400, f"priority={body['priority']!r} must be one of {list(PRIORITIES)}")
    bands = body["bands"]
    if not isinstance(bands, list) or not bands:
        raise ApiError(400, f"bands={bands!r} must be a non-empty list drawn from {list(BANDS)}")
    unknown = [band for band in bands if band not in BANDS]
    if unknown:
        raise ApiError(400, f"unknown band(s) {unknown}; bands are {list(BANDS)}")
    if len(set(bands)) != len(bands):
        raise ApiError(400, f"bands={bands!r} lists a band twice")
    raw_date = body.get("capture_date", today.isoformat())
    try:
        capture_date = dt.date.fromisoformat(raw_date)
    except (TypeError, ValueError):
        raise ApiError(400, f"capture_date={raw_date!r} is not a YYYY-MM-DD date") from None
    if not world_start <= capture_date <= today:
        raise ApiError(400, f"capture_date={raw_date} must be between {world_start} and today ({today})")
    validated = {
        "plot_id": plot_id,
        "location": {"latitude": latitude, "longitude": longitude},
        "area_hectares": area,
        "resolution_meters": resolution,
        "priority": body["priority"],
        "bands": list(bands),
        "capture_date": capture_date.isoformat(),
    }
    return validated, capture_date


def _number_field(value, name: str, low: float, high: float, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"{name}={value!r} must be a number")
    if value > high or value < low or (open_low and value == low):
        raise ApiError(400, f"{name}={value!r} must be {'>' if open_low else '>='} {low:g} and <= {high:g}")
    return float(value)
