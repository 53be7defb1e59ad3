"""Configuration of the vendor sandbox: seed, scenario, credentials, order behaviour and fault knobs."""

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microcrop_assets.sandbox.scenario import Scenario

DEFAULT_SEED = 2025
DEFAULT_WORLD_START = dt.date(2023, 1, 1)
DEFAULT_PLOTS_FILE = Path(__file__).resolve().parent.parent / "defs" / "plots" / "demo_plots.geojson"
STATION_LIST_SHAPES = ("live", "reference")
FAIL_STATUSES = (404, 429, 500, 502, 503, 504)  # 404: a station or order the vendor no longer knows


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Credentials:
    weatherxm_api_key: str = "sandbox-weatherxm-key"
    spexi_api_key: str = "sandbox-spexi-key"
    pinata_jwt: str = "sandbox-pinata-jwt"
    pinata_api_key: str = "sandbox-pinata-key"
    pinata_secret_api_key: str = "sandbox-pinata-secret"
    # /_sandbox/faults takes `Authorization: Bearer <control_token>`; `serve` reads SANDBOX_CONTROL_TOKEN
    control_token: str = "sandbox-control-token"

    def __repr__(self) -> str:
        # the sandbox keys are not secret, but the habit of never printing keys is kept
        return "Credentials(...)"


@dataclass(frozen=True)
class Faults:
    """Fault injection knobs. Shares are probabilities per matching request, drawn from a seeded
    sequence that restarts whenever the knobs are set, so a test sees the same faults every run."""

    latency_ms: int = 0
    share_5xx: float = 0.0
    share_429: float = 0.0
    retry_after_s: int = 1
    share_malformed: float = 0.0  # JSON answers cut in half (status 200, invalid JSON)
    share_truncated: float = 0.0  # binary downloads whose Content-Length promises more than is sent
    # path prefixes the faults above apply to, e.g. ("/weatherxm/",); empty: every vendor path
    paths: tuple[str, ...] = ()
    fail_next: int = 0  # the next N matching requests answer fail_next_status
    fail_next_status: int = 503
    # the next N matching requests are handled in full (an order is placed), then the connection
    # closes after the status line, before the body: the client cannot tell whether the vendor acted
    drop_after_handling: int = 0
    hold_response_ms: int = 0  # answers leave this long after the request was handled (read timeouts)
    malformed_next: int = 0  # the next N matching 2xx JSON answers are cut in half (then share_malformed)
    # share of station days on which a station's rain counter resets (a world property, kept here
    # because resets are what a client must survive)
    counter_reset_share: float = 1 / 30

    def __post_init__(self) -> None:
        for name in ("share_5xx", "share_429", "share_malformed", "share_truncated", "counter_reset_share"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"fault knob {name}={value!r} must be a share between 0 and 1")
        if self.share_5xx + self.share_429 > 1:
            raise ValueError(f"share_5xx + share_429 = {self.share_5xx + self.share_429} exceeds 1")
        whole_numbers = ("latency_ms", "retry_after_s", "fail_next", "malformed_next", "drop_after_handling")
        for name in (*whole_numbers, "hold_response_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"fault knob {name}={value!r} must be a whole number >= 0")
        if self.fail_next_status not in FAIL_STATUSES:
            raise ValueError(f"fault knob fail_next_status={self.fail_next_status!r}; expected one of {FAIL_STATUSES}")
        if isinstance(self.paths, str) or not all(isinstance(p, str) and p.startswith("/") for p in self.paths):
            raise ValueError(f"fault knob paths={self.paths!r} must be a list of path prefixes starting with '/'")
        object.__setattr__(self, "paths", tuple(self.paths))

    def updated(self, knobs: Mapping[str, Any]) -> "Faults":
        """These faults with some knobs replaced; unknown knob names are refused."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise ValueError(f"unknown fault knob(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **knobs)

    def as_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["paths"] = list(self.paths)
        return values


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox's answers depend on: the same config (and clock readings) gives the same bytes."""

    seed: int = DEFAULT_SEED
    scenario: Scenario = field(default_factory=Scenario)
    credentials: Credentials = field(default_factory=Credentials)
    # Spexi orders: seconds from pending to completed (processing from half way); 0 = completed at once
    order_delay_s: float = 0.0
    order_failure_share: float = 0.0
    faults: Faults = field(default_factory=Faults)
    world_start: dt.date = DEFAULT_WORLD_START  # first day with weather; stations join from here on
    plots_file: Path = DEFAULT_PLOTS_FILE
    station_count: int = 40
    # station lists as live WeatherXM answers ({"stations": [...]}, cellId) or as the reference
    # schema shows them (bare array, cellIndex); a request may also ask with ?_shape=reference
    station_list_shape: str = "live"
    pinata_rate_limit_per_minute: int = 6000  # Pinata Enterprise: 100 requests/s
    clock: Callable[[], dt.datetime] = utc_now  # "now" for latest readings, QoD, orders, pins

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"sandbox seed={self.seed!r} must be a whole number >= 0")
        if not (isinstance(self.order_delay_s, int | float) and 0 <= self.order_delay_s < math.inf):
            raise ValueError(f"order_delay_s={self.order_delay_s!r} must be a number of seconds >= 0")
        if not (isinstance(self.order_failure_share, int | float) and 0 <= self.order_failure_share <= 1):
            raise ValueError(f"order_failure_share={self.order_failure_share!r} must be a share between 0 and 1")
        if self.station_list_shape not in STATION_LIST_SHAPES:
            raise ValueError(f"station_list_shape={self.station_list_shape!r}; expected one of {STATION_LIST_SHAPES}")
        if not 8 <= self.station_count <= 500:
            raise ValueError(f"station_count={self.station_count!r} must be between 8 and 500")
        if self.pinata_rate_limit_per_minute < 1:
            raise ValueError(f"pinata_rate_limit_per_minute={self.pinata_rate_limit_per_minute!r} must be >= 1")
        object.__setattr__(self, "plots_file", Path(self.plots_file))
