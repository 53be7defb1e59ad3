"""The shared vendor client: pure helpers, then retries, faults and secrets over real HTTP."""

import datetime as dt
import email.utils
import logging
import pickle
import random
import traceback
import uuid

import httpx
import pytest

from microcrop_assets.resources.http import (
    REDACTED,
    VendorAuthError,
    VendorError,
    VendorNotFound,
    VendorRateLimited,
    VendorRequestError,
    VendorResponseError,
    VendorUnavailable,
    backoff_delay,
    error_for_status,
    may_have_acted,
    parse_retry_after,
    redact,
    register_secret,
    safe_url,
    vendor_message,
)
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.resources.weatherxm import WeatherXMResource, parse_stations
from microcrop_assets.sandbox.embedded import running_sandbox

from .conftest import REDIS_URL
from .fixtures.clients import FAST, pinata, retries, spexi, weatherxm

# -- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_retry_after_in_seconds_or_http_date():
    now = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
    in_ten = email.utils.format_datetime(now + dt.timedelta(seconds=10), usegmt=True)
    past = email.utils.format_datetime(now - dt.timedelta(hours=1), usegmt=True)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(in_ten, now=now) == pytest.approx(10.0)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None and parse_retry_after("") is None


@pytest.mark.unit
def test_backoff_is_full_jitter_under_an_exponential_cap():
    rng = random.Random(7)
    first = [backoff_delay(1, base=0.5, cap=30, rng=rng) for _ in range(500)]
    fifth = [backoff_delay(5, base=0.5, cap=30, rng=rng) for _ in range(500)]
    tenth = [backoff_delay(10, base=0.5, cap=30, rng=rng) for _ in range(500)]
    assert all(0 <= d <= 0.5 for d in first) and min(first) < 0.05  # full jitter reaches down to zero
    assert all(0 <= d <= 8.0 for d in fifth) and max(fifth) > 4.0  # the window doubles per attempt
    assert all(0 <= d <= 30 for d in tenth) and max(tenth) > 20  # and is capped


@pytest.mark.unit
def test_safe_url_drops_user_info_and_credential_parameters():
    url = "https://user:pw@api.example.com/v1/files?cid=bafy&api_key=k123&X-Amz-Signature=abc&page=2"
    shown = safe_url(url)
    assert shown.startswith("https://api.example.com/v1/files?")
    assert "pw" not in shown and "k123" not in shown and "abc" not in shown
    assert "cid=bafy" in shown and "page=2" in shown and f"api_key={REDACTED}" in shown


@pytest.mark.unit
def test_redact_scrubs_registered_secrets_and_bearer_tokens():
    register_secret("unit-test-secret-9f2c")
    text = redact("key unit-test-secret-9f2c rejected; Authorization: Bearer eyJhbGciOi.abc.def")
    assert "unit-test-secret-9f2c" not in text and "eyJhbGciOi" not in text
    assert text.count(REDACTED) == 2


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "keys", "expected"),
    [
        (b'{"message": "Station not found"}', ("message", "error"), "Station not found"),
        (b'{"error": "Invalid authentication"}', ("error", "message"), "Invalid authentication"),
        (
            b'{"error": {"reason": "INVALID_CREDENTIALS", "details": "Invalid API key"}}',
            ("error", "message"),
            "INVALID_CREDENTIALS: Invalid API key",
        ),
        (b'{"error": {"code": 401, "message": "Unauthorized"}}', ("error",), "401: Unauthorized"),
        (b'{"error": [{"reason": "A"}, "B"]}', ("error",), "A; B"),
        (b"<html>Bad Gateway</html>", ("message",), "<html>Bad Gateway</html>"),
        (b"", ("message",), "(empty body)"),
    ],
)
def test_vendor_message_from_every_error_shape(body, keys, expected):
    assert vendor_message(body, keys) == expected


@pytest.mark.unit
def test_vendor_message_is_truncated():
    message = vendor_message(b'{"message": "' + b"x" * 5000 + b'"}', ("message",))
    assert len(message) == 300 and message.endswith("…")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, VendorRequestError),
        (401, VendorAuthError),
        (403, VendorAuthError),
        (404, VendorNotFound),
        (429, VendorRateLimited),
        (500, VendorUnavailable),
        (503, VendorUnavailable),
    ],
)
def test_status_maps_to_typed_error(status, kind):
    error = error_for_status("weatherxm", status, "nope", "GET", "https://x.test/stations?token=t0ps3cret")
    assert type(error) is kind and isinstance(error, VendorError)
    assert error.status == status and error.vendor == "weatherxm"
    assert "t0ps3cret" not in str(error) and f"HTTP {status}" in str(error) and "nope" in str(error)


