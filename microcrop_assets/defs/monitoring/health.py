"""Health of every service the pipeline uses, and the pipeline's own volume figures.

Each service is checked with one cheap call (one attempt, short timeouts) in its own thread, so a
hung service costs at most CHECK_TIMEOUT_S and never hides the state of the others. States: "up",
"down" (the call failed: the reason, secrets scrubbed) or "not configured" (a credential or URL is
unset). PostgreSQL, object storage, Redis, WeatherXM, Spexi and Pinata are required; the chain only
once BASE_RPC_URL is set.
"""

import concurrent.futures
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import dagster as dg
import httpx
import sqlalchemy as sa

from microcrop_assets.resources.chain import register_key
from microcrop_assets.resources.http import redact, register_secret

UP, DOWN, NOT_CONFIGURED = "up", "down", "not configured"
CHECK_TIMEOUT_S = 15.0
# environment values that are credentials (or contain them): scrubbed from every health and alert text
SECRET_ENV = (
    "WEATHERXM_API_KEY", "SPEXI_API_KEY", "PINATA_JWT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY",
    "DAGSTER_PG_PASSWORD", "POSTGRES_PASSWORD", "BASE_RPC_URL", "ALERT_WEBHOOK_URL",
)  # fmt: skip
# signing keys: scrubbed with and without their 0x prefix (the deployed code server has neither: the
# oracle's reaches payouts_job's runs only, the admin's the command that registers policies)
PRIVATE_KEY_ENV = ("ORACLE_PRIVATE_KEY", "RECEIVER_ADMIN_PRIVATE_KEY")
URL_ENV = ("DATABASE_URL", "REDIS_URL")  # their passwords are secrets
MIN_SECRET_LENGTH = 6


def register_environment_secrets() -> None:
    values = [os.environ.get(name) for name in SECRET_ENV]
    values += [urlsplit(os.environ.get(name) or "").password for name in URL_ENV]
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:  # a placeholder like "x" would mangle every text
            register_secret(value)
    for name in PRIVATE_KEY_ENV:
        key = os.environ.get(name)
        if key and len(key) >= MIN_SECRET_LENGTH:
            register_key(key)


def scrub(text: str) -> str:
    """`text` without any credential this process knows of."""
    register_environment_secrets()
    return redact(text)


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    state: str
    detail: str
    required: bool = True

    @property
    def failing(self) -> bool:
        return self.required and self.state != UP

    def line(self) -> str:
        return f"{self.service:<15} {self.state:<15} {self.detail}"


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return scrub(f"{type(error).__name__}: {text[0] if text else ''}")[:300]


# -- one check per service ------------------------------------------------------------------------


def answered(ping: bool, service: str) -> None:
    """The resources' ping() returns False (rather than raising) for some failures."""
    if not ping:
        raise RuntimeError(f"{service} did not answer its ping")


def check_postgres(db) -> str:
    answered(db.ping(), "PostgreSQL")
    timescale = "TimescaleDB present" if db.has_timescaledb() else "TimescaleDB absent (plain PostgreSQL)"
    return f"{db.describe()}; {timescale}"


def check_object_store(store) -> str:
    answered(store.ping(), store.describe())
    return store.describe()


def check_redis(redis) -> str:
    answered(redis.ping(), "Redis")
    return f"redis at {urlsplit(redis.url).hostname}" if redis.url else "in-process Redis (REDIS_URL unset)"


def check_weatherxm(weatherxm) -> str:
    weatherxm.stations_near(lat=0.28, lon=34.75, radius_m=1000)  # Kakamega: any answer proves key and service
    return urlsplit(weatherxm.api_url).hostname or ""


def check_spexi(spexi) -> str:
    spexi.search_images(point=(34.75, 0.28, 100))
    return urlsplit(spexi.api_url).hostname or ""


def check_pinata(pinata) -> str:
    pinata.test_authentication()
    return urlsplit(pinata.api_url).hostname or ""


def check_chain(rpc_url: str) -> str:
    """A plain JSON-RPC eth_chainId; the URL itself is never shown (providers put keys in it)."""
    response = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=10)
    response.raise_for_status()
    answer = response.json()
    if "result" not in answer:
        raise RuntimeError(f"eth_chainId answered without a result: {answer.get('error')!r}")
    return f"chain id {int(answer['result'], 16)}"


