"""Property-based tests (hypothesis) of the WeatherXM and Spexi answers: a bad payload never gives a traceback.

A valid answer (the sandbox's shapes) is mutated one field at a time (dropped, or replaced by a wrong type,
a huge number, NaN/inf, a string for a number, a wrong or missing time zone, an empty list, nested
garbage) or replaced by arbitrary JSON. Each parser either returns typed values (finite numbers or
explicit gaps, text PostgreSQL can store, timestamps aware in UTC) or refuses with a TypeError/ValueError
of one line naming the bad field, which `VendorClient.request_json` turns into a VendorResponseError.
The integration test serves such bodies (and bytes that are not JSON) over HTTP to the real resources.
"""

import datetime as dt
import functools
import http.server
import json
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from microcrop_assets.resources.http import MESSAGE_LIMIT, VendorError, VendorResponseError
from microcrop_assets.resources.pinata import Pin, UploadedFile, parse_pin, parse_upload
from microcrop_assets.resources.spexi import (
    ORDER_STATUSES,
    Order,
    SpexiResource,
    parse_feature_collection,
    parse_order,
    parse_order_statuses,
)
from microcrop_assets.resources.weatherxm import (
    MEASUREMENTS,
    OBSERVATION_COLUMNS,
    LatestObservation,
    Station,
    StationHealth,
    StationHistory,
    WeatherXMResource,
    parse_health,
    parse_history,
    parse_latest,
    parse_stations,
)

from .fixtures.clients import FAST

DAY = dt.date(2025, 6, 1)

# -- valid answers, in the sandbox's shapes -------------------------------------------------------

HEALTH = {
    "timestamp": "2025-06-02T00:00:00+00:00",
    "data_quality": {"score": 0.97},
    "location_quality": {"score": 1.0, "reason": "LOCATION_NOT_VERIFIED"},
}
LOCATION = {"lat": 0.2821, "lon": 34.7519, "elevation": 1535.0}
OBSERVATION = {
    "timestamp": "2025-06-01T03:00:00+03:00",
    "temperature": 20.5, "feels_like": 20.1, "dew_point": 12.3, "precipitation_rate": 0.0,
    "precipitation_accumulated": 1.25, "humidity": 61.0, "wind_speed": 2.4, "wind_gust": 3.9,
    "wind_direction": 180, "uv_index": 3, "pressure": 1012.4, "solar_irradiance": 412.5, "icon": "partly-cloudy",
}  # fmt: skip
STATION = {
    "id": "5c1f0b9e-2f2a-4c57-9a53-0d9b1c2e3f41",
    "name": "Kakamega Shamba 1",
    "cellId": "877a6e4c8ffffff",
    "lastDayQod": 0.93,
    "createdAt": "2024-03-01T08:00:00Z",
    "location": LOCATION,
}
STATIONS = {"stations": [STATION, {**STATION, "id": "st-2", "createdAt": "2024-03-02T08:00:00-05:00"}]}
REFERENCE_STATIONS = [{**{k: v for k, v in STATION.items() if k != "cellId"}, "cellIndex": "877a6e4c8ffffff"}]
HISTORY = {
    "date": "2025-06-01",
    "health": HEALTH,
    "observations": [
        OBSERVATION,
        {**OBSERVATION, "timestamp": "2025-05-31T23:55:00Z", "temperature": None, "icon": None},
    ],
    "location": LOCATION,
}
LATEST = {"observation": OBSERVATION, "health": HEALTH, "location": LOCATION}
COMPLETED = {
    "order_id": "ord_3f9a2b",
    "status": "completed",
    "plot_id": "KE-KAK-001",
    "bands": ["red", "green", "blue", "nir"],
    "created_at": "2025-06-01T08:00:00+00:00",
    "download_url": "http://127.0.0.1:8000/spexi/orders/ord_3f9a2b/download",
}
FAILED = {"order_id": "ord_77c1d0", "status": "failed", "failure_reason": "cloud cover over the plot"}
ORDER_ANSWERS = {"orders": [COMPLETED, FAILED], "not_found": ["ord_missing"]}
FEATURES = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": "img_1",
            "geometry": {"type": "Point", "coordinates": [34.75, 0.28]},
            "properties": {"plot_id": "KE-KAK-001", "captured_at": "2025-05-20"},
        }
    ],
}

