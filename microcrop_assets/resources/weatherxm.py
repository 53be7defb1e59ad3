"""WeatherXM Pro API: station catalogue, latest readings, one UTC day of history, station health.

Parsing is done by pure functions on the decoded JSON, so the response shapes listed in
reference/vendors.md (both station-list envelopes, `cellId` or `cellIndex`) are tested in one place.
"""

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pandas as pd
from pydantic import Field

from microcrop_assets.resources.http import VendorResource, parse_text, parse_timestamp

# Observation fields of the API, in the order the pipeline stores them.
MEASUREMENTS = (
    "temperature", "feels_like", "dew_point", "precipitation_rate", "precipitation_accumulated", "humidity",
    "wind_speed", "wind_gust", "wind_direction", "uv_index", "pressure", "solar_irradiance",
)  # fmt: skip
OBSERVATION_COLUMNS = ("station_id", "ts", "utc_offset_minutes", *MEASUREMENTS, "icon")


@dataclass(frozen=True)
class Station:
    id: str
    name: str | None
    cell_id: str | None
    lat: float
    lon: float
    elevation: float | None
    qod: float | None  # lastDayQod, 0..1
    created_at: dt.datetime | None


@dataclass(frozen=True)
class StationHealth:
    station_id: str
    timestamp: dt.datetime | None
    qod: float | None  # data_quality.score, 0..1
    location_quality: float | None
    location_reason: str | None  # LOCATION_NOT_VERIFIED, LOCATION_UNKNOWN or None


@dataclass(frozen=True, eq=False)
class StationHistory:
    """One UTC day of one station. `observations` has OBSERVATION_COLUMNS, sorted by `ts` (UTC)."""

    station_id: str
    day: dt.date
    observations: pd.DataFrame
    health: StationHealth | None
    location: dict[str, Any] | None = None

    @property
    def qod(self) -> float | None:
        return self.health.qod if self.health else None

    @property
    def location_quality(self) -> float | None:
        return self.health.location_quality if self.health else None

    @property
    def location_reason(self) -> str | None:
        return self.health.location_reason if self.health else None


@dataclass(frozen=True)
class LatestObservation:
    """The newest observation: vendor fields as sent, plus `observed_at` parsed to UTC."""

    station_id: str
    observed_at: dt.datetime
    observation: dict[str, Any]
    health: StationHealth | None
    location: dict[str, Any] | None


# -- pure parsing ---------------------------------------------------------------------------------
# A bad answer is refused with a TypeError/ValueError of one line naming the field (request_json makes it a
# VendorResponseError): a wrong type let through would fail later, in the COPY of a whole run's rows.


def _number(value: Any, name: str, finite: bool = True) -> float | None:
    """A JSON number as a float, None for null. Refused: a bool, a string, an integer beyond the float
    range and, unless `finite` is False, NaN or infinity."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} {value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} is an integer of {len(str(abs(value)))} digits, beyond the float range") from None
    if finite and not math.isfinite(number):
        raise ValueError(f"{name} {number} is not a finite number")
    return number


def _object(value: Any, name: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise TypeError(f"{name} is {type(value).__name__}, expected an object")


def parse_station(item: Any) -> Station:
    if not isinstance(item, dict):
        raise TypeError(f"station entry is {type(item).__name__}, expected an object")
    raw_id = item.get("id")
    if not raw_id or isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise ValueError(f"station has no usable id ({raw_id!r})")
    station_id = parse_text(str(raw_id), "station id")
    where = f"station {station_id!r}"
    location = _object(item.get("location"), f"{where} location")
    if location is None:
        raise ValueError(f"{where} has no location object")
    lat = _number(location.get("lat"), f"{where} location.lat")
    lon = _number(location.get("lon"), f"{where} location.lon")
    if lat is None or lon is None:
        raise ValueError(f"{where} lacks location.lat or location.lon")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"{where} location.lat {lat} / location.lon {lon} is outside -90..90 / -180..180")
    cell_key = "cellId" if item.get("cellId") else "cellIndex"
    return Station(
        id=station_id,
        name=parse_text(item.get("name"), f"{where} name"),
        cell_id=parse_text(item.get(cell_key), f"{where} {cell_key}"),
        lat=lat,
        lon=lon,
        elevation=_number(location.get("elevation"), f"{where} location.elevation"),
        qod=_number(item.get("lastDayQod"), f"{where} lastDayQod"),
        created_at=parse_timestamp(item.get("createdAt"), f"{where} createdAt"),
    )


def parse_stations(payload: Any) -> list[Station]:
    """A station list, live envelope `{"stations": [...]}` or the reference schema's bare array."""
    items = payload.get("stations") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ValueError("expected a JSON array of stations or an object with a 'stations' array")
    return [parse_station(item) for item in items]


