"""`microcrop sandbox serve`: the WeatherXM, Spexi and Pinata simulators over HTTP."""

import argparse


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from microcrop_assets.sandbox.server import serve

    serve(host=args.host, port=args.port, seed=args.seed, scenario_path=args.scenario)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    sandbox = commands.add_parser("sandbox", help="vendor simulators").add_subparsers(dest="action", required=True)
    serve = sandbox.add_parser("serve", help="serve WeatherXM, Spexi and Pinata simulators over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8700)
    serve.add_argument("--seed", type=int, default=None)
    serve.add_argument("--scenario", default=None, help="scenario JSON file (drought, flood, heat wave events)")
    serve.set_defaults(func=cmd_sandbox_serve)
