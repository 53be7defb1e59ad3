"""Pinata simulator: the legacy API at {root}/pinata, v3 uploads at {root}/pinata-uploads, v3 listing at
{root}/pinata/v3/files/{network} and a gateway at {root}/ipfs/{cid}[/{path}].

Content is stored in memory under its true CID, computed by microcrop_assets.proofs.cid exactly as
`ipfs add` does, so a client can check a pin against its own computation.
- pinFileToIPFS: `pinataOptions.cidVersion` (0 or 1) is required here (Pinata's default is
  undocumented, so clients must send it). One `file` part is a file pin; several parts, or one part whose
  filename is a relative path (`proof/a.json`), are a folder pin: every path must sit under one top
  folder and the CID is that folder's. `wrapWithDirectory` wraps a single file in a folder.
- pinJSONToIPFS re-serialises `pinataContent` (compact JSON, keys in the order received, non-ASCII
  kept). Real Pinata's key order is unknown: to verify a CID locally, pin canonical bytes as a file.
- v3 uploads are always CIDv1; `network` defaults to private, as Pinata's does, and only public content
  is served by the gateway.
- The gateway also answers as a trustless gateway: `?format=raw` or `Accept: application/vnd.ipld.raw`
  gives the one raw block of any CID in a public pin's DAG (a folder's block lists its entries' CIDs).
Every API answer carries X-RateLimit-Limit/-Remaining/-Reset (a per-minute window on the sandbox clock);
beyond the limit: 429 with Retry-After.
"""

import base64
import contextlib
import datetime as dt
import hmac
import json
import mimetypes
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from microcrop_assets.proofs.cid import directory_dag, file_cid, file_dag
from microcrop_assets.sandbox.errors import ApiError
from microcrop_assets.sandbox.seeding import uuid_for

if TYPE_CHECKING:
    from microcrop_assets.sandbox.state import Sandbox

PREFIX = "/pinata"
UPLOADS_PREFIX = "/pinata-uploads"
GATEWAY_PREFIX = "/ipfs"
MAX_JSON_BYTES = 10 * 1024 * 1024
MAX_KEYVALUES = 10
NETWORKS = ("public", "private")
AUTH_MESSAGE = "Congratulations! You are communicating with the Pinata API!"
RAW_BLOCK = "application/vnd.ipld.raw"


@dataclass
class Pin:
    id: str
    cid: str
    name: str
    keyvalues: dict
    size: int  # PinSize: cumulative size of the DAG's blocks
    content_size: int
    number_of_files: int
    mime_type: str
    group_id: str | None
    network: str
    date_pinned: dt.datetime
    files: dict[str, bytes] = field(default_factory=dict)  # path inside the pin ("" for a file pin) -> bytes
    date_unpinned: dt.datetime | None = None
    blobs: dict[str, bytes] = field(default_factory=dict)  # CID -> bytes of every file the pin holds
    blocks: dict[str, bytes] = field(default_factory=dict)  # CID -> every block of the pin's DAG


class RateLimiter:
    """A fixed per-minute window on the sandbox clock."""

    def __init__(self, limit: int):
        self.limit = limit
        self.window = -1
        self.count = 0
        self.lock = threading.Lock()

    def hit(self, now: dt.datetime) -> tuple[dict[str, str], int | None]:
        """Headers for this answer, and the seconds to wait when over the limit (else None)."""
        epoch = int(now.timestamp())
        window = epoch // 60
        with self.lock:
            if window != self.window:
                self.window, self.count = window, 0
            self.count += 1
            count = self.count
        reset = (window + 1) * 60
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - count, 0)),
            "X-RateLimit-Reset": str(reset),
        }
        return headers, (max(reset - epoch, 1) if count > self.limit else None)


