"""Fault injection and the sandbox's life cycle, over real HTTP."""

import datetime as dt
import json
import os
import socket
import sys
import threading

import httpx
import pytest

from microcrop_assets.sandbox.config import Credentials, Faults, SandboxConfig
from microcrop_assets.sandbox.embedded import ManualClock, running_sandbox

from .conftest import SANDBOX_NOW as NOW
from .conftest import free_port, start_server


@pytest.fixture
def weatherxm(sandbox):
    sandbox.clear_faults()
    with httpx.Client(
        base_url=sandbox.weatherxm_url, timeout=30, headers={"X-API-KEY": sandbox.credentials.weatherxm_api_key}
    ) as client:
        yield client
    sandbox.clear_faults()


def statuses(client: httpx.Client, n: int, path: str = "/stations") -> list[int]:
    return [client.get(path).status_code for _ in range(n)]


@pytest.mark.integration
def test_share_of_5xx_is_deterministic_for_a_seed(sandbox, weatherxm):
    sandbox.set_faults(share_5xx=0.5)
    first = statuses(weatherxm, 40)
    sandbox.set_faults(share_5xx=0.5)
    assert statuses(weatherxm, 40) == first
    failures = [s for s in first if s != 200]
    assert 8 <= len(failures) <= 32 and set(failures) <= {500, 502, 503}
    with running_sandbox(clock=ManualClock(NOW), faults={"share_5xx": 0.5}) as twin:
        client = httpx.Client(base_url=twin.weatherxm_url, headers=weatherxm.headers)
        assert statuses(client, 40) == first
        client.close()


@pytest.mark.integration
def test_429_carries_retry_after_and_vendor_error_shape(sandbox, weatherxm):
    sandbox.set_faults(share_429=1.0, retry_after_s=7)
    response = weatherxm.get("/stations")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert "message" in response.json()
    pinata = httpx.get(
        f"{sandbox.pinata_url}/data/testAuthentication",
        headers={"Authorization": f"Bearer {sandbox.credentials.pinata_jwt}"},
    )
    assert pinata.status_code == 429 and "error" in pinata.json()


@pytest.mark.integration
def test_fail_next_n_is_exact_then_recovers(sandbox, weatherxm):
    sandbox.set_faults(fail_next=3, fail_next_status=503)
    assert statuses(weatherxm, 5) == [503, 503, 503, 200, 200]
    sandbox.set_faults(fail_next=1, fail_next_status=429, retry_after_s=2)
    response = weatherxm.get("/stations")
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert weatherxm.get("/stations").status_code == 200


@pytest.mark.integration
def test_paths_select_which_vendor_fails(sandbox, weatherxm):
    sandbox.set_faults(share_5xx=1.0, paths=["/spexi/"])
    assert statuses(weatherxm, 3) == [200, 200, 200]
    spexi = httpx.Client(base_url=sandbox.spexi_url, headers={"x-api-key": sandbox.credentials.spexi_api_key})
    assert statuses(spexi, 1, "/image?bbox=34,0,35,1")[0] in (500, 502, 503)
    # requests outside the prefixes do not use up the "fail next" budget
    sandbox.set_faults(fail_next=1, paths=["/spexi/"])
    assert statuses(weatherxm, 2) == [200, 200]
    assert statuses(spexi, 2, "/image?bbox=34,0,35,1") == [503, 200]
    spexi.close()


@pytest.mark.integration
def test_malformed_json_bodies(sandbox, weatherxm):
    sandbox.set_faults(share_malformed=1.0)
    response = weatherxm.get("/stations")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    sandbox.clear_faults()
    assert weatherxm.get("/stations").json()["stations"]


@pytest.mark.integration
def test_truncated_download_is_detected_by_the_client(sandbox):
    headers = {"x-api-key": sandbox.credentials.spexi_api_key}
    body = {
        "plot_id": "KE-KIS-001",
        "location": {"latitude": -0.4235, "longitude": 34.9406},
        "area_hectares": 1.2,
        "resolution_meters": 0.5,
        "priority": "high",
        "bands": ["red", "green", "blue", "nir"],
        "capture_date": "2025-06-20",
    }
    order_id = httpx.post(f"{sandbox.spexi_url}/orders", json=body, headers=headers).json()["order_id"]
    url = f"{sandbox.spexi_url}/orders/{order_id}/download"
    complete = httpx.get(url, headers=headers)
    sandbox.set_faults(share_truncated=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url, headers=headers)
    # JSON answers are not truncated by this knob
    assert httpx.get(f"{sandbox.spexi_url}/orders/{order_id}", headers=headers).json()["status"] == "completed"
    sandbox.clear_faults()
    assert httpx.get(url, headers=headers).content == complete.content


