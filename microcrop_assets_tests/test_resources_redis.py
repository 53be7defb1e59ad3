import multiprocessing
import time
import uuid

import dagster as dg
import pytest
from redis import Redis

from microcrop_assets.resources import redis as redis_module
from microcrop_assets.resources.redis import RateLimitTimeout, RedisResource

from .conftest import REDIS_URL

# Redis itself, and the in-process stand-in (no URL) that needs no server
BACKENDS = [
    pytest.param(REDIS_URL, id="redis", marks=pytest.mark.integration),
    pytest.param(None, id="in-process", marks=pytest.mark.unit),
]


class StoppedClock:
    """Stands in for the `time` module in the limiter: time stands still and sleeps are recorded."""

    def __init__(self):
        self.slept = []

    def monotonic(self) -> float:
        return 100.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _hammer(prefix: str, attempts: int, start, results) -> None:
    resource = RedisResource(url=REDIS_URL, key_prefix=prefix)
    limiter = resource.rate_limiter("vendor", rate=10, per_seconds=3600)
    start.wait(60)  # both processes are up and connected: they ask together, not one after the other
    began = resource.client.incr(f"{prefix}:ticket")
    # the barrier alone left a loaded machine free to run one loop to its end before the other began:
    # neither asks before both hold a ticket
    while int(resource.client.get(f"{prefix}:ticket")) < 2:
        pass
    granted = sum(limiter.try_acquire() == 0 for _ in range(attempts))
    ended = resource.client.incr(f"{prefix}:ticket")
    results.put((granted, began, ended))


@pytest.mark.integration
def test_rate_limit_holds_across_two_processes():
    # 10 tokens, refilled at 10 an hour: two processes asking 60 times each, at the same time, may
    # get 10 in all. A read-then-write bucket (not one atomic script) hands out more here.
    prefix = f"mctest-{uuid.uuid4().hex[:8]}"
    spawn = multiprocessing.get_context("spawn")
    results, start = spawn.Queue(), spawn.Barrier(2)
    workers = [spawn.Process(target=_hammer, args=(prefix, 60, start, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=90) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert sum(granted for granted, _, _ in outcomes) == 10, outcomes
    # the loops overlapped: each began (tickets 1 and 2) before either ended (tickets 3 and 4)
    assert sorted(began for _, began, _ in outcomes) == [1, 2], outcomes
    RedisResource(url=REDIS_URL, key_prefix=prefix).client.delete(f"{prefix}:ratelimit:vendor", f"{prefix}:ticket")


@pytest.mark.parametrize("url", BACKENDS)
def test_limiter_reports_wait_and_times_out(url, monkeypatch):
    resource = RedisResource(url=url, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    limiter = resource.rate_limiter("pinata", rate=2, per_seconds=60)
    clock = StoppedClock()
    monkeypatch.setattr(redis_module, "time", clock)  # acquire's own clock and sleep, not the bucket's
    assert limiter.acquire() == 0.0 and clock.slept == []  # a full bucket grants without waiting
    assert float(resource.client.hget(limiter.key, "tokens")) == 1.0  # of 2
    assert limiter.try_acquire() == 0
    wait = limiter.try_acquire()
    assert 0 < wait <= 30  # the next token is half a minute away at most
    with pytest.raises(RateLimitTimeout, match="pinata"):
        limiter.acquire(timeout=1)
    assert clock.slept == []  # refused at once: the wait exceeds the timeout
    with pytest.raises(ValueError, match="capacity"):
        limiter.try_acquire(tokens=3)


@pytest.mark.unit
def test_in_process_limiter_is_shared_by_resources_in_one_process():
    prefix = f"mctest-{uuid.uuid4().hex[:8]}"
    a = RedisResource(key_prefix=prefix).rate_limiter("weatherxm", rate=3)
    b = RedisResource(key_prefix=prefix).rate_limiter("weatherxm", rate=3)
    assert [a.try_acquire() == 0, b.try_acquire() == 0, a.try_acquire() == 0, b.try_acquire() == 0] == [
        True,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize("url", BACKENDS)
def test_lock_excludes_and_expires(url):
    resource = RedisResource(url=url, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    with resource.lock("order:KE-KAK-001", ttl_seconds=30) as first:
        assert first
        assert 0 < resource.client.pttl(resource.key("lock", "order:KE-KAK-001")) <= 30_000
        with resource.lock("order:KE-KAK-001", ttl_seconds=30) as second:
            assert not second
    with resource.lock("order:KE-KAK-001", ttl_seconds=30) as again:
        assert again  # released on exit


@pytest.mark.parametrize("url", BACKENDS)
def test_cache_with_ttl(url):
    resource = RedisResource(url=url, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    assert resource.cache_get("stations") is None
    resource.cache_set("stations", "[1,2]", ttl_seconds=120)
    assert resource.cache_get("stations") == b"[1,2]"
    assert 0 < resource.client.ttl(resource.key("cache", "stations")) <= 120


def named_connections(observer: Redis, name: str) -> list[dict]:
    """The connections Redis itself lists under the client name `name`."""
    return [client for client in observer.client_list() if client["name"] == name]


@pytest.mark.integration
def test_a_run_closes_its_redis_connection_at_teardown():
    # the run's client names its connections, so Redis itself can say whether they are still open
    name = f"mctest-{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in REDIS_URL else "?"
    resource = RedisResource(url=f"{REDIS_URL}{separator}client_name={name}", key_prefix=name)
    used: list[RedisResource] = []  # the run's own copy: held, so only teardown (not GC) can close it
    open_during_run: list[int] = []

    with Redis.from_url(REDIS_URL) as observer:

        @dg.asset
        def station_cache(redis: RedisResource) -> None:
            redis.cache_set("stations", "[1,2]", ttl_seconds=60)
            used.append(redis)
            open_during_run.append(len(named_connections(observer, name)))

        assert dg.materialize([station_cache], resources={"redis": resource}).success
        assert open_during_run == [1]  # the name finds the run's connection
        assert used[0].__dict__.get("client") is not None  # teardown found a client to close
        # closing is the client's, noticing the closed socket the server's: wait for it, at most 30 s
        deadline = time.monotonic() + 30
        while (still_open := named_connections(observer, name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        observer.delete(f"{name}:cache:stations")
    assert still_open == [], f"the run's Redis connection outlived its teardown: {still_open}"