def _timestamp(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class PinataSimulator:
    """Pinata over one sandbox: pins held in memory under their true CIDs, the v3 files API and a gateway."""

    def __init__(self, sandbox: "Sandbox"):
        self.sandbox = sandbox
        self.limiter = RateLimiter(sandbox.config.pinata_rate_limit_per_minute)
        self.pins: list[Pin] = []
        self.active: dict[tuple[str, str], Pin] = {}  # (network, cid)
        self.blobs: dict[str, bytes] = {}  # file CIDs of public content, including files inside folders
        self.lock = threading.Lock()  # guards the pins, the active pins and the blobs

    def routes(self) -> tuple[list[Route], list[Route], list[Route]]:
        """(legacy + v3 listing routes, v3 upload routes, gateway routes)."""
        legacy = [
            Route("/data/testAuthentication", self._api(self.test_authentication)),
            Route("/pinning/pinFileToIPFS", self._api(self.pin_file), methods=["POST"]),
            Route("/pinning/pinJSONToIPFS", self._api(self.pin_json), methods=["POST"]),
            Route("/pinning/unpin/{cid}", self._api(self.unpin), methods=["DELETE"]),
            Route("/data/pinList", self._api(self.pin_list)),
            Route("/v3/files/{network}", self._api(self.list_v3)),
        ]
        uploads = [Route("/v3/files", self._api(self.upload_v3), methods=["POST"])]
        gateways = [Route("/{cid}", self.gateway), Route("/{cid}/{path:path}", self.gateway)]
        return legacy, uploads, gateways

    def _authorise(self, request: Request) -> None:
        credentials = self.sandbox.config.credentials
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, jwt = header.partition(" ")
            if scheme.lower() != "bearer" or not jwt:
                raise ApiError(401, "Authorization header must be 'Bearer <JWT>'")
            if not hmac.compare_digest(jwt.encode(), credentials.pinata_jwt.encode()):
                raise ApiError(401, "Invalid JWT: the token could not be verified")
            return
        key, secret = request.headers.get("pinata_api_key"), request.headers.get("pinata_secret_api_key")
        if key is None or secret is None:
            raise ApiError(
                401,
                "No authentication provided: send 'Authorization: Bearer <JWT>' or "
                "pinata_api_key and pinata_secret_api_key headers",
            )
        if not (
            hmac.compare_digest(key.encode(), credentials.pinata_api_key.encode())
            and hmac.compare_digest(secret.encode(), credentials.pinata_secret_api_key.encode())
        ):
            raise ApiError(401, "Invalid API key or secret")

    def _api(self, handler):
        """Rate limit, then authenticate; rate-limit headers on every answer, errors included."""

        async def endpoint(request: Request) -> Response:
            headers, wait = self.limiter.hit(self.sandbox.now())
            try:
                if wait is not None:
                    raise ApiError(
                        429,
                        f"rate limit of {self.limiter.limit} requests per minute exceeded",
                        {"Retry-After": str(wait)},
                    )
                self._authorise(request)
                response = await handler(request)
            except ApiError as error:
                error.headers.update(headers)
                raise
            response.headers.update(headers)
            return response

        return endpoint

    def _add(self, pin: Pin) -> tuple[Pin, bool]:
        """Store a pin; an active pin of the same CID on the same network is returned as a duplicate."""
        with self.lock:
            existing = self.active.get((pin.network, pin.cid))
            if existing is not None:
                return existing, True
            pin.id = uuid_for(self.sandbox.config.seed, "pin", len(self.pins))
            self.pins.append(pin)
            self.active[(pin.network, pin.cid)] = pin
            if pin.network == "public":
                self.blobs.update(pin.blobs)
            return pin, False

    async def test_authentication(self, request: Request) -> JSONResponse:
        return JSONResponse({"message": AUTH_MESSAGE})

    async def pin_file(self, request: Request) -> JSONResponse:
        async with _form(request) as form:
            parts = [part for part in form.getlist("file") if isinstance(part, UploadFile)]
            if not parts:
                raise ApiError(400, "no 'file' part in the multipart body")
            options = _json_field(form.get("pinataOptions"), "pinataOptions", required=True)
            version = _cid_version(options, "pinataOptions")
            name, keyvalues = _metadata(_json_field(form.get("pinataMetadata"), "pinataMetadata"), "pinataMetadata")
            contents = [(part.filename or "file", await part.read(), part.content_type) for part in parts]
        folder = len(contents) > 1 or "/" in contents[0][0]
        if not folder and options.get("wrapWithDirectory") is True:
            contents = [(f"wrap/{contents[0][0]}", contents[0][1], contents[0][2])]
            folder = True
        blocks: dict[str, bytes] = {}
        try:
            if folder:
                tree = {path: data for path, data, _ in contents}
                if len(tree) != len(contents):
                    raise ValueError("two file parts have the same path")
                dag = directory_dag(tree, cid_version=version, blocks=blocks)
                files = {path.split("/", 1)[1]: data for path, data, _ in contents}
                blobs = {file_cid(data, cid_version=version): data for data in files.values()}
                default_name, mime = contents[0][0].split("/", 1)[0], "directory"
            else:
                dag = file_dag(contents[0][1], cid_version=version, blocks=blocks)
                files = {"": contents[0][1]}
                blobs = {dag.cid: contents[0][1]}
                default_name, mime = contents[0][0], contents[0][2] or "application/octet-stream"
        except (ValueError, TypeError) as error:
            raise ApiError(400, f"cannot import the upload: {error}") from None
        pin = Pin(
            "",
            dag.cid,
            name or default_name,
            keyvalues,
            dag.dag_size,
            dag.content_size,
            len(files),
            mime,
            options.get("groupId"),
            "public",
            self.sandbox.now(),
            files,
            blobs=blobs,
            blocks=blocks,
        )
        return _legacy_answer(*self._add(pin))

    async def pin_json(self, request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_JSON_BYTES:
            raise ApiError(413, f"pinJSONToIPFS body is {len(raw)} bytes; the limit is {MAX_JSON_BYTES}")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"request body is not JSON: {error}") from None
        if not isinstance(body, dict) or "pinataContent" not in body:
            raise ApiError(400, "body must be an object with 'pinataContent'")
        options = body.get("pinataOptions")
        if not isinstance(options, dict):
            raise ApiError(400, "pinataOptions with cidVersion (0 or 1) is required")
        version = _cid_version(options, "pinataOptions")
        name, keyvalues = _metadata(body.get("pinataMetadata"), "pinataMetadata")
        data = json.dumps(body["pinataContent"], separators=(",", ":"), ensure_ascii=False).encode()
        blocks: dict[str, bytes] = {}
        dag = file_dag(data, cid_version=version, blocks=blocks)
        pin = Pin(
            "",
            dag.cid,
            name or "pinJSONToIPFS.json",
            keyvalues,
            dag.dag_size,
            dag.content_size,
            1,
            "application/json",
            options.get("groupId"),
            "public",
            self.sandbox.now(),
            {"": data},
            blobs={dag.cid: data},
            blocks=blocks,
        )
        return _legacy_answer(*self._add(pin))

    async def unpin(self, request: Request) -> Response:
        cid = request.path_params["cid"]
        with self.lock:
            pin = self.active.pop(("public", cid), None)
            if pin is None:
                raise ApiError(404, f"CID {cid} is not pinned by this account")
            pin.date_unpinned = self.sandbox.now()
            still_held = {blob for (net, _), other in self.active.items() if net == "public" for blob in other.blobs}
            for blob in pin.blobs:
                if blob not in still_held:
                    self.blobs.pop(blob, None)
        return PlainTextResponse("OK")

    async def pin_list(self, request: Request) -> JSONResponse:
        params = request.query_params
        limit = _int_param(params, "pageLimit", 10, 1, 1000)
        offset = _int_param(params, "pageOffset", 0, 0, 10**9)
        status = params.get("status", "all")
        if status not in ("all", "pinned", "unpinned"):
            raise ApiError(400, f"status={status!r} must be all, pinned or unpinned")
        with self.lock:
            rows = [p for p in reversed(self.pins) if p.network == "public"]
        if "cid" in params:
            rows = [p for p in rows if p.cid == params["cid"]]
        if "hashContains" in params:
            rows = [p for p in rows if params["hashContains"] in p.cid]
        if status != "all":
            rows = [p for p in rows if (p.date_unpinned is None) == (status == "pinned")]
        return JSONResponse({"count": len(rows), "rows": [_pin_row(p) for p in rows[offset : offset + limit]]})

    async def upload_v3(self, request: Request) -> JSONResponse:
        async with _form(request) as form:
            parts = [part for part in form.getlist("file") if isinstance(part, UploadFile)]
            if len(parts) != 1:
                raise ApiError(400, f"v3 uploads take exactly one 'file' part, got {len(parts)} (no folders on v3)")
            network = form.get("network") or "private"
            if network not in NETWORKS:
                raise ApiError(400, f"network={network!r} must be 'public' or 'private'")
            keyvalues = _json_field(form.get("keyvalues"), "keyvalues") or {}
            _, keyvalues = _metadata({"keyvalues": keyvalues}, "keyvalues")
            data = await parts[0].read()
            name = form.get("name") or parts[0].filename or "file"
            content_type, group_id = parts[0].content_type, form.get("group_id")
        blocks: dict[str, bytes] = {}
        dag = file_dag(data, cid_version=1, blocks=blocks)
        pin = Pin(
            "",
            dag.cid,
            str(name),
            keyvalues,
            dag.dag_size,
            dag.content_size,
            1,
            content_type or "application/octet-stream",
            group_id or None,
            network,
            self.sandbox.now(),
            {"": data},
            blobs={dag.cid: data},
            blocks=blocks,
        )
        pin, duplicate = self._add(pin)
        return JSONResponse({"data": {**_v3_file(pin), "is_duplicate": duplicate}})

    async def list_v3(self, request: Request) -> JSONResponse:
        network = request.path_params["network"]
        if network not in NETWORKS:
            raise ApiError(400, f"network={network!r} must be 'public' or 'private'")
        params = request.query_params
        limit = _int_param(params, "limit", 10, 1, 1000)
        token = params.get("pageToken")
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, f"pageToken={token!r} is not a token this API returned") from None
        with self.lock:
            files = [p for p in reversed(self.pins) if p.network == network and p.date_unpinned is None]
        for key in ("cid", "name"):
            if key in params:
                files = [p for p in files if getattr(p, key) == params[key]]
        page = files[offset : offset + limit]
        more = offset + limit < len(files)
        next_token = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None
        return JSONResponse({"data": {"files": [_v3_file(p) for p in page], "next_page_token": next_token}})

    async def gateway(self, request: Request) -> Response:
        cid, path = request.path_params["cid"], request.path_params.get("path", "").strip("/")
        if request.query_params.get("format") == "raw" or RAW_BLOCK in request.headers.get("accept", ""):
            return self._raw_block(cid, path)
        with self.lock:
            pin = self.active.get(("public", cid))
            blob = self.blobs.get(cid)
        headers = {"Etag": f'"{cid}"', "X-Ipfs-Path": f"/ipfs/{cid}" + (f"/{path}" if path else "")}
        if pin is not None and "" not in pin.files:  # a folder
            if path in pin.files:
                mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
                return Response(pin.files[path], media_type=mime, headers=headers)
            below = sorted(
                name[len(path) + 1 :] if path else name for name in pin.files if not path or name.startswith(path + "/")
            )
            if not below:
                raise ApiError(404, f"no {path!r} in folder {cid}")
            return PlainTextResponse("".join(f"{name}\n" for name in below), headers=headers)
        if blob is None:
            raise ApiError(404, f"{cid} is not available from this gateway")
        if path:
            raise ApiError(404, f"{cid} is a file, it has no path {path!r}")
        mime = pin.mime_type if pin is not None else "application/octet-stream"
        return Response(blob, media_type=mime, headers=headers)

    def _raw_block(self, cid: str, path: str) -> Response:
        """Trustless gateway: the block exactly as hashed, from any public pin whose DAG holds it."""
        if path:
            raise ApiError(400, f"a raw block is asked for by its own CID, not a path ({cid}/{path})")
        with self.lock:
            block = next(
                (
                    pin.blocks[cid]
                    for (network, _), pin in self.active.items()
                    if network == "public" and cid in pin.blocks
                ),
                None,
            )
        if block is None:
            raise ApiError(404, f"no block {cid} on this gateway")
        return Response(block, media_type=RAW_BLOCK, headers={"Etag": f'"{cid}.raw"', "X-Ipfs-Path": f"/ipfs/{cid}"})


