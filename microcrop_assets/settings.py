"""Process-wide settings read from the environment (the names are documented in README)."""

import datetime as dt
import os
from pathlib import Path


def home() -> Path:
    """Local state folder: embedded database, local object store, sandbox state."""
    path = Path(os.environ.get("MICROCROP_HOME") or ".microcrop").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={value} must be at least {minimum}")
    return value


def start_date() -> str:
    """First daily partition, MICROCROP_START_DATE (YYYY-MM-DD), default 2025-01-01."""
    raw = os.environ.get("MICROCROP_START_DATE") or "2025-01-01"
    try:
        dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"environment variable MICROCROP_START_DATE={raw!r} is not a YYYY-MM-DD date") from None
    return raw
