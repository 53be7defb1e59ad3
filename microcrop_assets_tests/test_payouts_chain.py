"""Payouts on an in-process chain (eth-tester with py-evm): the receiver contract compiled from its
Vyper source, reports sent once, crashes recovered from the chain, duplicates refused, no secret shown."""

import datetime as dt
import json
import logging

import dagster as dg
import pytest
import sqlalchemy as sa
from eth_account import Account
from web3 import EthereumTesterProvider, Web3

from microcrop_assets.cli import main
from microcrop_assets.contracts import compile_receiver, receiver_artifact
from microcrop_assets.payouts.assets import every_minutes_cron, payout_proofs, payout_proofs_nightly, payouts
from microcrop_assets.payouts.ledger import _LEDGER_LOCK, report_of, settle_payouts
from microcrop_assets.proofs.document import recompute
from microcrop_assets.resources.chain import ChainError, ChainResource, PayoutChain
from microcrop_assets_tests.fixtures_clients import pinata
from microcrop_assets_tests.fixtures_proofs import (
    DAY,
    ORACLE_KEY,
    assess_plots,
    clean_assessments,
    damage_db_fixture,
    proven,
)

__all__ = ["clean_assessments", "damage_db_fixture", "proven"]


@pytest.fixture
def chain() -> ChainResource:
    """A fresh in-process chain with a funded oracle and the receiver deployed by it."""
    provider = EthereumTesterProvider()
    web3 = Web3(provider)
    oracle = Account.from_key(ORACLE_KEY).address
    web3.eth.send_transaction({"from": web3.eth.accounts[0], "to": oracle, "value": 10**19})
    resource = ChainResource.in_process(provider, chain_id=web3.eth.chain_id, private_key=ORACLE_KEY)
    return resource.with_receiver(resource.deploy_receiver())


def ledger(db) -> dict[str, sa.Row]:
    with db.begin() as conn:
        return {row.plot_id: row for row in conn.execute(sa.text("SELECT * FROM payouts")).all()}


def sent(chain: ChainResource) -> int:
    client = chain.client()
    return client.web3.eth.get_transaction_count(client.sender, "latest")


def test_committed_artifact_is_what_the_source_compiles_to():
    assert compile_receiver() == receiver_artifact()


def test_reports_are_sent_once_and_decode_to_the_damage_report(proven, chain):
    before = sent(chain)
    summary = settle_payouts(proven, chain)
    assert summary.enqueued == 2 and summary.broadcast == 2 and len(summary.confirmed) == 2
    rows = ledger(proven)
    assert set(rows) == {"plot-a", "plot-b"}  # plot-c did not trigger
    assert sorted(row.nonce for row in rows.values()) == [before, before + 1]  # both sent, then both awaited
    client = chain.client()
    for row in rows.values():
        assert row.status == "confirmed" and row.attempts == 1 and row.last_error is None
        receipt = client.web3.eth.get_transaction_receipt(row.tx_hash)
        assert receipt["status"] == 1 and receipt["blockNumber"] == row.block_number
        transaction = client.web3.eth.get_transaction(row.tx_hash)
        assert transaction["type"] == 2 and transaction["from"] == client.sender == row.sender_address  # EIP-1559
        assert transaction["to"] == client.contract.address and transaction["nonce"] == row.nonce
        arguments = client.decode_report(row.tx_hash)
        assert arguments["assessmentId"] == Web3.keccak(text=row.assessment_id)
        assert arguments["proofCid"] == row.proof_cid
        assert arguments["report"] == {
            "policyId": row.policy_id,
            "damagePercentage": row.damage_bps,
            "weatherDamage": row.weather_damage_bps,
            "satelliteDamage": row.satellite_damage_bps,
            "payoutAmount": row.payout_micro_usdc,
            "assessedAt": int(row.assessed_at.timestamp()),
        }
    with proven.begin() as conn:
        stored = conn.execute(sa.text("SELECT * FROM damage_assessments WHERE plot_id = 'plot-b'")).one()
    assert rows["plot-b"].payout_micro_usdc == stored.payout_micro_usdc > 0
    assert rows["plot-b"].satellite_damage_bps == 0 and stored.satellite_damage_bps is None  # no imagery
    assert sent(chain) == before + 2
    # the contract holds the reports
    assert client.contract.functions.reportCount().call() == 2
    # a rerun sends nothing
    again = settle_payouts(proven, chain)
    assert again.broadcast == 0 and again.enqueued == 0 and sent(chain) == before + 2