@pytest.mark.unit
def test_vendor_error_survives_pickling():
    error = VendorNotFound("weatherxm", 404, "Station not found", "GET", "https://x.test/stations/abc/latest")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is VendorNotFound and str(copy) == str(error) and copy.status == 404
    unsent = VendorUnavailable("spexi", None, "ConnectError: refused", "POST", "https://x.test/orders", sent=False)
    lost = VendorUnavailable("spexi", None, "ReadTimeout: timed out", "POST", "https://x.test/orders")
    assert not pickle.loads(pickle.dumps(unsent)).may_have_acted
    assert pickle.loads(pickle.dumps(lost)).may_have_acted


@pytest.mark.unit
@pytest.mark.parametrize(
    ("status", "sent", "acted"),
    [
        (None, False, False),  # never left this process: connect error or timeout, pool timeout, no token
        (None, True, True),  # sent, no answer: read/write timeout, connection dropped
        (400, True, False),
        (401, True, False),
        (403, True, False),
        (404, True, False),
        (409, True, False),
        (422, True, False),
        (429, True, False),
        (503, True, False),
        (500, True, True),
        (501, True, True),
        (502, True, True),
        (504, True, True),
        (303, True, True),  # a redirect after a POST: commonly "done, see there"
        (200, True, True),  # a 2xx whose body is unusable
        (201, True, True),
    ],
)
def test_may_have_acted_by_status_and_whether_the_request_was_sent(status, sent, acted):
    assert may_have_acted(status, sent) is acted
    error = VendorError("spexi", status, "failed", "POST", "https://x.test/orders", sent=sent)
    assert error.may_have_acted is acted
    if status is not None and status >= 400:
        assert error_for_status("spexi", status, "failed", "POST", "https://x.test/orders").may_have_acted is acted


@pytest.mark.unit
def test_log_filter_scrubs_secrets_from_records(caplog):
    register_secret("log-filter-secret-77aa")
    with caplog.at_level(logging.DEBUG, logger="microcrop.vendors"):
        logging.getLogger("microcrop.vendors").warning("sent %s to %s", "log-filter-secret-77aa", "pinata")
    assert "log-filter-secret-77aa" not in caplog.text and f"sent {REDACTED} to pinata" in caplog.text


# -- retries, faults and secrets over real HTTP ---------------------------------------------------


@pytest.fixture(scope="module")
def sandbox():
    with running_sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults(request):
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").clear_faults()


WEATHERXM_ONLY = ("/weatherxm/",)


@pytest.mark.integration
def test_rides_through_5xx_and_gives_up_after_max_attempts(sandbox, redis_resource, caplog):
    client = weatherxm(sandbox, redis_resource, max_attempts=3)
    sandbox.set_faults(fail_next=2, fail_next_status=502, paths=WEATHERXM_ONLY)
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"):
        assert len(client.all_stations()) == sandbox.config.station_count
    assert [r.status for r in retries(caplog.records)] == [502, 502]

    # four failures queued: three attempts use three of them, so exactly one is left afterwards
    sandbox.set_faults(fail_next=4, fail_next_status=500, paths=WEATHERXM_ONLY)
    with pytest.raises(VendorUnavailable) as caught:
        client.all_stations()
    assert caught.value.status == 500 and "Internal Server Error" in caught.value.message
    with pytest.raises(VendorUnavailable):
        weatherxm(sandbox, redis_resource, max_attempts=1).all_stations()  # the fourth failure
    assert len(weatherxm(sandbox, redis_resource, max_attempts=1).all_stations()) == sandbox.config.station_count


@pytest.mark.integration
def test_429_waits_for_retry_after_capped(sandbox, redis_resource, caplog):
    # Retry-After: 1 s, capped at 0.01 s; without it the jitter would be at most 0.002 s
    client = weatherxm(sandbox, redis_resource, max_attempts=3, retry_after_cap_seconds=0.01)
    sandbox.set_faults(fail_next=2, fail_next_status=429, retry_after_s=1, paths=WEATHERXM_ONLY)
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"):
        assert client.all_stations()
    assert [(r.status, r.retry_in) for r in retries(caplog.records)] == [(429, 0.01), (429, 0.01)]

    sandbox.set_faults(fail_next=3, fail_next_status=429, retry_after_s=1, paths=WEATHERXM_ONLY)
    with pytest.raises(VendorRateLimited) as caught:
        client.all_stations()
    assert caught.value.status == 429


