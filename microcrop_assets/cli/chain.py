"""`microcrop chain`: deploy the payout receiver, register policies, and the admin's emergency controls."""

import argparse
import sys

from microcrop_assets.cli.resources import open_resources


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

    with open_resources("timescaledb", "chain") as resources:
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

    with open_resources("chain") as resources:
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


def add_commands(commands: argparse._SubParsersAction) -> None:
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
