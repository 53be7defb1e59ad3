"""Response size limits of the vendor clients (security issue 14, finding 6), against a real HTTP server on
loopback that streams far more than the limit, with and without a Content-Length: the call is refused with
one line naming the vendor, the URL path and the limit, memory stays bounded and nothing partial is left."""

import hashlib
import http.server
import io
import threading
import tracemalloc

import pytest

from microcrop_assets.resources.http import MiB, VendorResponseTooLarge, VendorUnavailable
from microcrop_assets.resources.pinata import PinataResource
from microcrop_assets.resources.spexi import SpexiResource
from microcrop_assets.resources.weatherxm import WeatherXMResource
from microcrop_assets.settings import SettingError

from .fixtures.clients import FAST

pytestmark = pytest.mark.integration

LIMIT = 1 * MiB
STREAM = 64 * MiB  # what the server would send in full
DECLARED = 6 * 1024 * MiB  # the finding's 6 GB gateway answer, declared in Content-Length
BLOCK = bytes(range(256)) * 256  # 64 KiB written per send
CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


class StreamingServer:
    """Answers every GET with `status` and `size` bytes of a repeating pattern, declared in Content-Length
    (`declare`: that number, which may exceed what is sent) or sent chunked without any length. `sent`
    counts the body bytes the server managed to write before the client hung up."""

    def __init__(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.paths.append(self.path)
                self.send_response(server.status)
                if server.declare is None:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(server.declare))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    written = 0
                    while written < server.size:
                        part = BLOCK[: server.size - written]
                        if server.declare is None:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        else:
                            self.wfile.write(part)
                        written += len(part)
                        server.sent += len(part)
                    if server.declare is None:
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what it refused is never sent

            def log_message(self, *args):
                pass

        self.status, self.size, self.declare, self.sent = 200, STREAM, None, 0
        self.paths: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, size: int, declare: int | None = None, status: int = 200) -> None:
        self.status, self.size, self.declare, self.sent = status, size, declare, 0
        self.paths.clear()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    running = StreamingServer()
    yield running
    running.close()


def pinata(server: StreamingServer, redis, **overrides) -> PinataResource:
    settings = {"api_url": server.url, "gateway_url": server.url, "jwt": "limits-test-jwt", **FAST}
    return PinataResource(redis=redis, **{"max_response_bytes": LIMIT, **settings, **overrides})


def spexi(server: StreamingServer, redis, **overrides) -> SpexiResource:
    settings = {"api_url": server.url, "api_key": "limits-test-key", **FAST}
    return SpexiResource(
        redis=redis, **{"max_response_bytes": LIMIT, "max_image_bytes": 4 * LIMIT, **settings, **overrides}
    )


