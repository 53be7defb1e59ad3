"""`microcrop ndvi`: one image through the imagery pipeline's own code path."""

import argparse
from pathlib import Path

from microcrop_assets.cli.errors import UserError


def cmd_ndvi(args: argparse.Namespace) -> int:
    """One image through the imagery pipeline's own code path: COGs + STAC Items in --out, JSON on stdout."""
    import dataclasses
    import datetime as dt
    import json
    import re

    from microcrop_assets.defs.imagery.rasters import process_image
    from microcrop_assets.defs.plots.assets import read_source
    from microcrop_assets.defs.plots.registry import parse_plots

    try:
        captured_at = dt.datetime.fromisoformat(args.captured_at) if args.captured_at else None
    except ValueError:
        raise UserError(f"--captured-at {args.captured_at!r} is not an ISO 8601 date and time") from None
    if not args.plots.is_file():
        raise UserError(f"plots file {str(args.plots)!r} is not a file")
    frame = parse_plots(read_source(str(args.plots), None), str(args.plots))
    item_id = args.item_id or re.sub(r"[^A-Za-z0-9._-]", "-", args.image.stem).lstrip("._-") or "image"
    result = process_image(
        args.image,
        list(zip(frame["plot_id"], frame["geometry"], strict=True)),
        args.out,
        item_id=item_id,
        captured_at=captured_at,
    )
    report = {
        "rasters": {
            index: {"path": str(out.path), "stac": str(out.stac_path), "sha256": out.sha256, "clipped": out.clipped}
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    ndvi = commands.add_parser("ndvi", help="NDVI / EVI / LAI COGs and per-plot statistics of one GeoTIFF")
    ndvi.add_argument("image", type=Path, help="multispectral GeoTIFF (bands found by their metadata)")
    ndvi.add_argument("--plots", type=Path, required=True, help="plots GeoJSON, as `microcrop plots import` takes")
    ndvi.add_argument("--out", type=Path, required=True, help="folder for the COGs and STAC Items")
    ndvi.add_argument("--item-id", default=None, help="output name prefix / STAC id (default: the image's name)")
    ndvi.add_argument("--captured-at", default=None, help="capture time (ISO 8601) when the file's tags lack one")
    ndvi.set_defaults(func=cmd_ndvi)
