"""`microcrop cid` and `microcrop verify-proof`: a file's IPFS CID computed locally, and a payout proof
checked against its CID, its schema, the chain and its recomputed assessment."""

import argparse
import sys
from pathlib import Path

from microcrop_assets.cli.errors import UserError
from microcrop_assets.cli.resources import open_resources


def cmd_cid(args: argparse.Namespace) -> int:
    from microcrop_assets.proofs.cid import file_cid

    with open(args.file, "rb") as handle:
        try:
            print(file_cid(handle, cid_version=args.cid_version, profile=args.profile))
        except ValueError as error:  # a CID version the profile does not allow
            raise UserError(str(error)) from None
    return 0


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
        with open_resources("chain") as resources:
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
            with open_resources("object_store") as resources:
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
    assessment, plot = _printable(document["assessment_id"]), _printable(outputs["plot_id"])
    print(f"proof {cid}: assessment {assessment}, plot {plot}, day {outputs['day']}")
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


def _printable(text: str) -> str:
    """A document's text for the report, quoted when it would not print as itself: a newline or a terminal
    control sequence in a plot id must not add a line (a false "recomputed: match") to what the auditor reads.
    (The schema's `$` lets an id end in a newline.)"""
    return text if text.isprintable() else repr(text)


def add_commands(commands: argparse._SubParsersAction) -> None:
    cid = commands.add_parser("cid", help="the IPFS CID `ipfs add` would give FILE, computed locally")
    cid.add_argument("file", type=Path)
    cid.add_argument("--cid-version", type=int, choices=(0, 1), default=1)
    cid.add_argument("--profile", choices=("classic", "v1-2025"), default="classic")
    cid.set_defaults(func=cmd_cid)

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