def peak_bytes(call) -> tuple[BaseException, int]:
    """The error `call` raised and the peak of memory allocated while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(Exception) as raised:
            call()
        return raised.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_refused(error: BaseException, vendor: str, path: str, setting: str, how: str) -> None:
    assert isinstance(error, VendorResponseTooLarge), repr(error)
    text = str(error)
    assert "\n" not in text and text.startswith(f"{vendor} GET http://127.0.0.1:")
    assert path in text and f"limit of {LIMIT} bytes" in text and setting in text and how in text


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(server, redis_resource):
    server.serve(STREAM, declare=DECLARED)
    client = pinata(server, redis_resource)
    assert client._gateway  # the HTTP client exists before memory is traced
    error, peak = peak_bytes(lambda: client.fetch(CID))
    assert_refused(error, "pinata", f"/ipfs/{CID}", "PINATA_MAX_RESPONSE_BYTES", f"Content-Length declares {DECLARED}")
    assert peak < LIMIT  # not even the limit's worth was read
    assert server.paths.count(f"/ipfs/{CID}") == 1  # refused once, not retried
    assert server.sent < STREAM  # the client hung up: the rest was never sent


def test_a_body_without_length_stops_as_soon_as_the_count_passes_the_limit(server, redis_resource):
    server.serve(STREAM)  # chunked: nothing declares the size
    client = pinata(server, redis_resource)
    assert client._gateway
    error, peak = peak_bytes(lambda: client.fetch(CID))
    assert_refused(error, "pinata", f"/ipfs/{CID}", "PINATA_MAX_RESPONSE_BYTES", "stopped after")
    read = int(str(error).split("stopped after ")[1].split(" bytes")[0])
    assert LIMIT < read <= LIMIT + client.download_chunk_bytes  # one chunk past the limit, no further
    assert peak < 4 * LIMIT  # the limit and a chunk or two, not the 64 MiB stream
    assert server.sent < STREAM and server.paths.count(f"/ipfs/{CID}") == 1


def test_json_answers_and_error_bodies_are_bounded(server, redis_resource):
    server.serve(STREAM)
    weatherxm = WeatherXMResource(
        redis=redis_resource, api_url=server.url, api_key="limits-test-key", max_response_bytes=LIMIT, **FAST
    )
    assert weatherxm._client
    error, peak = peak_bytes(weatherxm.all_stations)
    assert_refused(error, "weatherxm", "/stations", "WEATHERXM_MAX_RESPONSE_BYTES", "stopped after")
    assert peak < 4 * LIMIT and server.sent < STREAM
    # an error body is read only as far as its message needs, on every attempt
    server.serve(STREAM, status=500)
    error, peak = peak_bytes(weatherxm.all_stations)
    assert isinstance(error, VendorUnavailable) and error.status == 500
    assert len(str(error)) < 500  # the message is cut, as before
    assert peak < 4 * LIMIT and server.sent < FAST["max_attempts"] * STREAM  # no attempt read it all


def test_a_refused_image_leaves_nothing_behind(server, redis_resource, tmp_path):
    """Spexi GeoTIFFs have their own, larger limit; an image over it leaves no file, no temp file, and a
    caller's buffer as it was."""
    client = spexi(server, redis_resource)
    server.serve(3 * LIMIT, declare=3 * LIMIT)  # over the JSON limit, within the image limit
    download = client.download_order("order-1", tmp_path / "image.tif")
    expected = (BLOCK * (3 * LIMIT // len(BLOCK)))[: 3 * LIMIT]
    assert download.size == 3 * LIMIT and download.sha256 == hashlib.sha256(expected).hexdigest()
    assert (tmp_path / "image.tif").read_bytes() == expected
    for declare in (None, DECLARED):
        server.serve(STREAM, declare=declare)
        how = "stopped after" if declare is None else "Content-Length declares"
        with pytest.raises(VendorResponseTooLarge) as refused:
            client.download_order("order-2", tmp_path / "big.tif")
        assert "/orders/order-2/download" in str(refused.value) and "SPEXI_MAX_IMAGE_BYTES" in str(refused.value)
        assert f"limit of {4 * LIMIT} bytes" in str(refused.value) and how in str(refused.value)
        assert sorted(path.name for path in tmp_path.iterdir()) == ["image.tif"]  # no partial file, no temp file
        buffer = io.BytesIO(b"earlier content")
        buffer.seek(0, io.SEEK_END)
        with pytest.raises(VendorResponseTooLarge):
            client.download_order("order-2", buffer)
        assert buffer.getvalue() == b"earlier content"
        with pytest.raises(VendorResponseTooLarge):
            client.download_order("order-2", NonSeekable())  # spooled, never copied on
    # the JSON calls keep the small limit
    server.serve(3 * LIMIT, declare=3 * LIMIT)
    with pytest.raises(VendorResponseTooLarge, match="SPEXI_MAX_RESPONSE_BYTES"):
        client.order_status("order-1")


class NonSeekable(io.RawIOBase):
    """A write-only stream that must never receive a byte of a refused download."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise AssertionError(f"{len(data)} bytes of a refused download reached the destination")


def test_limits_come_from_the_environment_with_a_default_per_vendor(server, redis_resource, monkeypatch):
    server.serve(4096, declare=4096)
    for name in ("PINATA_MAX_RESPONSE_BYTES", "SPEXI_MAX_RESPONSE_BYTES", "SPEXI_MAX_IMAGE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    assert pinata(server, redis_resource, max_response_bytes=None).fetch(CID) == BLOCK[:4096]
    defaults = spexi(server, redis_resource, max_response_bytes=None, max_image_bytes=None)
    assert defaults._client.response_limit.max_bytes == 64 * MiB
    assert defaults._image_limit().max_bytes == 2048 * MiB
    assert pinata(server, redis_resource, max_response_bytes=None)._gateway.response_limit.max_bytes == 16 * MiB
    monkeypatch.setenv("PINATA_MAX_RESPONSE_BYTES", "2048")
    with pytest.raises(VendorResponseTooLarge, match="limit of 2048 bytes .*PINATA_MAX_RESPONSE_BYTES"):
        pinata(server, redis_resource, max_response_bytes=None).fetch(CID)
    monkeypatch.setenv("SPEXI_MAX_IMAGE_BYTES", "lots")
    with pytest.raises(SettingError, match="SPEXI_MAX_IMAGE_BYTES='lots' is not a whole number"):
        spexi(server, redis_resource, max_image_bytes=None).download_order("order-1", io.BytesIO())
