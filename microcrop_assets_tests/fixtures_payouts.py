"""Shared by the payouts tests: an in-process chain (eth-tester with py-evm) with a funded oracle and
receiver admin, the receiver deployed by the oracle with that admin, and the ledger as rows."""

import hashlib

import pytest
import sqlalchemy as sa
from eth_account import Account
from web3 import EthereumTesterProvider, Web3

from microcrop_assets.defs.payouts.registration import register_policies
from microcrop_assets.resources.chain import ChainResource
from microcrop_assets_tests.fixtures_proofs import ORACLE_KEY

# fixed keys for tests only: the secret-leak tests look for them in every message
ADMIN_KEY = "0x" + hashlib.sha256(b"microcrop test receiver admin").hexdigest()
ADMIN = Account.from_key(ADMIN_KEY).address
ORACLE = Account.from_key(ORACLE_KEY).address


def fund(chain: ChainResource, *addresses: str) -> None:
    web3 = Web3(chain._provider)
    for address in addresses:
        web3.eth.send_transaction({"from": web3.eth.accounts[0], "to": address, "value": 10**19})


@pytest.fixture
def chain() -> ChainResource:
    """A fresh in-process chain with a funded oracle and admin, and the receiver deployed by the oracle."""
    provider = EthereumTesterProvider()
    resource = ChainResource.in_process(provider, chain_id=Web3(provider).eth.chain_id, private_key=ORACLE_KEY)
    fund(resource, ORACLE, ADMIN)
    return resource.with_receiver(resource.deploy_receiver(ADMIN))


def register(db, chain: ChainResource) -> list[str]:
    """The admin registers the active plots' policies (what payouts need first); the policy ids."""
    summary = register_policies(db, chain.admin(ADMIN_KEY))
    assert not summary.refused, summary.refused
    return summary.registered


def ledger(db) -> dict[str, sa.Row]:
    """The payouts rows by plot, with the beneficiary the ledger reports (from the assessment's inputs)."""
    with db.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT p.*, d.inputs->>'beneficiary' AS beneficiary"
                " FROM payouts p LEFT JOIN damage_assessments d USING (assessment_id)"
            )
        ).all()
    return {row.plot_id: row for row in rows}


def sent(chain: ChainResource) -> int:
    """Transactions the oracle has had mined."""
    client = chain.client()
    return client.web3.eth.get_transaction_count(client.sender, "latest")


def mined_status(client, key: str, call) -> int:
    """`call` forced on chain from `key`'s account with a fixed gas limit (no estimate to stop it): the
    status of its receipt, 0 when the receiver reverted it."""
    account = Account.from_key(key)
    block = client.web3.eth.get_block("latest")
    transaction = call.build_transaction(
        {
            "from": account.address,
            "nonce": client.web3.eth.get_transaction_count(account.address, "latest"),
            "gas": 300_000,
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
            "chainId": client.chain_id,
        }
    )
    tx_hash = client.web3.eth.send_raw_transaction(account.sign_transaction(transaction).raw_transaction)
    return client.web3.eth.wait_for_transaction_receipt(tx_hash)["status"]
