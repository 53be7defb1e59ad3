"""WeatherXM Pro API simulator, mounted at {root}/weatherxm/api/v1 (paths after it are the real ones)."""

import datetime as dt
import hmac
from typing import TYPE_CHECKING

import h3
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from microcrop_assets.sandbox.errors import ApiError, number
from microcrop_assets.sandbox.observations import (
    SLOT_MINUTES,
    NoData,
    check_has_data,
    location_quality,
    station_day,
    station_qod,
)
from microcrop_assets.sandbox.world import Station, distance_km

if TYPE_CHECKING:
    from microcrop_assets.sandbox.state import Sandbox

PREFIX = "/weatherxm/api/v1"
MAX_RADIUS_M = 500_000
LATEST_LOOKBACK_DAYS = 60


def routes(sandbox: "Sandbox") -> list[Route]:
    world = sandbox.world

    def authorise(request: Request) -> None:
        # Starlette's headers are case-insensitive, as WeatherXM's server is
        key = request.headers.get("x-api-key")
        if key is None:
            raise ApiError(401, "Missing API key: send it in the X-API-KEY header")
        if not hmac.compare_digest(key.encode(), sandbox.config.credentials.weatherxm_api_key.encode()):
            raise ApiError(401, "Invalid API key")

    def listed(now: dt.datetime) -> list[Station]:
        """Stations installed by now, in a fixed order."""
        return [station for station in world.stations if station.created_at <= now]

    def station_list(request: Request, stations: list[Station]) -> JSONResponse:
        shape = request.query_params.get("_shape", sandbox.config.station_list_shape)
        if shape not in ("live", "reference"):
            raise ApiError(400, f"query parameter _shape={shape!r} must be 'live' or 'reference'")
        yesterday = sandbox.now().date() - dt.timedelta(days=1)
        cell_key = "cellId" if shape == "live" else "cellIndex"
        items = [
            {
                "id": s.id,
                "name": s.name,
                cell_key: s.cell_id,
                "lastDayQod": station_qod(world, s, yesterday) or 0.0,
                "createdAt": s.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "location": {"lat": s.lat, "lon": s.lon, "elevation": s.elevation},
            }
            for s in stations
        ]
        return JSONResponse({"stations": items} if shape == "live" else items)

    def find(request: Request) -> Station:
        station = world.station_by_id.get(request.path_params["station_id"])
        if station is None or station.created_at > sandbox.now():
            raise ApiError(404, f"Station {request.path_params['station_id']!r} not found")
        return station

    def location(station: Station) -> dict:
        return {"lat": station.lat, "lon": station.lon, "elevation": station.elevation}

    async def near(request: Request) -> JSONResponse:
        authorise(request)
        lat = number(request, "lat", -90, 90)
        lon = number(request, "lon", -180, 180)
        radius = number(request, "radius", 0, MAX_RADIUS_M)
        stations = listed(sandbox.now())
        distances = distance_km(lat, lon, np.array([s.lat for s in stations]), np.array([s.lon for s in stations]))
        inside = sorted((float(d), s.id, s) for d, s in zip(distances, stations, strict=True) if d * 1000 <= radius)
        return station_list(request, [s for _, _, s in inside])

    async def bounds(request: Request) -> JSONResponse:
        authorise(request)
        min_lat, max_lat = number(request, "min_lat", -90, 90), number(request, "max_lat", -90, 90)
        min_lon, max_lon = number(request, "min_lon", -180, 180), number(request, "max_lon", -180, 180)
        if min_lat > max_lat or min_lon > max_lon:
            raise ApiError(
                400, f"bounds min_lat={min_lat}, min_lon={min_lon} exceed max_lat={max_lat}, max_lon={max_lon}"
            )
        stations = [s for s in listed(sandbox.now()) if min_lat <= s.lat <= max_lat and min_lon <= s.lon <= max_lon]
        return station_list(request, stations)

    async def every(request: Request) -> JSONResponse:
        authorise(request)
        return station_list(request, listed(sandbox.now()))

    async def cell(request: Request) -> JSONResponse:
        authorise(request)
        index = request.path_params["h3_index"]
        if not h3.is_valid_cell(index):
            raise ApiError(400, f"{index!r} is not a valid H3 cell index")
        return station_list(request, [s for s in listed(sandbox.now()) if s.cell_id == index])

    async def history(request: Request) -> JSONResponse:
        authorise(request)
        station = find(request)
        raw = request.query_params.get("date")
        if not raw:
            raise ApiError(400, "query parameter 'date' (YYYY-MM-DD) is required")
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, f"query parameter date={raw!r} is not a YYYY-MM-DD date") from None
        if len(raw) != 10:
            raise ApiError(400, f"query parameter date={raw!r} is not a YYYY-MM-DD date")
        now = sandbox.now()
        try:
            check_has_data(station, day, now.date())
        except NoData as error:
            raise ApiError(404, str(error)) from None
        generated = station_day(world, station, day, sandbox.faults.faults.counter_reset_share)
        until = _slot_of(now) if day == now.date() else None
        observations = generated.observations() if until is None else generated.observations(until)
        return JSONResponse(
            {
                "date": day.isoformat(),
                "health": generated.health(),
                "observations": observations,
                "location": location(station),
            }
        )

    async def latest(request: Request) -> JSONResponse:
        authorise(request)
        station = find(request)
        now = sandbox.now()
        for back in range(LATEST_LOOKBACK_DAYS):
            day = now.date() - dt.timedelta(days=back)
            try:
                check_has_data(station, day, now.date())
            except NoData:
                continue
            generated = station_day(world, station, day, sandbox.faults.faults.counter_reset_share)
            observations = generated.observations(_slot_of(now)) if back == 0 else generated.observations()
            if observations:
                return JSONResponse(
                    {"observation": observations[-1], "health": generated.health(), "location": location(station)}
                )
        raise ApiError(404, f"station {station.id} has reported nothing in the last {LATEST_LOOKBACK_DAYS} days")

    async def health(request: Request) -> JSONResponse:
        authorise(request)
        station = find(request)
        today = sandbox.now().date()
        yesterday = today - dt.timedelta(days=1)
        return JSONResponse(
            {
                "health": {
                    "timestamp": dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC).isoformat(),
                    "data_quality": {"score": station_qod(world, station, yesterday) or 0.0},
                    "location_quality": location_quality(station),
                }
            }
        )

    return [
        Route("/stations/near", near),
        Route("/stations/bounds", bounds),
        Route("/stations", every),
        Route("/cells/{h3_index}/stations", cell),
        Route("/stations/{station_id}/latest", latest),
        Route("/stations/{station_id}/history", history),
        Route("/stations/{station_id}/health", health),
    ]


def _slot_of(moment: dt.datetime) -> int:
    moment = moment.astimezone(dt.UTC)
    return (moment.hour * 60 + moment.minute) // SLOT_MINUTES
