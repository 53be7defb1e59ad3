"""The sandbox's HTTP app: WeatherXM, Spexi and Pinata simulators behind one Starlette app.

Layout under the root URL (after each prefix the paths are the vendor's real ones):
    /weatherxm/api/v1/...                 WeatherXM Pro
    /spexi/developer-api/api/v1/...       Spexi (image search, orders)
    /pinata/...                           Pinata legacy API and v3 listing (/pinata/v3/files/{network})
    /pinata-uploads/v3/files              Pinata v3 uploads
    /ipfs/{cid}[/{path}]                  gateway
    /_sandbox/faults (GET, POST)          control: `Authorization: Bearer <control token>`, else 401
    /_sandbox/info                        read-only facts of the world (health checks), no authentication

The control token is `Credentials.control_token` (a default for the embedded demo; `serve` takes
SANDBOX_CONTROL_TOKEN from the environment), so whoever reaches the port cannot turn faults on.
"""

import dataclasses
import hmac
import json
import os
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from microcrop_assets.sandbox import pinata, spexi, weatherxm
from microcrop_assets.sandbox.config import DEFAULT_SEED, Faults, SandboxConfig
from microcrop_assets.sandbox.errors import ApiError, error_response
from microcrop_assets.sandbox.faults import FaultMiddleware
from microcrop_assets.sandbox.scenario import Scenario, load_scenario, parse_scenario
from microcrop_assets.sandbox.state import Sandbox


def create_app(config: SandboxConfig) -> Starlette:
    sandbox = Sandbox(config)
    token = config.credentials.control_token.encode()

    def refused(request: Request) -> JSONResponse | None:
        """401 unless the request carries the control token; checked before anything is read or changed."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
            return None
        message = "sandbox control needs `Authorization: Bearer <control token>` (SANDBOX_CONTROL_TOKEN)"
        return error_response(request, 401, message, {"WWW-Authenticate": 'Bearer realm="sandbox control"'})

    async def get_faults(request: Request) -> JSONResponse:
        return refused(request) or JSONResponse(sandbox.faults.faults.as_dict())

    async def set_faults(request: Request) -> JSONResponse:
        if denied := refused(request):
            return denied
        try:
            knobs = json.loads(await request.body() or b"{}")
            if not isinstance(knobs, dict):
                raise ValueError("the body must be a JSON object of fault knobs")
            faults = sandbox.faults.update(**knobs)
        except (ValueError, TypeError) as error:
            return JSONResponse({"message": str(error)}, status_code=400)
        return JSONResponse(faults.as_dict())

    async def info(request: Request) -> JSONResponse:
        world = sandbox.world
        return JSONResponse(
            {
                "seed": config.seed,
                "world_start": config.world_start.isoformat(),
                "scenario": config.scenario.source or None,
                "events": [
                    {
                        "kind": e.kind,
                        "start": e.start.isoformat(),
                        "end": e.end.isoformat(),
                        "bounds": list(e.area.bounds),
                        "intensity": e.intensity,
                    }
                    for e in config.scenario.events
                ],
                "stations": len(world.stations),
                "plots": [plot.plot_id for plot in world.plots],
                "order_delay_s": config.order_delay_s,
                "order_failure_share": config.order_failure_share,
                "station_list_shape": config.station_list_shape,
            }
        )

    legacy, uploads, gateway = pinata.PinataSimulator(sandbox).routes()
    routes = [
        Mount(weatherxm.PREFIX, routes=weatherxm.WeatherXMSimulator(sandbox).routes()),
        Mount(spexi.PREFIX, routes=spexi.SpexiSimulator(sandbox).routes()),
        Mount(pinata.UPLOADS_PREFIX, routes=uploads),
        Mount(pinata.PREFIX, routes=legacy),
        Mount(pinata.GATEWAY_PREFIX, routes=gateway),
        Route("/_sandbox/faults", get_faults, methods=["GET"]),
        Route("/_sandbox/faults", set_faults, methods=["POST"]),
        Route("/_sandbox/info", info),
    ]

    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(request, error.status, error.message, error.headers)

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(request, error.status_code, str(error.detail), dict(error.headers or {}))

    app = Starlette(
        routes=routes,
        middleware=[Middleware(FaultMiddleware, state=sandbox.faults)],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
    )
    app.state.sandbox = sandbox
    return app


def build_config(
    seed: int | None = None,
    scenario: Scenario | dict | str | Path | None = None,
    faults: Faults | dict | None = None,
    config: SandboxConfig | None = None,
    **overrides,
) -> SandboxConfig:
    """A SandboxConfig from convenient forms: scenario as a parsed Scenario, a dict or a file path;
    faults as Faults or a dict of knobs; anything else as SandboxConfig fields."""
    config = config or SandboxConfig()
    if seed is not None:
        overrides["seed"] = seed
    if isinstance(scenario, str | Path):
        overrides["scenario"] = load_scenario(scenario)
    elif isinstance(scenario, dict):
        overrides["scenario"] = parse_scenario(scenario)
    elif scenario is not None:
        overrides["scenario"] = scenario
    if isinstance(faults, dict):
        overrides["faults"] = config.faults.updated(faults)
    elif faults is not None:
        overrides["faults"] = faults
    return dataclasses.replace(config, **overrides)


def urls(root: str) -> dict[str, str]:
    """Base URLs of every simulated service under a root URL, keyed by the settings that take them."""
    root = root.rstrip("/")
    return {
        "WEATHERXM_API_URL": root + weatherxm.PREFIX,
        "SPEXI_API_URL": root + spexi.PREFIX,
        "PINATA_API_URL": root + pinata.PREFIX,
        "PINATA_UPLOADS_URL": root + pinata.UPLOADS_PREFIX,
        "PINATA_GATEWAY": root + pinata.GATEWAY_PREFIX,
    }


def serve(
    host: str = "127.0.0.1",
    port: int = 8700,
    seed: int | None = DEFAULT_SEED,
    scenario_path: str | Path | None = None,
    *,
    log_level: str = "info",
    **overrides,
) -> None:
    """Serve the sandbox until interrupted (blocking). Other keywords are SandboxConfig fields
    (order_delay_s, order_failure_share, station_list_shape, faults={...}, ...). A non-empty
    SANDBOX_CONTROL_TOKEN replaces the default control token."""
    config = build_config(seed=DEFAULT_SEED if seed is None else seed, scenario=scenario_path, **overrides)
    if os.environ.get("SANDBOX_CONTROL_TOKEN"):
        credentials = dataclasses.replace(config.credentials, control_token=os.environ["SANDBOX_CONTROL_TOKEN"])
        config = dataclasses.replace(config, credentials=credentials)
    app = create_app(config)
    print(f"MicroCrop vendor sandbox, seed {config.seed}" + (f", scenario {scenario_path}" if scenario_path else ""))
    for name, url in urls(f"http://{host}:{port}").items():
        print(f"  {name}={url}")
    print("  credentials: the sandbox defaults (microcrop_assets/sandbox/config.py, Credentials)")
    token_source = "SANDBOX_CONTROL_TOKEN" if os.environ.get("SANDBOX_CONTROL_TOKEN") else "the default in Credentials"
    print(f"  control (/_sandbox/faults): Authorization: Bearer <{token_source}>", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="off")
