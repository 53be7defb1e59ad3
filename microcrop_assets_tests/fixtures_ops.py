"""Local HTTP endpoints for the operations tests: a JSON-RPC chain node and an alert webhook."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE_SEPOLIA_CHAIN_ID = 84532


class _Handler(BaseHTTPRequestHandler):
    received: list[dict]

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(request)
        if request.get("method") == "eth_chainId":  # a chain node
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": hex(BASE_SEPOLIA_CHAIN_ID)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:  # a webhook
            self.send_response(204)
            self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def http_receiver(path: str = "/") -> Iterator[tuple[str, list[dict]]]:
    """A loopback server recording every JSON body POSTed to it; answers eth_chainId like a node."""
    received: list[dict] = []
    handler = type("Handler", (_Handler,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}", received
    finally:
        server.shutdown()
        server.server_close()
