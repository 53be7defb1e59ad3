"""Shared machinery of the vendor clients (WeatherXM, Spexi, Pinata).

Every call goes through `VendorClient`: a token from the shared Redis rate limit before each attempt,
retries with exponential backoff and full jitter on connection errors, timeouts, 429 and 5xx (honouring
`Retry-After`) and, on calls safe to repeat, on 2xx bodies that are not valid JSON; typed errors carry
the status, the vendor's own message and whether the vendor may have acted on the request (one rule,
`may_have_acted`: a call that is not safe to repeat is never repeated once it may have been).

Every response body is read against a byte limit (`ResponseLimit`, per vendor, from the environment):
a declared Content-Length above it is refused before the body is read, and a streamed body is counted
as it arrives and dropped as soon as the count passes the limit, so a hostile or broken server can
neither exhaust memory nor fill a disk. Error bodies are read only as far as their message needs.

Credentials live only in the resource's config and in the request headers of the vendor's own
origin. Exception text, log records and reprs show URLs with sensitive query values removed, and a
logging filter scrubs every known secret value from messages as a last line of defence.
"""

import datetime as dt
import email.utils
import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, BinaryIO, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dagster as dg
import httpx
from pydantic import Field

from microcrop_assets import settings
from microcrop_assets.resources.redis import RateLimiter, RateLimitTimeout, RedisResource

log = logging.getLogger("microcrop.vendors")

T = TypeVar("T")
REDACTED = "[REDACTED]"
MESSAGE_LIMIT = 300
MiB = 1024 * 1024
# an error body only yields a message of MESSAGE_LIMIT characters: the rest is never read
ERROR_BODY_BYTES = 64 * 1024
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# transport errors raised before the request is written: the vendor cannot have seen it
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# query parameters whose values are credentials (API keys, tokens, pre-signed URL signatures)
_SENSITIVE_QUERY = frozenset(
    {
        "key", "api_key", "apikey", "x-api-key", "token", "access_token", "jwt", "secret", "password",
        "signature", "sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
        "pinatagatewaytoken",
    }
)  # fmt: skip
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")


# -- errors ---------------------------------------------------------------------------------------


def may_have_acted(status: int | None, sent: bool) -> bool:
    """Whether the vendor may have carried out a request that failed: the one rule behind never
    repeating a call that is not safe to repeat, within a call (`VendorClient`) and across runs (the
    satellite order book's `placement_unknown`). When in doubt, yes.

    - not sent (connection refused or timed out, no pooled connection, no rate-limit token): no;
    - sent, no answer (read or write timeout, connection dropped, protocol error): maybe;
    - a 4xx (401/403, 404, 429, validation) or 503: refused before it was processed: no;
    - any other status (other 5xx, a redirect, a 2xx whose body is unusable): maybe, or it did."""
    if not sent:
        return False
    if status is None:
        return True
    return not (400 <= status < 500 or status == 503)


class VendorError(Exception):
    """A vendor call failed. `status` is the HTTP status, None when no response came back; `sent` is
    False when the request never left this process (then `status` is None)."""

    def __init__(self, vendor: str, status: int | None, message: str, method: str, url: str, sent: bool = True):
        self.vendor = vendor
        self.status = status
        self.message = redact(message)
        self.method = method
        self.url = safe_url(url)
        self.sent = sent
        outcome = f"HTTP {status}" if status is not None else "no usable response"
        super().__init__(f"{vendor} {method} {self.url} failed ({outcome}): {self.message}")

    @property
    def may_have_acted(self) -> bool:
        """Whether the vendor may have carried the request out (see `may_have_acted`), judged on the
        attempt that raised it: a call not safe to repeat is repeated only after attempts the vendor
        provably did not act on, so for such a call it speaks for every attempt."""
        return may_have_acted(self.status, self.sent)

    def __reduce__(self):
        return (type(self), (self.vendor, self.status, self.message, self.method, self.url, self.sent))


class VendorAuthError(VendorError):
    """401/403: the credentials are missing, wrong or not allowed this call."""


class VendorNotFound(VendorError):
    """404: the station, order or pin does not exist."""


class VendorRequestError(VendorError):
    """Another 4xx: the vendor rejected the request itself (bad parameters)."""


class VendorRateLimited(VendorError):
    """429 on the last attempt, or no token from the shared rate limit in time (status None)."""


