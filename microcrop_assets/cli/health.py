"""`microcrop health`: one line per service; exit code 1 when a required one is down."""

import argparse


def cmd_health(args: argparse.Namespace) -> int:
    from microcrop_assets.defs.monitoring.health import check_all, print_report
    from microcrop_assets.resources.environment import build_resources

    return print_report(check_all(build_resources()))  # each service initialised in its own check


def add_commands(commands: argparse._SubParsersAction) -> None:
    health = commands.add_parser("health", help="one line per service; exits 1 when a required one is down")
    health.set_defaults(func=cmd_health)