@pytest.mark.integration
def test_rides_through_a_share_of_5xx_and_429(sandbox, redis_resource, caplog):
    client = weatherxm(sandbox, redis_resource, max_attempts=8)
    sandbox.set_faults(share_5xx=0.3, share_429=0.2, retry_after_s=0, paths=WEATHERXM_ONLY)
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"):
        answers = [client.stations_near(0.3, 34.8, 50_000) for _ in range(8)]
    assert all(answer == answers[0] for answer in answers)
    statuses = {r.status for r in retries(caplog.records)}
    assert 429 in statuses and statuses & {500, 502, 503}  # both kinds were injected and survived


@pytest.mark.integration
def test_latency_within_the_timeout_is_ridden_out_beyond_it_is_unavailable(sandbox, redis_resource):
    sandbox.set_faults(latency_ms=300, paths=WEATHERXM_ONLY)
    assert weatherxm(sandbox, redis_resource, read_timeout_seconds=5).all_stations()
    with pytest.raises(VendorUnavailable) as caught:
        weatherxm(sandbox, redis_resource, read_timeout_seconds=0.05, max_attempts=2).all_stations()
    assert caught.value.status is None and "ReadTimeout" in caught.value.message
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


@pytest.mark.integration
def test_unexpected_shape_names_the_endpoint(sandbox, redis_resource):
    client = weatherxm(sandbox, redis_resource)
    station = client.all_stations()[0]
    with pytest.raises(VendorResponseError) as caught:  # a health answer read as a station list
        client._client.request_json("GET", f"/stations/{station.id}/health", parse=parse_stations)
    assert "unexpected response shape" in caught.value.message and f"/stations/{station.id}/health" in caught.value.url


@pytest.mark.integration
def test_connection_refused_is_unavailable_after_retries(redis_resource, caplog):
    client = WeatherXMResource(api_url="http://127.0.0.1:9/api", api_key="k-refused", redis=redis_resource, **FAST)
    with caplog.at_level(logging.WARNING, logger="microcrop.vendors"), pytest.raises(VendorUnavailable) as caught:
        client.all_stations()
    assert caught.value.status is None and isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(retries(caplog.records)) == FAST["max_attempts"] - 1


@pytest.mark.integration
def test_post_is_not_repeated_after_a_500_but_is_after_a_503(sandbox, redis_resource):
    client = spexi(sandbox, redis_resource)
    order = {"plot_id": "KE-KAK-001", "latitude": 0.2382, "longitude": 34.667, "area_hectares": 1.5,
             "resolution_meters": 2.0}  # fmt: skip
    sandbox.set_faults(fail_next=2, fail_next_status=500, paths=("/spexi/",))
    with pytest.raises(VendorUnavailable):
        client.create_order(**order)  # the server may have created it: no second POST
    with pytest.raises(VendorUnavailable):
        client.create_order(**order)  # so the second failure is still queued for this call
    sandbox.set_faults(fail_next=2, fail_next_status=503, paths=("/spexi/",))
    assert client.create_order(**order).status == "pending"  # 503: not processed, safe to repeat


def spexi_on(redis: RedisResource, transport: httpx.BaseTransport) -> SpexiResource:
    """A Spexi client whose requests go to `transport` instead of the network."""
    client = SpexiResource(api_url="https://spexi.test/api/v1", api_key="k-transport", redis=redis, **FAST)
    client._client.http.close()
    client._client.http = httpx.Client(transport=transport)
    return client


