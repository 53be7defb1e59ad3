"""Vendor resources pointed at a running sandbox, with retry settings small enough for fast tests."""

import logging

from microcrop_assets.resources.pinata import PinataResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.resources.weatherxm import WeatherXMResource
from microcrop_assets.sandbox.embedded import RunningSandbox

# Backoff and Retry-After waits of milliseconds; a rate limit no test reaches unless it means to.
FAST = {
    "max_attempts": 3,
    "backoff_base_seconds": 0.001,
    "backoff_max_seconds": 0.004,
    "retry_after_cap_seconds": 0.01,
    "rate_limit_per_minute": 100_000,
    "connect_timeout_seconds": 5,
    "read_timeout_seconds": 30,
}


def weatherxm(sandbox: RunningSandbox, redis: RedisResource, **overrides) -> WeatherXMResource:
    settings = {"api_url": sandbox.weatherxm_url, "api_key": sandbox.credentials.weatherxm_api_key, **FAST}
    return WeatherXMResource(redis=redis, **{**settings, **overrides})


def spexi(sandbox: RunningSandbox, redis: RedisResource, **overrides) -> SpexiResource:
    settings = {"api_url": sandbox.spexi_url, "api_key": sandbox.credentials.spexi_api_key, **FAST}
    return SpexiResource(redis=redis, **{**settings, **overrides})


def pinata(sandbox: RunningSandbox, redis: RedisResource, **overrides) -> PinataResource:
    settings = {
        "api_url": sandbox.pinata_url,
        "uploads_url": sandbox.pinata_uploads_url,
        "gateway_url": sandbox.gateway_url,
        "jwt": sandbox.credentials.pinata_jwt,
        **FAST,
    }
    return PinataResource(redis=redis, **{**settings, **overrides})


def retries(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The 'retrying in ...' warnings of the vendor clients."""
    return [r for r in records if r.name == "microcrop.vendors" and hasattr(r, "retry_in")]