class VendorUnavailable(VendorError):
    """5xx, connection errors, timeouts or truncated bodies, still failing on the last attempt."""


class VendorResponseError(VendorError):
    """A 2xx response whose body is not valid JSON or not the shape the endpoint promises."""


class VendorResponseTooLarge(VendorResponseError):
    """A response body above the call's `ResponseLimit`: refused, never retried (it would be as large again)."""


def error_for_status(vendor: str, status: int, message: str, method: str, url: str) -> VendorError:
    if status in (401, 403):
        kind = VendorAuthError
    elif status == 404:
        kind = VendorNotFound
    elif status == 429:
        kind = VendorRateLimited
    elif status >= 500:
        kind = VendorUnavailable
    else:
        kind = VendorRequestError
    return kind(vendor, status, message, method, url)


# -- secrets --------------------------------------------------------------------------------------

_secrets: tuple[str, ...] = ()  # longest first, so a secret containing another is replaced whole
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a credential so `redact` (and the log filter) scrub it wherever it appears."""
    global _secrets
    if value and value not in _secrets:
        with _secrets_lock:
            _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def redact(text: str) -> str:
    """Replace every registered secret and any bearer token in `text`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(rf"\1 {REDACTED}", text)


def safe_url(url: str | httpx.URL) -> str:
    """The URL without user info and with the values of credential-like query parameters removed."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [(k, REDACTED if k.lower() in _SENSITIVE_QUERY else v) for k, v in parse_qsl(parts.query, True)],
        safe="[],:",
    )
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


class RedactingFilter(logging.Filter):
    """Scrubs registered secrets from a record's message and traceback before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_redaction(names: Iterable[str]) -> None:
    """Attach one RedactingFilter to each named logger (filters do not inherit, so name them all)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(RedactingFilter())


# our logger, and httpx/httpcore which log request URLs and response headers at INFO/DEBUG
install_redaction(
    ["microcrop.vendors", "httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"]
)


# -- pure helpers ---------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or an HTTP date); None if absent/invalid."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def parse_timestamp(value: Any, name: str = "timestamp") -> dt.datetime | None:
    """ISO 8601 to an aware UTC datetime (a missing offset is read as UTC); `name` is the field, for errors."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} {value!r} is not an ISO 8601 string")
    try:
        parsed = dt.datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except (ValueError, OverflowError):  # OverflowError: a time whose UTC falls outside years 1..9999
        raise ValueError(f"{name} {value!r} is not an ISO 8601 time in years 1..9999 (UTC)") from None


def parse_text(value: Any, name: str) -> str | None:
    """A JSON string, None for null. Refused: another type, or text PostgreSQL cannot store (a lone
    surrogate: JSON's "\\ud800" escape decodes to one, and UTF-8 has no encoding for it)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} {value!r} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} {value!r} is not valid Unicode text (a lone surrogate)") from None
    return value


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))] after failed attempt `attempt` (1-based)."""
    return (rng or random).uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


def vendor_message(body: bytes, keys: Iterable[str]) -> str:
    """The vendor's explanation in an error body: the first of `keys` in a JSON object, else the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in keys:
            if payload.get(key) not in (None, "", {}, []):
                return _truncate(_flatten(payload[key]))
    return _truncate(text or "(empty body)")


def _flatten(value: Any) -> str:
    """Error values come as strings, {reason, details} / {code, message} objects or lists of those."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(_flatten(item) for item in value)
    if isinstance(value, dict):
        named = [str(value[k]) for k in ("code", "reason", "message", "details", "detail") if value.get(k)]
        if named:
            return ": ".join(named)
    return json.dumps(value, sort_keys=True, default=str)