# resource key, service name, check, credentials it cannot work without (the others have defaults)
SERVICES: tuple[tuple[str, str, Callable, tuple[str, ...]], ...] = (
    ("timescaledb", "postgresql", check_postgres, ()),
    ("object_store", "object storage", check_object_store, ()),
    ("redis", "redis", check_redis, ()),
    ("weatherxm", "weatherxm", check_weatherxm, ("WEATHERXM_API_KEY",)),
    ("spexi", "spexi", check_spexi, ("SPEXI_API_KEY",)),
    ("pinata", "pinata", check_pinata, ("PINATA_JWT",)),
)
# vendor clients get one attempt and short timeouts here; the database is only read (no migrations)
QUICK = {
    "max_attempts": 1,
    "connect_timeout_seconds": 5.0,
    "read_timeout_seconds": 10.0,
    "rate_limit_timeout_seconds": 5.0,
    "migrate": False,
}


@contextmanager
def initialized(resource: dg.ConfigurableResource) -> Iterator[dg.ConfigurableResource]:
    """The resource ready to use, for one check; its database pool is closed afterwards (the
    sensor builds resources every minute)."""
    fields = type(resource).model_fields
    resource = resource.model_copy(update={k: v for k, v in QUICK.items() if k in fields})
    with resource.process_config_and_initialize_cm() as ready:
        try:
            yield ready
        finally:
            if "engine" in ready.__dict__:
                ready.engine.dispose()


def _check_one(service: tuple, resource: dg.ConfigurableResource) -> ServiceStatus:
    _, name, check, credentials = service
    unset = [variable for variable in credentials if not os.environ.get(variable)]
    if unset:
        return ServiceStatus(name, NOT_CONFIGURED, f"{', '.join(unset)} not set")
    try:
        with initialized(resource) as ready:
            return ServiceStatus(name, UP, check(ready))
    except Exception as error:  # any failure is the state being reported
        return ServiceStatus(name, DOWN, first_line(error))


def _check_chain() -> ServiceStatus:
    rpc_url = os.environ.get("BASE_RPC_URL")
    if not rpc_url:
        return ServiceStatus("chain", NOT_CONFIGURED, "BASE_RPC_URL not set", required=False)
    try:
        return ServiceStatus("chain", UP, check_chain(rpc_url))
    except Exception as error:
        return ServiceStatus("chain", DOWN, first_line(error))


def check_all(resources: Mapping[str, dg.ConfigurableResource]) -> list[ServiceStatus]:
    """Every service's state, checked in parallel; `resources` as bound in Definitions (unresolved)."""
    register_environment_secrets()
    pool = concurrent.futures.ThreadPoolExecutor(len(SERVICES) + 1, thread_name_prefix="health")
    futures = [(service[1], pool.submit(_check_one, service, resources[service[0]])) for service in SERVICES]
    statuses = _collect([*futures, ("chain", pool.submit(_check_chain))])
    pool.shutdown(wait=False, cancel_futures=True)  # a hung check must not hold the caller
    return statuses


def _collect(futures: list[tuple[str, concurrent.futures.Future]]) -> list[ServiceStatus]:
    statuses = []
    for name, future in futures:
        try:
            statuses.append(future.result(timeout=CHECK_TIMEOUT_S))
        except concurrent.futures.TimeoutError:
            statuses.append(ServiceStatus(name, DOWN, f"no answer within {CHECK_TIMEOUT_S:.0f} s"))
    return statuses


def print_report(statuses: list[ServiceStatus]) -> int:
    """One line per service; 1 when a required service is not up."""
    for status in statuses:
        print(status.line())
    failing = [s.service for s in statuses if s.failing]
    if failing:
        print(f"required services not up: {', '.join(failing)}", file=sys.stderr)
    return 1 if failing else 0


# -- pipeline figures -----------------------------------------------------------------------------

# figure -> query; every table comes from the migrations (0001-0006)
METRICS = {
    "readings_24h": "SELECT count(*) FROM weather_readings WHERE ts > now() - interval '24 hours'",
    "images_24h": "SELECT count(DISTINCT image_key) FROM plot_ndvi_observations"
    " WHERE captured_at > now() - interval '24 hours'",
    "assessments_24h": "SELECT count(*) FROM damage_assessments WHERE created_at > now() - interval '24 hours'",
    "pending_payouts": "SELECT count(*) FROM payouts WHERE status = 'pending'",
    "active_plots": "SELECT count(*) FROM plots WHERE active",
}


def pipeline_metrics(db) -> dict[str, int]:
    """Each figure, counted now; none before the first run has created the tables (a new deployment:
    the sensor reads without migrating, and starts ticking before any run)."""
    with db.engine.connect() as conn:
        if not sa.inspect(conn).has_table("microcrop_schema_version"):
            return {}
        return {name: int(conn.scalar(sa.text(query))) for name, query in METRICS.items()}