def test_a_crash_between_sending_and_recording_never_sends_again(proven, chain, monkeypatch):
    real_broadcast = PayoutChain.broadcast

    def broadcast_then_crash(self, signed):
        real_broadcast(self, signed)
        raise RuntimeError("worker killed after the broadcast")

    monkeypatch.setattr(PayoutChain, "broadcast", broadcast_then_crash)
    before = sent(chain)
    with pytest.raises(RuntimeError, match="worker killed"):
        settle_payouts(proven, chain)
    [crashed] = [row for row in ledger(proven).values() if row.tx_hash]  # recorded before the broadcast
    assert crashed.status == "pending"
    assert sent(chain) == before + 1
    monkeypatch.undo()
    summary = settle_payouts(proven, chain)
    assert sent(chain) == before + 2  # the other plot's first send only; the crashed one found on chain
    assert summary.broadcast == 1
    row = ledger(proven)[crashed.plot_id]
    assert row.status == "confirmed" and row.tx_hash == crashed.tx_hash and row.attempts == 1


def test_a_signed_report_that_never_left_is_sent_again_unchanged(proven, chain, monkeypatch):
    def crash_before_sending(self, signed):
        raise RuntimeError("worker killed before the broadcast")

    monkeypatch.setattr(PayoutChain, "broadcast", crash_before_sending)
    before = sent(chain)
    with pytest.raises(RuntimeError):
        settle_payouts(proven, chain)
    [signed] = [row for row in ledger(proven).values() if row.tx_hash]
    assert sent(chain) == before
    monkeypatch.undo()
    settle_payouts(proven, chain)
    row = ledger(proven)[signed.plot_id]
    assert row.status == "confirmed" and row.tx_hash == signed.tx_hash and row.nonce == signed.nonce
    assert sent(chain) == before + 2


def test_a_lost_ledger_finds_the_reports_on_chain(proven, chain):
    settle_payouts(proven, chain)
    first = {plot: row.tx_hash for plot, row in ledger(proven).items()}
    before = sent(chain)
    with proven.begin() as conn:
        conn.execute(sa.text("TRUNCATE payouts"))
    summary = settle_payouts(proven, chain)
    assert summary.broadcast == 0 and sorted(summary.recovered) == sorted(
        r.assessment_id for r in ledger(proven).values()
    )
    assert {plot: row.tx_hash for plot, row in ledger(proven).items()} == first
    assert sent(chain) == before


def test_the_contract_refuses_a_second_report_for_the_same_assessment(proven, chain):
    settle_payouts(proven, chain)
    client = chain.client()
    report = report_of(ledger(proven)["plot-a"])
    with pytest.raises(ChainError, match="assessment already reported"):
        client.sign(report)  # gas estimation already sees the revert
    # forced through with a fixed gas limit, the transaction is mined and reverted
    call = client.contract.functions.submitDamageReport(*report.call_args())
    block = client.web3.eth.get_block("latest")
    transaction = call.build_transaction(
        {
            "from": client.sender,
            "nonce": client.mined_nonce(),
            "gas": 300_000,
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
            "chainId": client.chain_id,
        }
    )
    tx_hash = client.web3.eth.send_raw_transaction(
        Account.from_key(ORACLE_KEY).sign_transaction(transaction).raw_transaction
    )
    assert client.web3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    assert client.contract.functions.reportCount().call() == 2