def _truncate(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _is_idempotent(method: str, marked: bool | None) -> bool:
    """Whether a call may be repeated: as the client marked it, else by its HTTP method."""
    return method.upper() in _IDEMPOTENT_METHODS if marked is None else marked


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


@dataclass(frozen=True)
class ResponseLimit:
    """The most bytes one call reads from a response body, and the environment variable that sets it."""

    max_bytes: int
    setting: str


@dataclass(frozen=True)
class Download:
    """What a streamed download wrote: byte count, sha256 and the declared content type."""

    size: int
    sha256: str
    content_type: str | None


class _Retryable(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, error: VendorError, delay: float | None = None):
        super().__init__(str(error))
        self.error, self.delay = error, delay


# -- the client -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base: float
    backoff_max: float
    retry_after_cap: float


class VendorClient:
    """httpx with retries, a shared rate limit and typed errors, for one vendor's base URL."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        auth_headers: Mapping[str, str],
        limiter: RateLimiter,
        retry: RetryPolicy,
        connect_timeout: float,
        read_timeout: float,
        rate_limit_timeout: float,
        chunk_size: int,
        error_keys: tuple[str, ...],
        response_limit: ResponseLimit,
    ):
        for value in auth_headers.values():
            register_secret(value)
        self.vendor = vendor
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.limiter = limiter
        self.retry = retry
        self.rate_limit_timeout = rate_limit_timeout
        self.chunk_size = chunk_size
        self.error_keys = error_keys
        self.response_limit = response_limit
        self._auth = dict(auth_headers)
        self.http = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            event_hooks={"request": [self._authorize]},
        )

    def __repr__(self) -> str:
        return f"VendorClient({self.vendor!r}, {safe_url(self.base_url)!r})"

    def close(self) -> None:
        self.http.close()

    def _authorize(self, request: httpx.Request) -> None:
        # credentials go to the vendor's own origin only, also on every redirect hop
        for name, value in self._auth.items():
            if _origin(request.url) == _origin(self.base_url):
                request.headers[name] = value
            else:
                request.headers.pop(name, None)

    def url(self, path: str) -> httpx.URL:
        """`path` under the base URL (absolute URLs pass through, e.g. a gateway or a signed link)."""
        if path.startswith(("http://", "https://")):
            return httpx.URL(path)
        return self.base_url.join(path.lstrip("/"))

    # -- public calls -----------------------------------------------------------------------------

    def request_json(
        self,
        method: str,
        path: str,
        *,
        parse: Callable[[Any], T] = lambda payload: payload,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> T:
        """Send, decode the JSON body and `parse` it; a body that fails either is a VendorResponseError.

        A body that is not valid JSON (cut short, garbled in transit) is retried like a 5xx when the
        call is safe to repeat; after the last attempt, or at once for other calls, it is raised."""
        retry_invalid = _is_idempotent(method, idempotent)

        def handle(response: httpx.Response, shown: str) -> T:
            body = self._read(response, method, shown)
            try:
                payload = json.loads(body)
            except RecursionError:  # nested deeper than the decoder goes: the same body would come again
                raise VendorResponseError(
                    self.vendor, response.status_code, "body nests JSON deeper than it can be decoded", method, shown
                ) from None
            except ValueError:
                start = body[:60].decode("utf-8", "replace")
                error = VendorResponseError(
                    self.vendor, response.status_code, f"body is not valid JSON (starts {start!r})", method, shown
                )
                if retry_invalid:
                    raise _Retryable(error) from None
                raise error from None
            try:
                return parse(payload)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                # one line of bounded length: the value named may be a whole field of the body
                detail = " ".join(f"{type(exc).__name__}: {exc}".split())
                raise VendorResponseError(
                    self.vendor, response.status_code, _truncate(f"unexpected response shape ({detail})"), method, shown
                ) from None

        return self._call(method, path, handle, idempotent, kwargs)

    def request_bytes(self, method: str, path: str, **kwargs: Any) -> bytes:
        """Send and return the whole body (small payloads; use `download` for imagery)."""
        return self._call(method, path, lambda response, shown: self._read(response, method, shown), None, kwargs)

    def download(self, path: str, sink: BinaryIO, limit: ResponseLimit | None = None, **kwargs: Any) -> Download:
        """Stream a GET body into seekable `sink` in chunks; a short body is retried from the start.

        `limit` (default: the client's) caps the body; a body refused for its size leaves `sink` as it
        was before the call."""
        start = sink.tell()

        def handle(response: httpx.Response, shown: str) -> Download:
            sink.seek(start)
            sink.truncate()
            digest, size = hashlib.sha256(), 0
            try:
                for chunk in self._body(response, "GET", shown, limit or self.response_limit, self.chunk_size):
                    sink.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            except VendorResponseTooLarge:
                sink.seek(start)
                sink.truncate()  # nothing partial stays behind
                raise
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and response.num_bytes_downloaded < int(declared):
                raise _Retryable(
                    VendorUnavailable(
                        self.vendor,
                        response.status_code,
                        f"truncated body: {response.num_bytes_downloaded} of {declared} bytes",
                        "GET",
                        shown,
                    )
                )
            sink.flush()
            return Download(size, digest.hexdigest(), response.headers.get("Content-Type"))

        return self._call("GET", path, handle, True, {"follow_redirects": True, **kwargs})

    # -- reading bodies within the limit ----------------------------------------------------------

    def _read(self, response: httpx.Response, method: str, shown: str) -> bytes:
        """The whole body, within the client's limit."""
        return b"".join(self._body(response, method, shown, self.response_limit))

    def _body(
        self, response: httpx.Response, method: str, shown: str, limit: ResponseLimit, chunk_size: int | None = None
    ) -> Iterator[bytes]:
        """The body's chunks: refused unread when its Content-Length is above `limit`, else counted as they
        arrive (a chunked body declares no length) and stopped at the first chunk that takes the count past it."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit.max_bytes:
            raise self._too_large(response, method, shown, limit, f"Content-Length declares {int(declared)} bytes")
        count = 0
        for chunk in response.iter_bytes(chunk_size):
            count += len(chunk)
            if count > limit.max_bytes:
                raise self._too_large(response, method, shown, limit, f"stopped after {count} bytes")
            yield chunk

    def _too_large(
        self, response: httpx.Response, method: str, shown: str, limit: ResponseLimit, detail: str
    ) -> VendorResponseTooLarge:
        message = (
            f"response body is larger than the limit of {limit.max_bytes} bytes ({detail}; set by {limit.setting})"
        )
        return VendorResponseTooLarge(self.vendor, response.status_code, message, method, shown)

    # -- the retry loop ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        handle: Callable[[httpx.Response, str], T],
        idempotent: bool | None,
        kwargs: dict[str, Any],
    ) -> T:
        method = method.upper()
        url = self.url(path)
        shown = safe_url(url.copy_merge_params(kwargs.get("params") or {}))
        idempotent = _is_idempotent(method, idempotent)
        policy = self.retry
        for attempt in range(1, policy.max_attempts + 1):
            self._take_token(method, shown)  # multipart file objects: httpx rewinds them per attempt
            started = time.monotonic()
            try:
                with self.http.stream(method, url, **kwargs) as response:
                    log.debug(
                        "%s %s %s -> %s in %.2fs (attempt %d/%d)",
                        self.vendor, method, shown, response.status_code,
                        time.monotonic() - started, attempt, policy.max_attempts,
                    )  # fmt: skip
                    if response.is_success:
                        return handle(response, shown)
                    raise self._status_failure(response, method, shown, idempotent)
            except _Retryable as failure:
                error, delay, cause = failure.error, failure.delay, None
            except httpx.TransportError as exc:
                sent = not isinstance(exc, _UNSENT)
                error = VendorUnavailable(self.vendor, None, f"{type(exc).__name__}: {exc}", method, shown, sent)
                delay, cause = None, exc
                if error.may_have_acted and not idempotent:
                    raise error from exc
            if attempt == policy.max_attempts:
                raise error from cause
            wait = delay if delay is not None else backoff_delay(attempt, policy.backoff_base, policy.backoff_max)
            # a status says it all, except a 2xx whose body was unusable: then the message does
            reason = error.message if error.status is None or error.status < 300 else f"HTTP {error.status}"
            log.warning(
                "%s %s %s failed (%s); retrying in %.2fs (attempt %d/%d)",
                self.vendor, method, shown, reason,
                wait, attempt, policy.max_attempts,
                extra={"vendor": self.vendor, "status": error.status, "attempt": attempt, "retry_in": wait},
            )  # fmt: skip
            time.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")

    def _status_failure(self, response: httpx.Response, method: str, shown: str, idempotent: bool) -> Exception:
        """The typed error for a non-2xx response, wrapped in `_Retryable` when a retry may succeed."""
        status = response.status_code
        error = error_for_status(
            self.vendor, status, vendor_message(_error_body(response), self.error_keys), method, shown
        )
        # 429 and most 5xx pass; a call not safe to repeat is repeated only if the vendor did not act
        # (429, 503), never after a 500 that may have created the order. 501/505 will not change.
        transient = status == 429 or (status >= 500 and status not in (501, 505))
        if transient and (idempotent or not error.may_have_acted):
            hint = parse_retry_after(response.headers.get("Retry-After"))
            return _Retryable(error, None if hint is None else min(hint, self.retry.retry_after_cap))
        return error

    def _take_token(self, method: str, shown: str) -> None:
        try:
            waited = self.limiter.acquire(timeout=self.rate_limit_timeout)
        except RateLimitTimeout as exc:
            raise VendorRateLimited(
                self.vendor, None, f"no token from the shared rate limit within {self.rate_limit_timeout:.0f}s",
                method, shown, sent=False,
            ) from exc  # fmt: skip
        if waited > 0.05:
            log.debug("%s %s %s waited %.2fs for the shared rate limit", self.vendor, method, shown, waited)


def _error_body(response: httpx.Response) -> bytes:
    """The first ERROR_BODY_BYTES of an error body; the rest is never read (the connection is dropped)."""
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= ERROR_BODY_BYTES:
            break
    return body[:ERROR_BODY_BYTES]


# -- the resource base ----------------------------------------------------------------------------


def configured_limit(configured: int | None, setting: str, default: int) -> ResponseLimit:
    """A response limit from the resource's config, else the environment variable `setting`, else `default`."""
    return ResponseLimit(configured or settings.env_int(setting, default), setting)


class VendorResource(dg.ConfigurableResource):
    """Config shared by every vendor resource. Subclasses name the `vendor`, declare an `api_url`
    field and their credential fields, and define `_auth_headers()`."""

    vendor: ClassVar[str]
    error_keys: ClassVar[tuple[str, ...]] = ("message", "error", "detail")
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)  # config values scrubbed from logs and errors
    # JSON answers: WeatherXM's whole station list or a day of history is a few MB
    default_max_response_bytes: ClassVar[int] = 64 * MiB

    redis: RedisResource = Field(description="shared rate limits (resource key `redis`)")
    rate_limit_per_minute: float = Field(default=60, gt=0, description="calls per minute, shared by all runs")
    rate_limit_timeout_seconds: float = Field(default=300, gt=0, description="longest wait for a rate-limit token")
    connect_timeout_seconds: float = Field(default=10, gt=0)
    read_timeout_seconds: float = Field(default=60, gt=0)
    max_attempts: int = Field(default=5, ge=1, description="attempts per call, the first one included")
    backoff_base_seconds: float = Field(default=0.5, ge=0, description="first retry waits up to this long")
    backoff_max_seconds: float = Field(default=30, ge=0, description="cap of the exponential backoff")
    retry_after_cap_seconds: float = Field(default=60, ge=0, description="longest wait honoured from Retry-After")
    download_chunk_bytes: int = Field(default=1024 * 1024, ge=1024, description="streamed download chunk size")
    max_response_bytes: int | None = Field(
        default=None,
        ge=1,
        description="largest response body read per call (unset: <VENDOR>_MAX_RESPONSE_BYTES, else the default)",
    )

    def _make_client(self, base_url: str, auth_headers: Mapping[str, str], bucket: str) -> VendorClient:
        """A client for one origin; `bucket` names the shared rate limit it draws from."""
        for name in self.secret_fields:
            register_secret(getattr(self, name))
        return VendorClient(
            vendor=self.vendor,
            base_url=base_url,
            auth_headers=auth_headers,
            limiter=self.redis.rate_limiter(bucket, self.rate_limit_per_minute, per_seconds=60.0),
            retry=RetryPolicy(
                self.max_attempts, self.backoff_base_seconds, self.backoff_max_seconds, self.retry_after_cap_seconds
            ),
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            rate_limit_timeout=self.rate_limit_timeout_seconds,
            chunk_size=self.download_chunk_bytes,
            error_keys=self.error_keys,
            response_limit=configured_limit(
                self.max_response_bytes, f"{self.vendor.upper()}_MAX_RESPONSE_BYTES", self.default_max_response_bytes
            ),
        )

    @cached_property
    def _client(self) -> VendorClient:
        return self._make_client(self.api_url, self._auth_headers(), self.vendor)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for cached in self.__dict__.values():
            if isinstance(cached, VendorClient):
                cached.close()