def parse_health(station_id: str, health: Any) -> StationHealth | None:
    """`{timestamp, data_quality: {score}, location_quality: {score, reason}}`; None when absent."""
    if health is None:
        return None
    if not isinstance(health, dict):
        raise TypeError(f"health is {type(health).__name__}, expected an object")
    data_quality = _object(health.get("data_quality"), "health.data_quality") or {}
    location_quality = _object(health.get("location_quality"), "health.location_quality") or {}
    return StationHealth(
        station_id=station_id,
        timestamp=parse_timestamp(health.get("timestamp"), "health.timestamp"),
        qod=_number(data_quality.get("score"), "health.data_quality.score"),
        location_quality=_number(location_quality.get("score"), "health.location_quality.score"),
        location_reason=parse_text(location_quality.get("reason"), "health.location_quality.reason"),
    )


def _observed_at(value: Any, where: str) -> tuple[dt.datetime, int]:
    """An observation's time in UTC and the offset it was sent in, in whole minutes (none sent: UTC, 0)."""
    observed_at = parse_timestamp(value, f"{where} timestamp")
    if observed_at is None:
        raise ValueError(f"{where} has no timestamp")
    offset = dt.datetime.fromisoformat(value).utcoffset() or dt.timedelta(0)
    if offset % dt.timedelta(minutes=1):
        raise ValueError(f"{where} timestamp {value!r} has an offset with seconds, not whole minutes")
    return observed_at, offset // dt.timedelta(minutes=1)


def observations_frame(station_id: str, observations: Any) -> pd.DataFrame:
    """Observations as a frame with OBSERVATION_COLUMNS: `ts` UTC, the sender's offset kept in minutes,
    numbers as sent (null or absent: NaN; an infinite reading is kept, defs/weather/quality.py masks it)."""
    if not isinstance(observations, list):
        raise TypeError(f"observations is {type(observations).__name__}, expected an array")
    stamps, offsets = [], []
    values: dict[str, list] = {name: [] for name in (*MEASUREMENTS, "icon")}
    for index, row in enumerate(observations):
        where = f"observation {index}"
        if not isinstance(row, dict):
            raise TypeError(f"{where} is {type(row).__name__}, expected an object")
        observed_at, offset = _observed_at(row.get("timestamp"), where)
        stamps.append(observed_at)
        offsets.append(offset)
        for name in MEASUREMENTS:
            values[name].append(_number(row.get(name), f"{where} {name}", finite=False))
        values["icon"].append(parse_text(row.get("icon"), f"{where} icon"))
    frame = pd.DataFrame(
        {
            "station_id": pd.Series([station_id] * len(stamps), dtype=object),
            "ts": pd.Series(stamps, dtype="datetime64[us, UTC]"),
            "utc_offset_minutes": pd.Series(offsets, dtype="int64"),
            **{name: pd.Series(values[name], dtype="float64") for name in MEASUREMENTS},
            "icon": pd.Series(values["icon"], dtype=object),
        },
        columns=list(OBSERVATION_COLUMNS),
    )
    return frame.sort_values("ts", kind="stable", ignore_index=True)


def parse_history(station_id: str, day: dt.date, payload: Any) -> StationHistory:
    if not isinstance(payload, dict):
        raise TypeError(f"history is {type(payload).__name__}, expected an object")
    return StationHistory(
        station_id=station_id,
        day=day,
        observations=observations_frame(station_id, payload.get("observations", [])),
        health=parse_health(station_id, payload.get("health")),
        location=_object(payload.get("location"), "location"),
    )