def control_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.integration
def test_control_endpoint_drives_a_separately_running_sandbox(sandbox, weatherxm):
    control = f"{sandbox.root_url}/_sandbox/faults"
    headers = control_headers(sandbox.credentials.control_token)
    knobs = {"fail_next": 2, "fail_next_status": 502, "paths": ["/weatherxm/"]}
    answer = httpx.post(control, json=knobs, headers=headers)
    assert answer.status_code == 200 and answer.json()["fail_next"] == 2
    assert statuses(weatherxm, 3) == [502, 502, 200]
    assert httpx.get(control, headers=headers).json()["paths"] == ["/weatherxm/"]
    for bad in ({"share_5xx": 2}, {"explode": True}, {"fail_next_status": 418}, {"paths": "/weatherxm/"}):
        response = httpx.post(control, json=bad, headers=headers)
        assert response.status_code == 400 and response.json()["message"]
    httpx.post(control, json={}, headers=headers)
    assert statuses(weatherxm, 2) == [200, 200]


@pytest.mark.integration
@pytest.mark.parametrize(
    "headers",
    [{}, control_headers("sandbox-control-tokeN"), {"Authorization": "sandbox-control-token"}],
    ids=["no token", "wrong token", "no bearer scheme"],
)
def test_control_endpoint_refuses_requests_without_the_token(sandbox, weatherxm, headers):
    control = f"{sandbox.root_url}/_sandbox/faults"
    refused = httpx.post(control, json={"fail_next": 3, "fail_next_status": 503}, headers=headers)
    assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
    assert "SANDBOX_CONTROL_TOKEN" in refused.json()["message"]
    assert httpx.get(control, headers=headers).status_code == 401  # the knobs are not shown either
    assert sandbox.sandbox.faults.faults == sandbox.config.faults  # nothing changed
    assert statuses(weatherxm, 2) == [200, 200]
    # the facts of the world stay open: health checks and readiness probes read them without a token
    assert httpx.get(f"{sandbox.root_url}/_sandbox/info").status_code == 200


@pytest.mark.integration
def test_served_sandbox_takes_its_control_token_from_the_environment():
    port = free_port()
    control = f"http://127.0.0.1:{port}/_sandbox/faults"
    command = [sys.executable, "-m", "microcrop_assets.cli", "sandbox", "serve", "--port", str(port)]
    server = start_server(command, control, env={**os.environ, "SANDBOX_CONTROL_TOKEN": "compose-chosen-token"})
    try:
        default = control_headers(Credentials().control_token)
        assert httpx.post(control, json={"fail_next": 1}, headers=default, timeout=10).status_code == 401
        chosen = control_headers("compose-chosen-token")
        answer = httpx.post(control, json={"fail_next": 1}, headers=chosen, timeout=10)
        assert answer.status_code == 200 and answer.json()["fail_next"] == 1
    finally:
        server.terminate()
        server.wait(15)


@pytest.mark.integration
def test_counter_reset_knob_changes_the_counter(sandbox, weatherxm):
    station = next(s for s in sandbox.sandbox.world.stations if not s.offline and s.data_start < dt.date(2025, 1, 1))
    path = f"/stations/{station.id}/history"
    rainy = next(
        d
        for d in (dt.date(2025, 4, 1) + dt.timedelta(days=k) for k in range(30))
        if sandbox.sandbox.world.station_daily(station, d)["rain"] > 2
    )

    def counter() -> list[float]:
        readings = weatherxm.get(path, params={"date": rainy.isoformat()}).json()["observations"]
        return [o["precipitation_accumulated"] for o in readings]

    sandbox.set_faults(counter_reset_share=1.0)
    values = counter()
    assert any(b < a for a, b in zip(values, values[1:], strict=False))
    sandbox.set_faults(counter_reset_share=0.0)
    values = counter()
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))


@pytest.mark.unit
def test_invalid_knobs_are_refused_with_their_name():
    with pytest.raises(ValueError, match="share_429"):
        Faults(share_429=1.5)
    with pytest.raises(ValueError, match="station_list_shape"):
        SandboxConfig(station_list_shape="flat")


@pytest.mark.integration
def test_sandbox_stops_cleanly_and_frees_its_port():
    threads_before = set(threading.enumerate())
    with running_sandbox(clock=ManualClock(NOW)) as sandbox:
        assert httpx.get(f"{sandbox.root_url}/_sandbox/info").json()["seed"] == sandbox.config.seed
        port = int(sandbox.root_url.rsplit(":", 1)[1])
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not [t for t in leftover if t.name.startswith("sandbox-")]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_sandbox/info", timeout=2)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # the port is free again