# -- bad values -----------------------------------------------------------------------------------

MISSING = object()  # the mutation that drops the field


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


BAD_TIMESTAMPS = [
    "2025-06-01T00:00:00",  # no offset: read as UTC
    "2025-06-01T00:00:00+25:00",
    "2025-06-01T00:00:00+24:00",
    "2025-06-01T00:00:00+05",  # hours only
    "2025-06-01T00:00:00+05:30:15",  # seconds in the offset
    "2025-06-01T00:00:00 UTC",
    "2025-06-01T00:00:00+05:30[Asia/Kolkata]",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:00:00-01:00",  # after year 9999 in UTC
    "2025-02-30T00:00:00Z",
    "1748736000",
    "",
]
BAD_VALUES = [
    None, True, False, 0, -1, 2**63, 10**400, -(10**400), 1e308, -1e308, math.nan, math.inf, -math.inf,
    "", "abc", "12.5", "NaN", "\ud800", "x" * 10_000, [], {}, [1.5], {"value": 1.5}, _nested(300),
    1748736000, *BAD_TIMESTAMPS,
]  # fmt: skip

# any value json.loads can give: NaN and Infinity literals, integers of hundreds of digits
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
bad_values = st.sampled_from([MISSING, *BAD_VALUES]) | json_values


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value, the value itself first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _mutated(payload: Any, path: tuple, value: Any) -> Any:
    if not path:
        return None if value is MISSING else value
    changed = json.loads(json.dumps(payload))  # a copy sharing nothing: one field changes, not every alias
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    if value is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return changed


@st.composite
def mutations(draw, payload: Any, noun: str) -> tuple[Any, str]:
    """`payload` with one field dropped or replaced, and the word a refusal must name: the field's key
    (an array's key for one of its items), or `noun` for the payload as a whole."""
    path = draw(st.sampled_from(_paths(payload)))
    return _mutated(payload, path, draw(bad_values)), _field(path, noun)


def _field(path: tuple, noun: str = "") -> str:
    keys = [step for step in path if isinstance(step, str)]
    return keys[-1] if keys else noun


def found(parse: Callable[[Any], Any], payload: Any, path: tuple, value: Any) -> tuple:
    """An explicit example, as `cases` draws them: a failure hypothesis found, kept."""
    return parse, _mutated(payload, path, value), _field(path)


def cases(*specs: tuple[Any, str, Callable[[Any], Any]]) -> st.SearchStrategy:
    """(parse, payload, field): the one-field mutations of each valid (payload, noun, parse)."""
    return st.one_of(
        *(mutations(payload, noun).map(lambda drawn, parse=parse: (parse, *drawn)) for payload, noun, parse in specs)
    )


# -- what a parser may return, and how it may refuse ----------------------------------------------


def refuses_clearly(parse: Callable[[Any], Any], payload: Any, field: str) -> Any:
    """`parse(payload)`, or None when it refused with a TypeError/ValueError (the errors `request_json` turns
    into a VendorResponseError) of one line naming `field`. Any other exception fails the test."""
    try:
        return parse(payload)
    except (TypeError, ValueError) as refusal:
        message = str(refusal)
        assert message and "\n" not in message, f"{type(refusal).__name__} over several lines: {message!r}"
        # the singular names an item of an array ("observation 3 ...") as well as the array itself
        assert field.removesuffix("s") in message, f"{type(refusal).__name__}({message!r}) does not name {field!r}"
        return None


def assert_text(value: Any) -> None:
    """None or a str PostgreSQL can store (valid UTF-8: no lone surrogate)."""
    assert value is None or isinstance(value, str), repr(value)
    if value is not None:
        value.encode("utf-8")


