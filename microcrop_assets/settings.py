"""Process-wide settings read from the environment (every name is documented in docs/configuration.md)."""

import datetime as dt
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


class SettingError(ValueError):
    """An environment variable holds a value the pipeline cannot use (the message names it)."""


def home() -> Path:
    """Local state folder (embedded database, local object store, Dagster runs, logs), resolved the
    same way from any current folder and never created here (see `ensure_home`).

    MICROCROP_HOME when set (a relative value is taken from the current folder, like any path the
    user types); else `<checkout>/.microcrop` when the package runs from a source checkout; else
    `$XDG_STATE_HOME/microcrop` (default `~/.local/state/microcrop`)."""
    configured = os.environ.get("MICROCROP_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    return default_home()


def default_home(package_dir: Path = PACKAGE_DIR) -> Path:
    checkout = package_dir.parent
    if (checkout / "pyproject.toml").is_file():  # an editable install or a run from the clone
        return checkout / ".microcrop"
    state = os.environ.get("XDG_STATE_HOME")
    # the XDG spec ignores relative values
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "microcrop"


def ensure_home() -> Path:
    """`home()`, created if missing: for commands that write state."""
    path = home()
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingError(f"environment variable {name}={value} must be at least {minimum}")
    return value


def start_date() -> str:
    """First daily partition, MICROCROP_START_DATE (YYYY-MM-DD), default 2025-01-01."""
    raw = os.environ.get("MICROCROP_START_DATE") or "2025-01-01"
    try:
        dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingError(f"environment variable MICROCROP_START_DATE={raw!r} is not a YYYY-MM-DD date") from None
    return raw
