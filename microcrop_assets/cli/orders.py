"""`microcrop orders record|release`: settle a satellite order placement of unknown outcome."""

import argparse

from microcrop_assets.cli.errors import UserError
from microcrop_assets.cli.resources import open_resources


def cmd_orders_settle(args: argparse.Namespace) -> int:
    """Settle a satellite order placement of unknown outcome once Spexi has been asked about it."""
    import datetime as dt

    from microcrop_assets.defs.imagery.orders import OrderBookError, record_order, release_placement

    now = dt.datetime.now(dt.UTC)
    with open_resources("timescaledb") as resources:
        db = resources["timescaledb"]
        try:
            if args.action == "record":
                record_order(db, args.request_id, args.order_id, now)
                done = f"order {args.order_id.strip()} recorded as pending (the satellite order sensor follows it)"
            else:
                release_placement(db, args.request_id, now)
                done = "released as placement_failed (the plot may be ordered again)"
        except OrderBookError as error:
            raise UserError(str(error)) from None
    print(f"{args.request_id}: {done}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    orders = commands.add_parser("orders", help="settle satellite order placements of unknown outcome")
    settle = orders.add_subparsers(dest="action", required=True)
    record = settle.add_parser("record", help="Spexi holds an order for this placement: record its id")
    record.add_argument("request_id", help="the placement, PLOT_ID:YYYY-MM-DD (the asset check names it)")
    record.add_argument("order_id", help="Spexi's order id")
    record.set_defaults(func=cmd_orders_settle)
    release = settle.add_parser("release", help="Spexi holds no order for this placement: let the plot be ordered")
    release.add_argument("request_id", help="the placement, PLOT_ID:YYYY-MM-DD (the asset check names it)")
    release.set_defaults(func=cmd_orders_settle)