def assert_number(value: Any, low: float = -math.inf, high: float = math.inf) -> None:
    """None (a gap) or a finite float within [low, high]."""
    assert value is None or (type(value) is float and math.isfinite(value) and low <= value <= high), repr(value)


def assert_utc(value: Any, optional: bool = False) -> None:
    """An aware datetime in UTC (or None when `optional`)."""
    assert (optional and value is None) or (isinstance(value, dt.datetime) and value.tzinfo == dt.UTC), repr(value)


def assert_station(station: Any) -> None:
    assert isinstance(station, Station)
    assert station.id and isinstance(station.id, str)
    for text in (station.id, station.name, station.cell_id):
        assert_text(text)
    assert station.lat is not None and station.lon is not None
    assert_number(station.lat, -90, 90)
    assert_number(station.lon, -180, 180)
    assert_number(station.elevation)
    assert_number(station.qod)
    assert_utc(station.created_at, optional=True)


def assert_health(health: Any, station_id: str) -> None:
    if health is None:
        return
    assert isinstance(health, StationHealth) and health.station_id == station_id
    assert_utc(health.timestamp, optional=True)
    assert_number(health.qod)
    assert_number(health.location_quality)
    assert_text(health.location_reason)


def _stamp(value: str) -> tuple[pd.Timestamp, int]:
    """What a timestamp means, by the standard library: the UTC instant and the sender's offset in minutes."""
    local = dt.datetime.fromisoformat(value)
    aware = local if local.tzinfo else local.replace(tzinfo=dt.UTC)
    return pd.Timestamp(aware.astimezone(dt.UTC)), int(aware.utcoffset().total_seconds() // 60)


def assert_observations(frame: Any, station_id: str, observations: list[dict]) -> None:
    """Every observation, sorted by UTC time, with the offset it was sent in and its numbers as sent
    (null or absent: NaN; an infinite reading is kept, `defs/weather/quality.py` masks it)."""
    assert isinstance(frame, pd.DataFrame) and tuple(frame.columns) == OBSERVATION_COLUMNS
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]" and frame["ts"].is_monotonic_increasing
    assert frame["utc_offset_minutes"].dtype == "int64"
    assert (frame["station_id"] == station_id).all()
    rows = sorted(observations, key=lambda row: _stamp(row["timestamp"])[0])  # stable, like the parser
    assert [_stamp(row["timestamp"]) for row in rows] == list(
        zip(frame["ts"], frame["utc_offset_minutes"], strict=True)
    )
    for name in MEASUREMENTS:
        assert frame[name].dtype == "float64"
        assert all(row.get(name) is None or type(row[name]) in (int, float) for row in rows), name
        sent = [math.nan if row.get(name) is None else float(row[name]) for row in rows]
        assert np.array_equal(frame[name].to_numpy(), np.array(sent, dtype=float), equal_nan=True), name
    for icon in frame["icon"]:
        assert_text(icon)


def assert_order(order: Any) -> None:
    assert isinstance(order, Order) and order.order_id and isinstance(order.order_id, str)
    assert order.status in ORDER_STATUSES and isinstance(order.details, dict)
    assert_text(order.order_id)
    assert_text(order.download_url)
    assert_text(order.details.get("failure_reason"))  # stored as the order's error text (defs/imagery/orders.py)


