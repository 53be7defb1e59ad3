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


class WeatherXMSimulator:
    """WeatherXM Pro over one sandbox's world: station lists, a station's history, latest and health."""

    def __init__(self, sandbox: "Sandbox"):
        self.sandbox = sandbox
        self.world = sandbox.world

    def routes(self) -> list[Route]:
        return [
            Route("/stations/near", self.near),
            Route("/stations/bounds", self.bounds),
            Route("/stations", self.every),
            Route("/cells/{h3_index}/stations", self.cell),
            Route("/stations/{station_id}/latest", self.latest),
            Route("/stations/{station_id}/history", self.history),
            Route("/stations/{station_id}/health", self.health),
        ]

    def _authorise(self, request: Request) -> None:
        # Starlette's headers are case-insensitive, as WeatherXM's server is
        key = request.headers.get("x-api-key")
        if key is None:
            raise ApiError(401, "Missing API key: send it in the X-API-KEY header")
        if not hmac.compare_digest(key.encode(), self.sandbox.config.credentials.weatherxm_api_key.encode()):
            raise ApiError(401, "Invalid API key")

    def _listed(self, now: dt.datetime) -> list[Station]:
        """Stations installed by now, in a fixed order."""
        return [station for station in self.world.stations if station.created_at <= now]

    def _station_list(self, request: Request, stations: list[Station]) -> JSONResponse:
        shape = request.query_params.get("_shape", self.sandbox.config.station_list_shape)
        if shape not in ("live", "reference"):
            raise ApiError(400, f"query parameter _shape={shape!r} must be 'live' or 'reference'")
        yesterday = self.sandbox.now().date() - dt.timedelta(days=1)
        cell_key = "cellId" if shape == "live" else "cellIndex"
        items = [
            {
                "id": s.id,
                "name": s.name,
                cell_key: s.cell_id,
                "lastDayQod": station_qod(self.world, s, yesterday) or 0.0,
                "createdAt": s.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "location": {"lat": s.lat, "lon": s.lon, "elevation": s.elevation},
            }
            for s in stations
        ]
        return JSONResponse({"stations": items} if shape == "live" else items)

    def _find(self, request: Request) -> Station:
        station = self.world.station_by_id.get(request.path_params["station_id"])
        if station is None or station.created_at > self.sandbox.now():
            raise ApiError(404, f"Station {request.path_params['station_id']!r} not found")
        return station

    async def near(self, request: Request) -> JSONResponse:
        self._authorise(request)
        lat = number(request, "lat", -90, 90)
        lon = number(request, "lon", -180, 180)
        radius = number(request, "radius", 0, MAX_RADIUS_M)
        stations = self._listed(self.sandbox.now())
        distances = distance_km(lat, lon, np.array([s.lat for s in stations]), np.array([s.lon for s in stations]))
        inside = sorted((float(d), s.id, s) for d, s in zip(distances, stations, strict=True) if d * 1000 <= radius)
        return self._station_list(request, [s for _, _, s in inside])

    async def bounds(self, request: Request) -> JSONResponse:
        self._authorise(request)
        min_lat, max_lat = number(request, "min_lat", -90, 90), number(request, "max_lat", -90, 90)
        min_lon, max_lon = number(request, "min_lon", -180, 180), number(request, "max_lon", -180, 180)
        if min_lat > max_lat or min_lon > max_lon:
            raise ApiError(
                400, f"bounds min_lat={min_lat}, min_lon={min_lon} exceed max_lat={max_lat}, max_lon={max_lon}"
            )
        stations = [
            s for s in self._listed(self.sandbox.now()) if min_lat <= s.lat <= max_lat and min_lon <= s.lon <= max_lon
        ]
        return self._station_list(request, stations)

    async def every(self, request: Request) -> JSONResponse:
        self._authorise(request)
        return self._station_list(request, self._listed(self.sandbox.now()))

    async def cell(self, request: Request) -> JSONResponse:
        self._authorise(request)
        index = request.path_params["h3_index"]
        if not h3.is_valid_cell(index):
            raise ApiError(400, f"{index!r} is not a valid H3 cell index")
        return self._station_list(request, [s for s in self._listed(self.sandbox.now()) if s.cell_id == index])

    async def history(self, request: Request) -> JSONResponse:
        self._authorise(request)
        station = self._find(request)
        raw = request.query_params.get("date")
        if not raw:
            raise ApiError(400, "query parameter 'date' (YYYY-MM-DD) is required")
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, f"query parameter date={raw!r} is not a YYYY-MM-DD date") from None
        if len(raw) != 10:
            raise ApiError(400, f"query parameter date={raw!r} is not a YYYY-MM-DD date")
        now = self.sandbox.now()
        try:
            check_has_data(station, day, now.date())
        except NoData as error:
            raise ApiError(404, str(error)) from None
        generated = station_day(self.world, station, day, self.sandbox.faults.faults.counter_reset_share)
        until = _slot_of(now) if day == now.date() else None
        observations = generated.observations() if until is None else generated.observations(until)
        return JSONResponse(
            {
                "date": day.isoformat(),
                "health": generated.health(),
                "observations": observations,
                "location": _location(station),
            }
        )

    async def latest(self, request: Request) -> JSONResponse:
        self._authorise(request)
        station = self._find(request)
        now = self.sandbox.now()
        for back in range(LATEST_LOOKBACK_DAYS):
            day = now.date() - dt.timedelta(days=back)
            try:
                check_has_data(station, day, now.date())
            except NoData:
                continue
            generated = station_day(self.world, station, day, self.sandbox.faults.faults.counter_reset_share)
            observations = generated.observations(_slot_of(now)) if back == 0 else generated.observations()
            if observations:
                return JSONResponse(
                    {"observation": observations[-1], "health": generated.health(), "location": _location(station)}
                )
        raise ApiError(404, f"station {station.id} has reported nothing in the last {LATEST_LOOKBACK_DAYS} days")

    async def health(self, request: Request) -> JSONResponse:
        self._authorise(request)
        station = self._find(request)
        today = self.sandbox.now().date()
        yesterday = today - dt.timedelta(days=1)
        return JSONResponse(
            {
                "health": {
                    "timestamp": dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC).isoformat(),
                    "data_quality": {"score": station_qod(self.world, station, yesterday) or 0.0},
                    "location_quality": location_quality(station),
                }
            }
        )


def _location(station: Station) -> dict:
    return {"lat": station.lat, "lon": station.lon, "elevation": station.elevation}


def _slot_of(moment: dt.datetime) -> int:
    moment = moment.astimezone(dt.UTC)
    return (moment.hour * 60 + moment.minute) // SLOT_MINUTES
