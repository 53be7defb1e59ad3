"""Redis: shared rate limits, locks with expiry and a TTL cache.

Vendor rate limits are per account while every Dagster run is its own process, so the token bucket
lives in Redis and is updated by one Lua script (atomic across processes, clock taken from the
Redis server so processes with skewed clocks agree). Without `REDIS_URL` an in-process fakeredis
server stands in: same commands, same script, shared by every resource in the process.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    import redis

# KEYS[1] bucket hash; ARGV: capacity, refill tokens per second, tokens requested.
# Returns 0 when granted, otherwise the milliseconds until enough tokens will be there.
_TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local requested = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait_ms = 0
if tokens >= requested then
  tokens = tokens - requested
else
  wait_ms = math.ceil((requested - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return wait_ms
"""


@cache
def _in_process_server():
    """One fakeredis server per process, made on first use: fakeredis (and numpy under it) is not
    imported when the definitions load."""
    import fakeredis

    return fakeredis.FakeServer()


class RateLimitTimeout(TimeoutError):
    """A caller waited longer than it allowed for a rate-limit token."""


class RateLimiter:
    """Token bucket of `capacity` tokens refilled at `rate` tokens per `per_seconds`."""

    def __init__(self, client: "redis.Redis", key: str, rate: float, per_seconds: float, capacity: float):
        if rate <= 0 or per_seconds <= 0 or capacity < 1:
            raise ValueError(
                f"rate limiter {key!r}: rate={rate}, per_seconds={per_seconds}, capacity={capacity}; "
                "all must be positive and capacity at least 1"
            )
        self.key = key
        self.capacity = capacity
        self.tokens_per_second = rate / per_seconds
        self._script = client.register_script(_TOKEN_BUCKET)

    def try_acquire(self, tokens: int = 1) -> float:
        """Take `tokens` if available; return 0.0, or the seconds to wait before asking again."""
        if tokens > self.capacity:
            raise ValueError(f"rate limiter {self.key!r}: {tokens} tokens asked, capacity {self.capacity}")
        wait_ms = self._script(keys=[self.key], args=[self.capacity, self.tokens_per_second, tokens])
        return int(wait_ms) / 1000.0

    def acquire(self, tokens: int = 1, timeout: float | None = None) -> float:
        """Block until `tokens` are granted; return the seconds waited."""
        started = time.monotonic()
        while (wait := self.try_acquire(tokens)) > 0:
            waited = time.monotonic() - started
            if timeout is not None and waited + wait > timeout:
                raise RateLimitTimeout(
                    f"rate limiter {self.key!r}: no token within {timeout:.1f}s (next in {wait:.2f}s)"
                )
            time.sleep(wait)
        return time.monotonic() - started


class RedisResource(dg.ConfigurableResource):
    """Resource key `redis`: `REDIS_URL`, or an in-process equivalent when unset."""

    # repr=False: a Redis URL may carry a password
    url: str | None = Field(default=None, repr=False, description="REDIS_URL; empty for the in-process server")
    key_prefix: str = Field(default="microcrop", description="namespace for every key this project writes")

    @cached_property
    def client(self) -> "redis.Redis":
        import fakeredis
        import redis

        if self.url:
            return redis.Redis.from_url(self.url, socket_timeout=10, health_check_interval=30)
        return fakeredis.FakeRedis(server=_in_process_server())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        client = self.__dict__.get("client")
        if client is not None:
            client.close()  # disconnects its pool; the client reconnects if used again

    def key(self, *parts: str) -> str:
        return ":".join((self.key_prefix, *parts))

    def rate_limiter(
        self, name: str, rate: float, per_seconds: float = 60.0, capacity: float | None = None
    ) -> RateLimiter:
        """A limiter shared by every process on this Redis; capacity defaults to one period's worth."""
        return RateLimiter(self.client, self.key("ratelimit", name), rate, per_seconds, capacity or rate)

    @contextmanager
    def lock(self, name: str, ttl_seconds: float, wait_seconds: float = 0.0) -> Iterator[bool]:
        """Hold `name` for at most `ttl_seconds`; yields False when someone else holds it."""
        lock = self.client.lock(self.key("lock", name), timeout=ttl_seconds, blocking_timeout=wait_seconds)
        acquired = lock.acquire(blocking=wait_seconds > 0)
        try:
            yield acquired
        finally:
            if acquired and lock.owned():
                lock.release()

    def cache_get(self, key: str) -> bytes | None:
        return self.client.get(self.key("cache", key))

    def cache_set(self, key: str, value: bytes | str, ttl_seconds: int) -> None:
        self.client.set(self.key("cache", key), value, ex=ttl_seconds)

    def ping(self) -> bool:
        return bool(self.client.ping())