def assert_parsed(result: Any, payload: Any) -> None:
    """What each parser returned is typed as the pipeline needs it."""
    if isinstance(result, list):  # parse_stations
        assert len(result) == len(payload["stations"] if isinstance(payload, dict) else payload)
        for station in result:
            assert_station(station)
    elif isinstance(result, StationHistory):
        assert result.day == DAY
        assert_observations(result.observations, "st-1", payload.get("observations", []))
        assert_health(result.health, "st-1")
        assert result.location is None or isinstance(result.location, dict)
    elif isinstance(result, LatestObservation):
        assert isinstance(result.observation, dict)
        assert_utc(result.observed_at)
        assert_health(result.health, "st-1")
        assert result.location is None or isinstance(result.location, dict)
    elif isinstance(result, StationHealth):
        assert_health(result, "st-1")
    elif isinstance(result, Order):
        assert_order(result)
    elif isinstance(result, Pin | UploadedFile):
        assert isinstance(result.size, int) and result.size >= 0 and isinstance(result.cid, str)
        assert_utc(result.timestamp if isinstance(result, Pin) else result.created_at, optional=True)
    elif isinstance(result, dict) and result.get("type") == "FeatureCollection":
        assert isinstance(result["features"], list)
    elif isinstance(result, dict):  # parse_order_statuses
        for order_id, order in result.items():
            assert_order(order)
            assert order.order_id == order_id
    else:
        assert result is None, repr(result)  # refused, or parse_health of an absent health


def _history(payload: Any) -> StationHistory:
    return parse_history("st-1", DAY, payload)


def _latest(payload: Any) -> LatestObservation:
    return parse_latest("st-1", payload)


def _health(payload: Any) -> StationHealth | None:
    return parse_health("st-1", payload)


# -- the parsers, one field at a time -------------------------------------------------------------


@pytest.mark.unit
@settings(max_examples=300)
@given(case=cases((STATIONS, "station", parse_stations), (REFERENCE_STATIONS, "station", parse_stations)))
# failures found and fixed: an OverflowError, a latitude of 9.2e18 and a name of True let through, a refusal
# not naming createdAt, an OverflowError for a time before year 1 in UTC
@example(case=found(parse_stations, STATIONS, ("stations", 0, "location", "lat"), 10**400))
@example(case=found(parse_stations, STATIONS, ("stations", 0, "location", "lat"), 2**63))
@example(case=found(parse_stations, STATIONS, ("stations", 0, "name"), True))
@example(case=found(parse_stations, STATIONS, ("stations", 0, "createdAt"), True))
@example(case=found(parse_stations, STATIONS, ("stations", 0, "createdAt"), "0001-01-01T00:00:00+01:00"))
def test_station_lists_parse_to_typed_stations_or_refuse_naming_the_field(case):
    parse, payload, field = case
    assert_parsed(refuses_clearly(parse, payload, field), payload)


@pytest.mark.unit
@settings(max_examples=400)
@given(case=cases((HISTORY, "history", _history)))
# failures found and fixed: pandas errors not naming the field (one over several lines), an OverflowError,
# True read as 1.0, an empty timestamp as NaT, text PostgreSQL cannot store, an AttributeError
@example(case=found(_history, HISTORY, ("observations", 0, "temperature"), 10**400))
@example(case=found(_history, HISTORY, ("observations", 0, "temperature"), [1.5]))
@example(case=found(_history, HISTORY, ("observations", 0, "temperature"), "abc"))
@example(case=found(_history, HISTORY, ("observations", 0, "temperature"), True))
@example(case=found(_history, HISTORY, ("observations", 0, "timestamp"), ""))
@example(case=found(_history, HISTORY, ("observations", 0, "timestamp"), "a"))
@example(case=found(_history, HISTORY, ("observations", 0), 1.5))
@example(case=found(_history, HISTORY, ("observations", 0), "\ud800"))
@example(case=found(_history, HISTORY, ("health", "location_quality"), True))
@example(case=found(_history, HISTORY, ("health", "location_quality", "reason"), True))
@example(case=found(_history, HISTORY, ("health", "location_quality", "reason"), "\ud800"))
def test_a_history_parses_to_utc_rows_as_sent_or_refuses_naming_the_field(case):
    parse, payload, field = case
    assert_parsed(refuses_clearly(parse, payload, field), payload)


