"""The `microcrop` command: demo, plots import, orders, cid, ndvi, sandbox, database, ui, health.

Expected failures (a missing file or object, invalid input, a bad setting, a service that is down)
end in one line on stderr, `microcrop <command>: <what is wrong>`, and exit code 1; a traceback
means a bug. A subcommand raises `UserError` for its own checks; the library errors listed in
`expected_error` (vendor, object store, database, plots file, settings) need no wrapping.

Each command group is a module with its handlers and an `add_commands` that adds its subparsers;
the modules import the project inside their handlers, so `microcrop cid` starts without Dagster.
"""

import argparse
import sys

from microcrop_assets.cli import chain, db, demo, health, imagery, orders, plots, proofs, sandbox, ui
from microcrop_assets.cli.errors import expected_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microcrop", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_commands(commands)
    plots.add_commands(commands)
    orders.add_commands(commands)
    proofs.add_commands(commands)  # cid, verify-proof
    imagery.add_commands(commands)  # ndvi
    sandbox.add_commands(commands)
    db.add_commands(commands)
    ui.add_commands(commands)
    health.add_commands(commands)
    chain.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # bad arguments: usage line + error, exit code 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        message = expected_error(error)
        if message is None:
            raise
        print(f"microcrop {args.command}: {message}", file=sys.stderr)
        return 1