def test_without_a_chain_payouts_wait_with_the_reason(proven):
    summary = settle_payouts(proven, ChainResource())
    assert "BASE_RPC_URL" in summary.reason and "ORACLE_PRIVATE_KEY" in summary.reason
    for row in ledger(proven).values():
        assert row.status == "pending" and row.tx_hash is None and row.nonce is None and row.attempts == 0
        assert row.reason == summary.reason


def test_secrets_stay_out_of_errors_logs_and_metadata(proven, chain, caplog):
    caplog.set_level(logging.DEBUG)
    rpc = "http://127.0.0.1:9/v2/rpc-api-token-do-not-log"
    unreachable = ChainResource(
        rpc_url=rpc, chain_id=84532, private_key=ORACLE_KEY, receiver_address=chain.receiver_address
    )
    with pytest.raises(ChainError) as caught:
        unreachable.client()
    assert "rpc-api-token-do-not-log" not in str(caught.value) and ORACLE_KEY[2:] not in str(caught.value)
    assert ORACLE_KEY[2:] not in repr(unreachable) and "rpc-api-token" not in repr(unreachable)
    assert unreachable.describe() == f"chain 84532 via 127.0.0.1, receiver {chain.receiver_address}"
    summary = settle_payouts(proven, unreachable)
    assert "connecting to the chain failed" in summary.reason and "rpc-api-token" not in summary.reason
    wrong_chain = ChainResource.in_process(
        chain._provider, chain_id=1, private_key=ORACLE_KEY, receiver_address=chain.receiver_address
    )
    with pytest.raises(ChainError, match="BASE_CHAIN_ID is 1 but the RPC node serves chain"):
        wrong_chain.client()
    bad_key = ChainResource.in_process(
        chain._provider,
        chain_id=chain.chain_id,
        private_key="0xnot-a-key-but-secret",
        receiver_address=chain.receiver_address,
    )
    with pytest.raises(ChainError, match="ORACLE_PRIVATE_KEY is not a usable private key") as caught:
        bad_key.client()
    assert "not-a-key-but-secret" not in str(caught.value)
    # the asset's metadata and logs
    result = dg.materialize([payouts], resources={"timescaledb": proven, "chain": chain})
    metadata = result.asset_materializations_for_node("payouts")[0].metadata
    text = repr(metadata) + caplog.text + "".join(str(e) for e in result.all_events)
    assert metadata["transactions_sent"].value == 2, metadata
    assert metadata["confirmed"].value == 2
    assert ORACLE_KEY[2:] not in text and "rpc-api-token" not in text


def test_one_run_at_a_time_settles_the_ledger(proven, chain):
    with proven.engine.connect() as other_run:
        other_run.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _LEDGER_LOCK})
        summary = settle_payouts(proven, chain)
        other_run.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LEDGER_LOCK})
        other_run.commit()
    assert summary.broadcast == 0 and "another run is settling payouts" in summary.reason
    assert settle_payouts(proven, chain).broadcast == 2


def test_end_to_end_triggered_assessments_to_confirmed_payouts(
    clean_assessments, chain, sandbox, redis_resource, s3_store
):
    """damage_assessments (the damage asset on its input tables) -> payout_proofs (sandbox Pinata over
    HTTP) -> payouts (in-process chain), each materialized by Dagster."""
    db = clean_assessments
    assess_plots(db, [("E2E-dry", 0.5, 0.45), ("E2E-fine", 0.02, 0.6)])
    client = pinata(sandbox, redis_resource)
    resources = {"timescaledb": db, "pinata": client, "minio": s3_store, "chain": chain}
    result = dg.materialize([payout_proofs], partition_key=DAY.isoformat(), resources=resources)
    [proven_check] = result.get_asset_check_evaluations()
    assert proven_check.check_name == "triggered_assessments_proven" and proven_check.passed
    result = dg.materialize([payouts], resources=resources)
    assert all(check.passed for check in result.get_asset_check_evaluations())
    with db.begin() as conn:
        [row] = conn.execute(
            sa.text("SELECT d.*, p.status, p.tx_hash FROM damage_assessments d JOIN payouts p USING (assessment_id)")
        ).all()
    assert row.plot_id == "E2E-dry" and row.status == "confirmed" and row.payout_micro_usdc > 0
    arguments = chain.client().decode_report(row.tx_hash)
    assert arguments["proofCid"] == row.proof_cid and arguments["report"]["payoutAmount"] == row.payout_micro_usdc
    # the anchored CID names the pinned proof, and that proof recomputes
    document = json.loads(client.fetch(arguments["proofCid"]))
    assert recompute(document) == [] and document["inputs"]["ndvi"]["sources"][0]["ndvi_sha256"] == "ab" * 32