@pytest.mark.unit
@settings(max_examples=300)
@given(case=cases((LATEST, "observation", _latest), (HEALTH, "health", _health)))
# failures found and fixed: an AttributeError, a refusal not naming the timestamp
@example(case=found(_health, HEALTH, ("data_quality",), True))
@example(case=found(_latest, LATEST, ("observation", "timestamp"), "abc"))
def test_latest_and_health_parse_to_typed_values_or_refuse_naming_the_field(case):
    parse, payload, field = case
    assert_parsed(refuses_clearly(parse, payload, field), payload)


@pytest.mark.unit
@settings(max_examples=300)
@given(
    case=cases(
        (COMPLETED, "order", parse_order),
        (FAILED, "order", parse_order),
        (ORDER_ANSWERS, "orders", parse_order_statuses),
        (FEATURES, "FeatureCollection", parse_feature_collection),
    )
)
# failures found and fixed: a download_url of True let through, a refusal not naming the bad type
@example(case=found(parse_order, COMPLETED, ("download_url",), True))
@example(case=found(parse_feature_collection, FEATURES, ("type",), None))
def test_spexi_answers_parse_to_typed_orders_or_refuse_naming_the_field(case):
    parse, payload, field = case
    assert_parsed(refuses_clearly(parse, payload, field), payload)


PARSERS = (
    parse_stations,
    _history,
    _latest,
    _health,
    parse_order,
    parse_order_statuses,
    parse_feature_collection,
    parse_pin,
    functools.partial(parse_upload, network="public"),
)


@pytest.mark.unit
@settings(max_examples=200)
@given(payload=json_values | st.sampled_from(BAD_VALUES))
# found and fixed: Pinata's pin size taken with int() (inf: OverflowError; missing: KeyError)
@example(payload={"IpfsHash": "bafkreib", "PinSize": math.inf})
@example(payload={"IpfsHash": "bafkreib"})
@example(payload={"data": {"id": "f1", "cid": "bafkreib", "size": 1.5}})
def test_any_json_is_parsed_or_refused_by_every_parser(payload):
    for parse in PARSERS:
        # nothing but a one-line TypeError/ValueError; no field to name in arbitrary JSON
        assert_parsed(refuses_clearly(parse, payload, ""), payload)


# -- time zones -----------------------------------------------------------------------------------

OFFSET_STYLES = ("+HH:MM", "+HHMM", "+HH", "Z", "none")


@pytest.mark.unit
@settings(max_examples=200)
@given(
    local=st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 12, 30)),
    minutes=st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
    style=st.sampled_from(OFFSET_STYLES),
)
@example(local=dt.datetime(2025, 6, 1), minutes=300, style="+HH")  # found and fixed: offset 0 stored for "+05"
def test_timestamps_in_any_offset_style_are_utc_with_the_sent_offset(local, minutes, style):
    if style in ("Z", "none"):
        minutes = 0
    elif style == "+HH":
        minutes = int(minutes / 60) * 60
    sign, hours, rest = "-" if minutes < 0 else "+", abs(minutes) // 60, abs(minutes) % 60
    suffix = {
        "+HH:MM": f"{sign}{hours:02d}:{rest:02d}",
        "+HHMM": f"{sign}{hours:02d}{rest:02d}",
        "+HH": f"{sign}{hours:02d}",
        "Z": "Z",
        "none": "",  # no offset: read as UTC
    }[style]
    stamp = local.isoformat() + suffix
    expected = local.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))).astimezone(dt.UTC)

    frame = _history({"observations": [{"timestamp": stamp, "temperature": 21.0}]}).observations
    assert frame["ts"].tolist() == [pd.Timestamp(expected)] and str(frame["ts"].dt.tz) == "UTC"
    assert frame["utc_offset_minutes"].tolist() == [minutes]
    latest = _latest({"observation": {"timestamp": stamp}})
    assert latest.observed_at == expected and latest.observed_at.tzinfo == dt.UTC
    [station] = parse_stations([{**STATION, "createdAt": stamp}])
    assert station.created_at == expected and station.created_at.tzinfo == dt.UTC