def parse_latest(station_id: str, payload: Any) -> LatestObservation:
    if not isinstance(payload, dict) or not isinstance(payload.get("observation"), dict):
        raise ValueError("expected an object with an 'observation' object")
    observation = payload["observation"]
    observed_at = parse_timestamp(observation.get("timestamp"), "observation timestamp")
    if observed_at is None:
        raise ValueError("the observation has no timestamp")
    return LatestObservation(
        station_id=station_id,
        observed_at=observed_at,
        observation=observation,
        health=parse_health(station_id, payload.get("health")),
        location=_object(payload.get("location"), "location"),
    )


# -- argument checks ------------------------------------------------------------------------------


def _check_point(lat: float, lon: float) -> None:
    if not -90 <= lat <= 90:
        raise ValueError(f"latitude {lat!r} is outside -90..90")
    if not -180 <= lon <= 180:
        raise ValueError(f"longitude {lon!r} is outside -180..180")


def _station_path(station_id: str, leaf: str) -> str:
    if not isinstance(station_id, str) or not station_id.strip():
        raise ValueError(f"station id {station_id!r} must be a non-empty string")
    return f"/stations/{quote(station_id, safe='')}/{leaf}"


# -- the resource ---------------------------------------------------------------------------------


class WeatherXMResource(VendorResource):
    """Resource key `weatherxm`: WEATHERXM_API_URL, WEATHERXM_API_KEY."""

    vendor = "weatherxm"  # error bodies carry `message`, the base's first choice

    api_url: str = Field(default="https://pro.weatherxm.com/api/v1", description="WEATHERXM_API_URL")
    api_key: str = Field(repr=False, description="WEATHERXM_API_KEY, sent as X-API-KEY")

    def _auth_headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.api_key}

    def stations_near(self, lat: float, lon: float, radius_m: float) -> list[Station]:
        _check_point(lat, lon)
        if not radius_m > 0:
            raise ValueError(f"radius_m {radius_m!r} must be positive (metres)")
        params = {"lat": lat, "lon": lon, "radius": radius_m}
        return self._client.request_json("GET", "/stations/near", params=params, parse=parse_stations)

    def stations_in_bounds(self, min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> list[Station]:
        _check_point(min_lat, min_lon)
        _check_point(max_lat, max_lon)
        if min_lat >= max_lat or min_lon >= max_lon:
            raise ValueError(
                f"bounds ({min_lat}, {min_lon}) .. ({max_lat}, {max_lon}) need min_lat < max_lat and min_lon < max_lon"
            )
        params = {"min_lat": min_lat, "min_lon": min_lon, "max_lat": max_lat, "max_lon": max_lon}
        return self._client.request_json("GET", "/stations/bounds", params=params, parse=parse_stations)

    def stations_in_cell(self, h3_index: str) -> list[Station]:
        import h3  # imported on use: the definitions load without it

        if not isinstance(h3_index, str) or not h3.is_valid_cell(h3_index):
            raise ValueError(f"{h3_index!r} is not a valid H3 cell index")
        return self._client.request_json("GET", f"/cells/{h3_index}/stations", parse=parse_stations)

    def all_stations(self) -> list[Station]:
        return self._client.request_json("GET", "/stations", parse=parse_stations)

    def latest(self, station_id: str) -> LatestObservation:
        return self._client.request_json(
            "GET", _station_path(station_id, "latest"), parse=lambda payload: parse_latest(station_id, payload)
        )

    def history(self, station_id: str, day: dt.date) -> StationHistory:
        """Observations of one UTC day (the API serves one day per call)."""
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise TypeError(f"day must be a datetime.date (one UTC day), got {day!r}")
        return self._client.request_json(
            "GET",
            _station_path(station_id, "history"),
            params={"date": day.isoformat()},
            parse=lambda payload: parse_history(station_id, day, payload),
        )

    def health(self, station_id: str) -> StationHealth:
        def parse(payload: Any) -> StationHealth:
            health = parse_health(station_id, payload.get("health") if isinstance(payload, dict) else None)
            if health is None:
                raise ValueError("expected an object with a 'health' object")
            return health

        return self._client.request_json("GET", _station_path(station_id, "health"), parse=parse)
