"""Vendor-shaped errors: Pinata answers {"error": {"reason", "details"}}, WeatherXM and Spexi {"message"}."""

import math

from starlette.requests import Request
from starlette.responses import JSONResponse

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def reason(status: int) -> str:
    return _REASONS.get(status, "Error")


def error_body(path: str, status: int, message: str) -> dict:
    if path.startswith(("/pinata", "/ipfs")):
        return {"error": {"reason": reason(status).upper().replace(" ", "_"), "details": message}}
    return {"message": message}


def error_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, status, message), status_code=status, headers=headers)


def number(request: Request, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A required numeric query parameter within [low, high], else 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        raise ApiError(400, f"query parameter {name!r} is required")
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name}={raw!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(400, f"query parameter {name}={raw!r} must be between {low:g} and {high:g}")
    return value