# -- over HTTP: the real resources and VendorClient ----------------------------------------------


class JsonServer:
    """Answers every request with 200 and `body` as application/json."""

    def __init__(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.body = b"{}"
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    running = JsonServer()
    yield running
    running.close()


@pytest.fixture(scope="module")
def clients(server, redis_resource) -> tuple[WeatherXMResource, SpexiResource]:
    """Both resources pointed at `server`, one attempt per call (a body that is not JSON would come back)."""
    settings = {"api_url": server.url, "api_key": "properties-key", "redis": redis_resource, **FAST, "max_attempts": 1}
    return WeatherXMResource(**settings), SpexiResource(**settings, order_statuses_path="/orders/statuses")


PLOT = {"plot_id": "KE-KAK-001", "latitude": 0.2382, "longitude": 34.667, "area_hectares": 1.5}
CALLS = [
    ("weatherxm", "GET", "/stations", lambda w, s: w.all_stations()),
    ("weatherxm", "GET", "/stations/st-1/history?date=2025-06-01", lambda w, s: w.history("st-1", DAY)),
    ("weatherxm", "GET", "/stations/st-1/latest", lambda w, s: w.latest("st-1")),
    ("weatherxm", "GET", "/stations/st-1/health", lambda w, s: w.health("st-1")),
    ("spexi", "GET", "/orders/ord_1", lambda w, s: s.order_status("ord_1")),
    ("spexi", "POST", "/orders", lambda w, s: s.create_order(**PLOT, resolution_meters=0.5)),
    ("spexi", "DELETE", "/orders/ord_1", lambda w, s: s.cancel_order("ord_1")),
    ("spexi", "GET", "/image?p=34.75,0.28,100", lambda w, s: s.search_images(point=(34.75, 0.28, 100))),
]
BASES = [STATIONS, REFERENCE_STATIONS, HISTORY, LATEST, {"health": HEALTH}, COMPLETED, ORDER_ANSWERS, FEATURES]
bodies = (
    st.sampled_from(BASES).flatmap(lambda base: mutations(base, "")).map(lambda m: json.dumps(m[0]).encode())
    | (json_values | st.sampled_from(BAD_VALUES)).map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=40)
)


def assert_vendor_error(error: BaseException, vendor: str, method: str, url: str) -> None:
    """One line naming the vendor, the method and the endpoint, with a bounded vendor message."""
    assert isinstance(error, VendorResponseError), repr(error)
    text = str(error)
    assert "\n" not in text and text.startswith(f"{vendor} {method} {url}"), text
    assert error.status == 200 and len(error.message) <= MESSAGE_LIMIT, error.message


@pytest.mark.integration
@settings(max_examples=60)
@given(body=bodies)
# failures found and fixed: a RecursionError, a message of 100 kB, a message over several lines
@example(body=b"[" * 100_000)  # deeper than the JSON decoder recurses
@example(body=json.dumps({"stations": [{"id": "x" * 100_000}]}).encode())  # refused, naming the id
@example(body=json.dumps(_mutated(HISTORY, ("observations", 0, "timestamp"), "a")).encode())
@example(body=json.dumps({"order_id": "ord\n1", "status": "lost"}).encode())  # a newline in the text refused
def test_bad_answers_over_http_are_one_line_vendor_errors(body, server, clients):
    server.body = body
    weatherxm, spexi = clients
    for vendor, method, path, call in CALLS:
        try:
            call(weatherxm, spexi)
        except VendorError as error:
            assert_vendor_error(error, vendor, method, server.url + path)
    # the bulk status call: a bad answer marks every order of the batch with the error, never raises
    for answer in spexi.order_statuses(["ord_3f9a2b", "ord_1"]).values():
        if isinstance(answer, Order):
            assert_order(answer)
        elif isinstance(answer, VendorResponseError):
            assert_vendor_error(answer, "spexi", "POST", server.url + "/orders/statuses")
