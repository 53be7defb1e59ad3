import multiprocessing
import uuid

import pytest

from microcrop_assets.resources.redis import RateLimitTimeout, RedisResource

from .conftest import REDIS_URL


def _hammer(prefix: str, attempts: int, results) -> None:
    limiter = RedisResource(url=REDIS_URL, key_prefix=prefix).rate_limiter("vendor", rate=10, per_seconds=3600)
    results.put(sum(limiter.try_acquire() == 0 for _ in range(attempts)))


def test_rate_limit_holds_across_two_processes():
    # 10 tokens, refilled at 10 an hour: two processes asking 60 times each may get 10 in all
    prefix = f"mctest-{uuid.uuid4().hex[:8]}"
    results = multiprocessing.get_context("spawn").Queue()
    workers = [
        multiprocessing.get_context("spawn").Process(target=_hammer, args=(prefix, 60, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    grants = [results.get(timeout=5) for _ in workers]
    assert sum(grants) == 10
    RedisResource(url=REDIS_URL, key_prefix=prefix).client.delete(f"{prefix}:ratelimit:vendor")


@pytest.mark.parametrize("url", [REDIS_URL, None], ids=["redis", "in-process"])
def test_limiter_reports_wait_and_times_out(url):
    resource = RedisResource(url=url, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    limiter = resource.rate_limiter("pinata", rate=2, per_seconds=60)
    assert limiter.acquire() == pytest.approx(0, abs=0.5) and limiter.try_acquire() == 0
    wait = limiter.try_acquire()
    assert 0 < wait <= 30  # the next token is half a minute away at most
    with pytest.raises(RateLimitTimeout, match="pinata"):
        limiter.acquire(timeout=1)
    with pytest.raises(ValueError, match="capacity"):
        limiter.try_acquire(tokens=3)


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


@pytest.mark.parametrize("url", [REDIS_URL, None], ids=["redis", "in-process"])
def test_lock_excludes_and_expires(url):
    resource = RedisResource(url=url, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    with resource.lock("order:KE-KAK-001", ttl_seconds=30) as first:
        assert first
        assert 0 < resource.client.pttl(resource.key("lock", "order:KE-KAK-001")) <= 30_000
        with resource.lock("order:KE-KAK-001", ttl_seconds=30) as second:
            assert not second
    with resource.lock("order:KE-KAK-001", ttl_seconds=30) as again:
        assert again  # released on exit


@pytest.mark.parametrize("url", [REDIS_URL, None], ids=["redis", "in-process"])
def test_cache_with_ttl(url):
    resource = RedisResource(url=url, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    assert resource.cache_get("stations") is None
    resource.cache_set("stations", "[1,2]", ttl_seconds=120)
    assert resource.cache_get("stations") == b"[1,2]"
    assert 0 < resource.client.ttl(resource.key("cache", "stations")) <= 120