def test_deploy_receiver_command_and_a_receiver_that_refuses_us(proven, chain, monkeypatch, capsys):
    """`microcrop chain deploy-receiver` from the environment; a receiver with another oracle refuses
    our reports, and the payout fails after its attempts with the contract's reason."""
    monkeypatch.setenv("BASE_RPC_URL", chain.rpc_url)  # the in-process chain, reached by its registered URL
    monkeypatch.setenv("BASE_CHAIN_ID", str(chain.chain_id))
    monkeypatch.setenv("ORACLE_PRIVATE_KEY", ORACLE_KEY)
    assert main(["chain", "deploy-receiver"]) == 0
    out = capsys.readouterr().out
    address = out.split("PAYOUT_RECEIVER_ADDRESS=")[1].strip()
    assert Web3.is_checksum_address(address) and ORACLE_KEY[2:] not in out
    deployed = chain.with_receiver(address).client()
    assert deployed.contract.functions.oracle().call() == Account.from_key(ORACLE_KEY).address

    other_oracle = ChainResource.in_process(
        chain._provider, chain_id=chain.chain_id, private_key="0x" + "42" * 32, receiver_address=address
    )
    web3 = chain.client().web3
    web3.eth.send_transaction({"from": web3.eth.accounts[0], "to": other_oracle.client().sender, "value": 10**18})
    for _ in range(2):
        settle_payouts(proven, other_oracle, max_attempts=2)
    for row in ledger(proven).values():
        assert row.status == "failed" and row.attempts == 2 and row.tx_hash is None
        assert "only the oracle reports" in row.last_error
    result = dg.materialize([payouts], resources={"timescaledb": proven, "chain": other_oracle})
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "no_failed_payouts" and not check.passed and check.metadata["failed"].value == 2
    monkeypatch.delenv("ORACLE_PRIVATE_KEY")
    assert main(["chain", "deploy-receiver"]) == 2
    assert "set ORACLE_PRIVATE_KEY" in capsys.readouterr().err


def test_schedules():
    assert every_minutes_cron(10) == "*/10 * * * *" and every_minutes_cron(120) == "0 */2 * * *"
    with pytest.raises(ValueError, match="DAMAGE_PAYOUT_CHECK_INTERVAL=90"):
        every_minutes_cron(90)
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 6, 21, 2, 0, tzinfo=dt.UTC))
    request = payout_proofs_nightly(context)
    assert request.partition_key == "2025-06-20" and request.run_key == "payout-proofs-2025-06-20"


def test_a_report_the_contract_could_never_take_fails_without_sending(clean_assessments, chain):
    long_plot = "plot-long"
    [row] = assess_plots(clean_assessments, [(long_plot, 0.5, None, "POL-" + "x" * 70)])  # over String[64]
    with clean_assessments.begin() as conn:
        conn.execute(sa.text("UPDATE damage_assessments SET proof_cid = 'bafkreiproof'"))
    before = sent(chain)
    summary = settle_payouts(clean_assessments, chain)
    assert summary.broadcast == 0 and sent(chain) == before
    failed = ledger(clean_assessments)[long_plot]
    assert failed.status == "failed" and failed.tx_hash is None
    assert f"assessment {row['assessment_id']}: policy id" in failed.last_error and "1..64 bytes" in failed.last_error