@pytest.mark.integration
@pytest.mark.parametrize(
    ("failure", "acted"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.UnsupportedProtocol, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.ReadError, True),
        (httpx.WriteError, True),
        (httpx.RemoteProtocolError, True),
    ],
)
def test_a_transport_failure_says_whether_the_request_left(redis_resource, failure, acted):
    # httpx raises these from the transport; one stands in for the network to raise each class at will
    attempts = []

    def transport(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise failure("injected", request=request)

    client = spexi_on(redis_resource, httpx.MockTransport(transport))
    with pytest.raises(VendorUnavailable) as caught:
        client.create_order("KE-KAK-001", 0.2382, 34.667, 1.5, 2.0)
    assert caught.value.status is None and caught.value.may_have_acted is acted
    # the same rule decides the retry: a POST is repeated only when the vendor cannot have seen it
    assert len(attempts) == (1 if acted else FAST["max_attempts"])


@pytest.mark.integration
def test_credentials_go_to_the_vendor_origin_only(sandbox, redis_resource):
    # same server, other origin (localhost vs 127.0.0.1): the key must not travel, so the call is refused
    client = weatherxm(sandbox, redis_resource)
    other_origin = sandbox.weatherxm_url.replace("127.0.0.1", "localhost") + "/stations"
    with pytest.raises(VendorAuthError) as caught:
        client._client.request_json("GET", other_origin)
    assert "Missing API key" in caught.value.message
    assert client._client.request_json("GET", sandbox.weatherxm_url + "/stations")["stations"]


@pytest.mark.integration
def test_rate_limit_is_shared_by_two_clients_on_one_redis(sandbox):
    redis = RedisResource(url=REDIS_URL, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    first, second = (
        weatherxm(sandbox, redis, rate_limit_per_minute=4, rate_limit_timeout_seconds=0.5) for _ in range(2)
    )
    assert first._client is not second._client
    for client in (first, second, first, second):
        client.all_stations()
    # four grants used the whole bucket (4 a minute): a fifth call from either client is refused
    assert redis.rate_limiter("weatherxm", 4).try_acquire() > 0
    with pytest.raises(VendorRateLimited) as caught:
        second.all_stations()
    assert caught.value.status is None and "rate limit" in caught.value.message
    assert not caught.value.may_have_acted  # refused here: the request never left
    assert redis.rate_limiter("spexi", 4).try_acquire() == 0  # other vendors have their own bucket
    redis.client.delete(*redis.client.keys(f"{redis.key_prefix}:*"))


def _chain(error: BaseException) -> list[BaseException]:
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


@pytest.mark.integration
def test_no_credential_in_logs_errors_or_reprs(sandbox, redis_resource, caplog):
    credentials = sandbox.credentials
    wrong = ["wrong-weatherxm-key-5f1e", "wrong-spexi-key-77b2", "wrong.jwt.token-0c9d"]
    secrets = [
        credentials.weatherxm_api_key,
        credentials.spexi_api_key,
        credentials.pinata_jwt,
        credentials.pinata_api_key,
        credentials.pinata_secret_api_key,
        *wrong,
    ]
    clients = [
        weatherxm(sandbox, redis_resource),
        weatherxm(sandbox, redis_resource, api_key=wrong[0]),
        spexi(sandbox, redis_resource),
        spexi(sandbox, redis_resource, api_key=wrong[1]),
        pinata(sandbox, redis_resource),
        pinata(sandbox, redis_resource, jwt=wrong[2]),
        pinata(sandbox, redis_resource, jwt=None, api_key=credentials.pinata_api_key, api_secret="nope-secret-1"),
    ]
    secrets.append("nope-secret-1")
    calls = [
        lambda: clients[0].all_stations(),
        lambda: clients[1].all_stations(),
        lambda: clients[2].order_status("ord_missing"),
        lambda: clients[3].order_status("ord_missing"),
        lambda: clients[4].test_authentication(),
        lambda: clients[5].test_authentication(),
        lambda: clients[6].test_authentication(),
        lambda: clients[0].history("missing-station", dt.date(2025, 6, 1)),
    ]
    errors = []
    with caplog.at_level(logging.DEBUG):
        for call in calls:
            try:
                call()
            except VendorError as error:
                errors.append(error)
        sandbox.set_faults(fail_next=9, fail_next_status=503)  # three calls of three attempts
        for call in (clients[0].all_stations, clients[4].test_authentication, lambda: clients[2].order_status("o")):
            with pytest.raises(VendorUnavailable) as caught:
                call()
            errors.append(caught.value)
        sandbox.set_faults(share_malformed=1.0)
        with pytest.raises(VendorResponseError) as caught:
            clients[4].test_authentication()
        errors.append(caught.value)
        logging.getLogger("microcrop.vendors").exception("pinata failed with %s", clients[5].jwt, exc_info=errors[0])

    assert {type(e) for e in errors} >= {VendorAuthError, VendorNotFound, VendorUnavailable, VendorResponseError}
    texts = [caplog.text]
    texts += [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    for error in errors:
        texts += [str(e) for e in _chain(error)] + [repr(e) for e in _chain(error)]
        texts.append("".join(traceback.format_exception(error)))
    for client in clients:
        texts += [repr(client), str(client), repr(client._client)]
    assert caplog.records and len(texts) > 30
    for text in texts:
        for secret in secrets:
            assert secret not in text
