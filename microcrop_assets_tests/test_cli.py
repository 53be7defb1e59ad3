"""The `microcrop` command's cid and sandbox entry points, as a user runs them."""

import subprocess
import sys
import time

import httpx

from microcrop_assets.cli import main as cli
from microcrop_assets.proofs.cid import file_cid

from .conftest import free_port


def test_cid_prints_the_ipfs_cid(tmp_path, capsys):
    proof = tmp_path / "proof.json"
    proof.write_bytes(b"hello world")
    assert cli(["cid", str(proof)]) == 0
    assert capsys.readouterr().out.strip() == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert cli(["cid", str(proof), "--cid-version", "0"]) == 0
    assert capsys.readouterr().out.strip() == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    assert cli(["cid", str(proof), "--profile", "v1-2025"]) == 0
    assert capsys.readouterr().out.strip() == file_cid(b"hello world", 1, "v1-2025")


def test_cid_names_bad_input(tmp_path, capsys):
    assert cli(["cid", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    proof = tmp_path / "p.json"
    proof.write_bytes(b"{}")
    assert cli(["cid", str(proof), "--cid-version", "0", "--profile", "v1-2025"]) == 2
    assert "v1-2025" in capsys.readouterr().err


def test_sandbox_serve_answers_over_http():
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "microcrop_assets.cli", "sandbox", "serve", "--port", str(port), "--seed", "7"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        info = None
        for _ in range(300):
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/_sandbox/info", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert info is not None and info.status_code == 200
        stations = httpx.get(
            f"http://127.0.0.1:{port}/weatherxm/api/v1/stations",
            headers={"X-API-KEY": "sandbox-weatherxm-key"},
            timeout=10,
        )
        assert stations.status_code == 200 and len(stations.json()["stations"]) > 0
        assert httpx.get(f"http://127.0.0.1:{port}/weatherxm/api/v1/stations", timeout=10).status_code == 401
    finally:
        server.terminate()
        server.wait(15)
