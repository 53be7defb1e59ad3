"""`microcrop plots import`: validate and load a GeoJSON FeatureCollection into the plots registry."""

import argparse

from microcrop_assets.cli.errors import UserError
from microcrop_assets.cli.resources import open_resources


def cmd_plots_import(args: argparse.Namespace) -> int:
    from microcrop_assets.defs.plots.assets import read_source
    from microcrop_assets.defs.plots.registry import parse_plots, store_plots

    with open_resources("object_store", "timescaledb") as resources:
        try:
            data = read_source(args.file, resources["object_store"])
        except ValueError as error:  # an s3:// source outside the configured bucket
            raise UserError(str(error)) from None
        frame = parse_plots(data, args.file)  # PlotsFileError lists every invalid feature
        summary = store_plots(resources["timescaledb"], frame, args.file)
    print(
        f"{args.file}: {summary.inserted} inserted, {summary.updated} updated, {summary.unchanged} unchanged, "
        f"{summary.deactivated} deactivated; {summary.active} active plots"
    )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    plots = commands.add_parser("plots", help="the insured-plots registry").add_subparsers(dest="action", required=True)
    plots_import = plots.add_parser("import", help="validate and load a GeoJSON FeatureCollection of plots")
    plots_import.add_argument("file", help="path or s3://bucket/key")
    plots_import.set_defaults(func=cmd_plots_import)