def _legacy_answer(pin: Pin, duplicate: bool) -> JSONResponse:
    return JSONResponse(
        {
            "IpfsHash": pin.cid,
            "PinSize": pin.size,
            "Timestamp": _timestamp(pin.date_pinned),
            "isDuplicate": duplicate,
        }
    )


@contextlib.asynccontextmanager
async def _form(request: Request) -> AsyncIterator[FormData]:
    """The multipart form, its spooled upload files closed when the block ends."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "expected a multipart/form-data body")
    try:
        form = await request.form(max_files=10_000, max_fields=100)
    except Exception as error:  # noqa: BLE001 - the multipart parser raises several types; all mean a bad body
        raise ApiError(400, f"unreadable multipart body: {error}") from None
    try:
        yield form
    finally:
        await form.close()


def _json_field(raw, name: str, required: bool = False):
    if raw is None or raw == "":
        if required:
            raise ApiError(400, f'{name} is required (a JSON string, e.g. {{"cidVersion": 1}})')
        return None
    if isinstance(raw, UploadFile):
        raise ApiError(400, f"{name} must be a form field, not a file")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ApiError(400, f"{name} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"{name} must be a JSON object")
    return value


def _cid_version(options: dict, name: str) -> int:
    version = options.get("cidVersion")
    if isinstance(version, bool) or version not in (0, 1):
        raise ApiError(400, f"{name}.cidVersion={version!r} must be 0 or 1 (the sandbox requires it)")
    return int(version)


def _metadata(metadata, name: str) -> tuple[str | None, dict]:
    if metadata is None:
        return None, {}
    if not isinstance(metadata, dict):
        raise ApiError(400, f"{name} must be an object {{name, keyvalues}}")
    label = metadata.get("name")
    if label is not None and not isinstance(label, str):
        raise ApiError(400, f"{name}.name={label!r} must be a string")
    keyvalues = metadata.get("keyvalues") or {}
    if not isinstance(keyvalues, dict):
        raise ApiError(400, f"{name}.keyvalues must be an object")
    if len(keyvalues) > MAX_KEYVALUES:
        raise ApiError(400, f"{name}.keyvalues has {len(keyvalues)} entries; at most {MAX_KEYVALUES} are allowed")
    bad = [key for key, value in keyvalues.items() if isinstance(value, dict | list)]
    if bad:
        raise ApiError(400, f"{name}.keyvalues {bad} must be strings, numbers or dates, not objects or lists")
    return label, keyvalues


def _int_param(params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name}={value} must be between {low} and {high}")
    return value


def _pin_row(pin: Pin) -> dict:
    return {
        "id": pin.id,
        "ipfs_pin_hash": pin.cid,
        "size": pin.size,
        "user_id": "sandbox-user",
        "date_pinned": _timestamp(pin.date_pinned),
        "date_unpinned": _timestamp(pin.date_unpinned) if pin.date_unpinned else None,
        "metadata": {"name": pin.name, "keyvalues": pin.keyvalues or None},
        "regions": [{"regionId": "FRA1", "currentReplicationCount": 1, "desiredReplicationCount": 1}],
        "mime_type": pin.mime_type,
        "number_of_files": pin.number_of_files,
    }


def _v3_file(pin: Pin) -> dict:
    return {
        "id": pin.id,
        "name": pin.name,
        "cid": pin.cid,
        "size": pin.content_size,
        "created_at": _timestamp(pin.date_pinned),
        "number_of_files": pin.number_of_files,
        "mime_type": pin.mime_type,
        "group_id": pin.group_id,
        "keyvalues": pin.keyvalues,
    }
