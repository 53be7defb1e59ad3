"""Fault injection in front of every vendor route: latency, 5xx, 429 with Retry-After, malformed JSON,
truncated downloads, "fail the next N requests" (5xx, 429 or 404), "cut the next N JSON answers", and
answers lost after the request was handled (connection dropped, or held past the client's read timeout).

Faults apply to requests whose path starts with one of `Faults.paths` (every vendor path when empty;
never /_sandbox/). Share-based faults draw from a sequence seeded by the sandbox seed and the number of
the matching request since the knobs were last set, so the same requests see the same faults.
"""

import asyncio
import json
import threading
from collections import Counter
from dataclasses import dataclass

from microcrop_assets.sandbox.config import Faults
from microcrop_assets.sandbox.errors import error_body, reason
from microcrop_assets.sandbox.seeding import unit

CONTROL_PREFIX = "/_sandbox/"


@dataclass(frozen=True)
class Decision:
    """The faults applied to one request: an error status, or a body to corrupt, or neither."""

    faults: Faults
    number: int  # the request's place in the fault sequence
    status: int | None = None
    corrupt: str | None = None  # "malformed" (JSON cut in half) or "truncated" (short binary stream)


class FaultState:
    """The current knobs and the request sequence they are drawn along (shared by every request)."""

    def __init__(self, seed: int, faults: Faults):
        self.seed = seed
        self.configured = faults
        self._lock = threading.Lock()
        # (method, path) -> requests that reached the vendor's handler, faults or not: what the vendor
        # acted on (say orders placed), for tests that a client never repeats a request that may have
        self.handled: Counter[tuple[str, str]] = Counter()
        self.set(faults)

    def set(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._remaining_failures = faults.fail_next
            self._remaining_drops = faults.drop_after_handling
            self._remaining_malformed = faults.malformed_next
            self._sequence = 0

    def take_drop(self) -> bool:
        """Whether this handled request's answer is to be dropped (one of the next N)."""
        with self._lock:
            if self._remaining_drops > 0:
                self._remaining_drops -= 1
                return True
            return False

    def update(self, **knobs) -> Faults:
        """Knobs given are set, the others return to their configured values; the sequence restarts."""
        faults = self.configured.updated(knobs)
        self.set(faults)
        return faults

    def decide(self, path: str) -> Decision | None:
        """What to do to a request, or None if the faults do not cover its path."""
        if path.startswith(CONTROL_PREFIX):
            return None
        with self._lock:
            faults = self.faults
            if faults.paths and not path.startswith(faults.paths):
                return None
            number = self._sequence
            self._sequence += 1
            if self._remaining_failures > 0:
                self._remaining_failures -= 1
                return Decision(faults, number, status=faults.fail_next_status)
            if self._remaining_malformed > 0:  # counted on every covered request; only JSON 200s are cut
                self._remaining_malformed -= 1
                return Decision(faults, number, corrupt="malformed")
        draw = unit(self.seed, "fault-status", number)
        if draw < faults.share_5xx:
            return Decision(faults, number, status=(500, 502, 503)[int(unit(self.seed, "fault-5xx", number) * 3)])
        if draw < faults.share_5xx + faults.share_429:
            return Decision(faults, number, status=429)
        if unit(self.seed, "fault-malformed", number) < faults.share_malformed:
            return Decision(faults, number, corrupt="malformed")
        if unit(self.seed, "fault-truncated", number) < faults.share_truncated:
            return Decision(faults, number, corrupt="truncated")
        return Decision(faults, number)


class FaultMiddleware:
    """ASGI middleware applying FaultState's decisions."""

    def __init__(self, app, state: FaultState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        decision = self.state.decide(path)
        if decision is None:
            if not path.startswith(CONTROL_PREFIX):
                self.state.handled[(scope["method"], path)] += 1
            await self.app(scope, receive, send)
            return
        faults = decision.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if decision.status is not None:
            await _send_error(send, path, decision.status, faults.retry_after_s)
            return
        if decision.corrupt:
            send = _Corrupting(send, decision.corrupt)
        if self.state.take_drop():
            send = _Lost(send, hold_ms=0, drop=True)
        elif faults.hold_response_ms:
            send = _Lost(send, hold_ms=faults.hold_response_ms, drop=False)
        self.state.handled[(scope["method"], path)] += 1
        await self.app(scope, receive, send)


async def _send_error(send, path: str, status: int, retry_after_s: int) -> None:
    message = f"{reason(status)} (sandbox fault injection)"
    body = json.dumps(error_body(path, status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 429:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Corrupting:
    """Wraps `send`: a 2xx JSON answer is cut to half its bytes (Content-Length fixed, so the body is
    complete but not JSON); a binary answer keeps its Content-Length but stops after half its bytes."""

    def __init__(self, send, mode: str):
        self.send = send
        self.mode = mode
        self.start: dict | None = None
        self.active = False
        self.finished = False
        self.expected = 0
        self.sent = 0
        self.buffer = b""

    async def __call__(self, message):
        if self.finished:
            return  # the rest of a truncated stream is dropped
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            is_json = headers.get(b"content-type", b"").startswith(b"application/json")
            self.expected = int(headers.get(b"content-length", b"0") or 0)
            self.active = (self.mode == "malformed") == is_json and 200 <= message["status"] < 300 and self.expected > 1
            if self.active and self.mode == "malformed":
                self.start = message  # sent once the whole body is known
                return
            await self.send(message)
            return
        if not self.active or message["type"] != "http.response.body":
            await self.send(message)
            return
        body = message.get("body", b"")
        if self.mode == "malformed":
            self.buffer += body
            if message.get("more_body"):
                return
            cut = self.buffer[: len(self.buffer) // 2]
            headers = [(k, v) for k, v in self.start["headers"] if k != b"content-length"]
            headers.append((b"content-length", str(len(cut)).encode()))
            await self.send({**self.start, "headers": headers})
            await self.send({"type": "http.response.body", "body": cut})
            return
        # truncated: pass bytes until half the promised length, then stop; the server closes the
        # connection of a response that never completed, and the client sees a short body
        allowed = max(self.expected // 2 - self.sent, 0)
        if len(body) >= allowed:
            self.finished = True
            await self.send({"type": "http.response.body", "body": body[:allowed], "more_body": True})
            return
        self.sent += len(body)
        await self.send(message)


class _Lost:
    """Wraps `send` of a request the vendor handles in full: its answer waits `hold_ms` first, and
    with `drop` only the status line goes out: the server closes the connection of a response that
    never completed, and the client sees the connection drop after its request was acted on."""

    def __init__(self, send, hold_ms: int, drop: bool):
        self.send = send
        self.hold_ms = hold_ms
        self.drop = drop

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            await asyncio.sleep(self.hold_ms / 1000)
            await self.send(message)
        elif not self.drop:
            await self.send(message)
