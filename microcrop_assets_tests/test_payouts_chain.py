"""Payouts on an in-process chain (eth-tester with py-evm): the receiver contract compiled from its
Vyper source, reports sent once, crashes recovered from the chain, duplicates refused, no secret shown."""

import datetime as dt
import json
import logging

import dagster as dg
import pytest
import sqlalchemy as sa
from eth_account import Account
from web3 import Web3

from microcrop_assets.cli import main
from microcrop_assets.contracts import compile_receiver, receiver_artifact
from microcrop_assets.defs.payouts.assets import payout_proofs, payouts
from microcrop_assets.defs.payouts.ledger import _LEDGER_LOCK, report_of, settle_payouts
from microcrop_assets.defs.payouts.schedules import every_minutes_cron, payout_proofs_nightly
from microcrop_assets.proofs.document import recompute
from microcrop_assets.resources.chain import ChainError, ChainResource, PayoutChain
from microcrop_assets_tests.fixtures.clients import pinata
from microcrop_assets_tests.fixtures.payouts import (
    ADMIN,
    ADMIN_KEY,
    hold_blocks,
    in_pool,
    ledger,
    mine,
    mined_status,
    register,
    reports_on_chain,
    sent,
)
from microcrop_assets_tests.fixtures.proofs import DAY, ORACLE_KEY, assess_plots


@pytest.mark.unit
def test_committed_artifact_is_what_the_source_compiles_to():
    assert compile_receiver() == receiver_artifact()


@pytest.mark.integration
def test_reports_are_sent_once_and_decode_to_the_damage_report(proven, chain):
    assert register(proven, chain) == ["POL-plot-a", "POL-plot-b", "POL-plot-c"]  # every active plot's policy
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
            "beneficiary": Web3.to_checksum_address(row.beneficiary),  # as the assessment (and its proof) record it
            "damagePercentage": row.damage_bps,
            "weatherDamage": row.weather_damage_bps,
            "satelliteDamage": row.satellite_damage_bps,
            "payoutAmount": row.payout_micro_usdc,
            "assessedAt": int(row.assessed_at.timestamp()),
        }
    with proven.begin() as conn:
        stored = conn.execute(sa.text("SELECT * FROM damage_assessments WHERE plot_id = 'plot-b'")).one()
    assert rows["plot-b"].payout_micro_usdc == stored.payout_micro_usdc > 0
    assert rows["plot-b"].beneficiary == stored.inputs["beneficiary"] and Web3.is_address(stored.inputs["beneficiary"])
    assert rows["plot-b"].satellite_damage_bps == 0 and stored.satellite_damage_bps is None  # no imagery
    assert sent(chain) == before + 2
    # the contract holds the reports, and counts them against each policy's sum insured
    assert client.contract.functions.reportCount().call() == 2
    for row in rows.values():
        assert client.policy(row.policy_id).paid_micro_usdc == row.payout_micro_usdc
    # a rerun sends nothing
    again = settle_payouts(proven, chain)
    assert again.broadcast == 0 and again.enqueued == 0 and sent(chain) == before + 2


def crash_after_broadcast(monkeypatch) -> None:
    """The worker dies right after handing the signed report to the node."""
    real_broadcast = PayoutChain.broadcast

    def broadcast_then_crash(self, signed):
        real_broadcast(self, signed)
        raise RuntimeError("worker killed after the broadcast")

    monkeypatch.setattr(PayoutChain, "broadcast", broadcast_then_crash)


@pytest.mark.integration
def test_a_crash_between_sending_and_recording_never_sends_again(proven, chain, monkeypatch):
    register(proven, chain)
    crash_after_broadcast(monkeypatch)
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
    # settled by its recorded hash: the receiver's event log (a lost ledger's way back) was not needed
    assert crashed.assessment_id in summary.confirmed and summary.recovered == []


@pytest.mark.integration
def test_a_signed_report_that_never_left_is_sent_again_unchanged(proven, chain, monkeypatch):
    register(proven, chain)

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


@pytest.mark.integration
def test_a_report_sent_before_a_crash_and_still_in_the_pool_is_awaited_not_sent_again(one_payout, chain, monkeypatch):
    register(one_payout, chain)
    held = hold_blocks(chain)
    crash_after_broadcast(monkeypatch)
    before = sent(chain)
    with pytest.raises(RuntimeError, match="worker killed"):
        settle_payouts(one_payout, held)
    monkeypatch.undo()
    crashed = ledger(one_payout)["plot-a"]
    assert crashed.status == "pending" and crashed.attempts == 1 and in_pool(chain, crashed.tx_hash)

    # the node holds the recorded transaction: the ledger waits for it and hands the node nothing
    summary = settle_payouts(one_payout, held)
    assert summary.broadcast == 0 and summary.confirmed == [] and summary.recovered == []
    assert summary.waiting == {crashed.assessment_id: f"transaction {crashed.tx_hash} not mined yet"}
    row = ledger(one_payout)["plot-a"]
    assert row.status == "submitted" and row.attempts == 1
    assert (row.tx_hash, row.nonce, row.raw_transaction) == (crashed.tx_hash, crashed.nonce, crashed.raw_transaction)

    mine(chain)
    summary = settle_payouts(one_payout, held)
    # confirmed from its own recorded hash, not found again through the receiver's event log
    assert summary.broadcast == 0 and summary.confirmed == [crashed.assessment_id] and summary.recovered == []
    row = ledger(one_payout)["plot-a"]
    assert row.status == "confirmed" and row.tx_hash == crashed.tx_hash and row.attempts == 1
    assert reports_on_chain(chain, crashed.assessment_id) == [crashed.tx_hash]
    assert sent(chain) == before + 1


@pytest.mark.integration
def test_a_resend_after_the_fees_moved_is_the_recorded_transaction_unchanged(one_payout, chain, monkeypatch):
    """The ledger has no fee bump: while its nonce is unspent, the recorded signed bytes are what is sent
    again, even when a new signature would now carry other fees (and so another hash)."""
    register(one_payout, chain)
    held = hold_blocks(chain)

    def crash_before_sending(self, signed):
        raise RuntimeError("worker killed before the broadcast")

    monkeypatch.setattr(PayoutChain, "broadcast", crash_before_sending)
    before = sent(chain)
    with pytest.raises(RuntimeError, match="worker killed"):
        settle_payouts(one_payout, held)
    monkeypatch.undo()
    signed = ledger(one_payout)["plot-a"]
    assert signed.nonce == before and not held.client().transaction_known(signed.tx_hash)

    mine(chain, blocks=3)  # empty blocks: the base fee falls, so signing the same report now gives other bytes
    client = held.client()
    resigned = client.sign(report_of(signed))
    assert resigned.nonce == signed.nonce and resigned.tx_hash != signed.tx_hash

    summary = settle_payouts(one_payout, held)
    row = ledger(one_payout)["plot-a"]
    assert (row.tx_hash, row.nonce, row.raw_transaction) == (signed.tx_hash, signed.nonce, signed.raw_transaction)
    assert summary.broadcast == 1
    assert summary.waiting == {signed.assessment_id: f"transaction {signed.tx_hash} not mined yet"}
    assert row.status == "submitted" and row.attempts == 2 and in_pool(chain, signed.tx_hash)
    assert not client.transaction_known(resigned.tx_hash)

    # still in the pool at the next run: awaited, neither signed again nor sent again
    summary = settle_payouts(one_payout, held)
    assert summary.broadcast == 0 and ledger(one_payout)["plot-a"].attempts == 2

    mine(chain)
    summary = settle_payouts(one_payout, held)
    assert summary.confirmed == [signed.assessment_id]
    assert ledger(one_payout)["plot-a"].status == "confirmed"
    assert reports_on_chain(chain, signed.assessment_id) == [signed.tx_hash]
    assert sent(chain) == before + 1


@pytest.mark.integration
def test_a_lost_ledger_finds_the_reports_on_chain(proven, chain):
    register(proven, chain)
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


@pytest.mark.integration
def test_the_contract_refuses_a_second_report_for_the_same_assessment(proven, chain):
    register(proven, chain)
    settle_payouts(proven, chain)
    client = chain.client()
    report = report_of(ledger(proven)["plot-a"])
    with pytest.raises(ChainError, match="assessment already reported"):
        client.sign(report)  # gas estimation already sees the revert
    # forced through with a fixed gas limit, the transaction is mined and reverted
    call = client.contract.functions.submitDamageReport(*report.call_args())
    assert mined_status(client, ORACLE_KEY, call) == 0
    assert client.contract.functions.reportCount().call() == 2


@pytest.mark.integration
def test_without_a_chain_payouts_wait_with_the_reason(proven):
    summary = settle_payouts(proven, ChainResource())
    assert "BASE_RPC_URL" in summary.reason and "ORACLE_PRIVATE_KEY" in summary.reason
    for row in ledger(proven).values():
        assert row.status == "pending" and row.tx_hash is None and row.nonce is None and row.attempts == 0
        assert row.reason == summary.reason


@pytest.mark.integration
def test_secrets_stay_out_of_errors_logs_and_metadata(proven, chain, caplog):
    caplog.set_level(logging.DEBUG)
    register(proven, chain)
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
    with pytest.raises(ChainError, match="RECEIVER_ADMIN_PRIVATE_KEY is not a usable private key") as caught:
        chain.admin("0xnot-an-admin-key-but-secret")
    assert "not-an-admin-key-but-secret" not in str(caught.value)
    # the asset's metadata and logs
    result = dg.materialize([payouts], resources={"timescaledb": proven, "chain": chain})
    metadata = result.asset_materializations_for_node("payouts")[0].metadata
    text = repr(metadata) + caplog.text + "".join(str(e) for e in result.all_events)
    assert metadata["transactions_sent"].value == 2, metadata
    assert metadata["confirmed"].value == 2
    assert ORACLE_KEY[2:] not in text and ADMIN_KEY[2:] not in text and "rpc-api-token" not in text


@pytest.mark.integration
def test_one_run_at_a_time_settles_the_ledger(proven, chain):
    register(proven, chain)
    with proven.engine.connect() as other_run:
        other_run.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _LEDGER_LOCK})
        summary = settle_payouts(proven, chain)
        other_run.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LEDGER_LOCK})
        other_run.commit()
    assert summary.broadcast == 0 and "another run is settling payouts" in summary.reason
    assert settle_payouts(proven, chain).broadcast == 2


@pytest.mark.integration
def test_end_to_end_triggered_assessments_to_confirmed_payouts(
    clean_assessments, chain, sandbox, redis_resource, s3_store
):
    """damage_assessments (the damage asset on its input tables) -> payout_proofs (sandbox Pinata over
    HTTP) -> payouts (in-process chain), each materialized by Dagster."""
    db = clean_assessments
    assess_plots(db, [("E2E-dry", 0.5, 0.45), ("E2E-fine", 0.02, 0.6)])
    register(db, chain)
    client = pinata(sandbox, redis_resource)
    resources = {"timescaledb": db, "pinata": client, "object_store": s3_store, "chain": chain}
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


@pytest.mark.integration
def test_deploy_and_register_commands_then_the_payouts_confirm(proven, chain, database_url, monkeypatch, capsys):
    """`microcrop chain deploy-receiver --admin` and `microcrop chain register-policies` from the
    environment: payouts wait while their policies are unregistered, and confirm once they are."""
    monkeypatch.setenv("BASE_RPC_URL", chain.rpc_url)  # the in-process chain, reached by its registered URL
    monkeypatch.setenv("BASE_CHAIN_ID", str(chain.chain_id))
    monkeypatch.setenv("ORACLE_PRIVATE_KEY", ORACLE_KEY)
    assert main(["chain", "deploy-receiver", "--admin", ADMIN]) == 0
    out = capsys.readouterr().out
    address = out.split("PAYOUT_RECEIVER_ADDRESS=")[1].strip()
    assert Web3.is_checksum_address(address) and ORACLE_KEY[2:] not in out
    deployed = chain.with_receiver(address)
    client = deployed.client()
    assert client.oracle_address() == Account.from_key(ORACLE_KEY).address and client.admin_address() == ADMIN

    before = sent(chain)
    summary = settle_payouts(proven, deployed)
    assert summary.broadcast == 0 and sent(chain) == before and len(summary.waiting) == 2
    for row in ledger(proven).values():
        assert row.status == "pending" and row.tx_hash is None and row.attempts == 0 and row.last_error is None
        assert row.reason == (
            f"policy {row.policy_id} is not registered on the receiver {address}: its admin registers it"
            " (microcrop chain register-policies)"
        )

    monkeypatch.setenv("PAYOUT_RECEIVER_ADDRESS", address)
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["chain", "register-policies"]) == 2
    assert "no receiver admin configured: set RECEIVER_ADMIN_PRIVATE_KEY" in capsys.readouterr().err
    monkeypatch.setenv("RECEIVER_ADMIN_PRIVATE_KEY", ADMIN_KEY)
    assert main(["chain", "register-policies"]) == 0
    out, err = capsys.readouterr()
    assert f"receiver {address}: 3 policies registered, 0 already registered with these terms, 0 refused" in out
    assert ADMIN_KEY[2:] not in out + err
    registration = client.policy("POL-plot-a")
    assert registration.sum_insured_micro_usdc == 10_000 * 10**6 and registration.paid_micro_usdc == 0
    assert registration.beneficiary == Web3.to_checksum_address(ledger(proven)["plot-a"].beneficiary)
    assert main(["chain", "register-policies"]) == 0  # nothing new to register: nothing sent
    assert "0 policies registered, 3 already registered with these terms" in capsys.readouterr().out

    summary = settle_payouts(proven, deployed)
    assert summary.broadcast == 2 and len(summary.confirmed) == 2
    assert {row.status for row in ledger(proven).values()} == {"confirmed"}
    # the admin's emergency controls from the command line
    assert main(["chain", "pause"]) == 0 and client.paused()
    assert f"receiver {address}: paused" in capsys.readouterr().out
    assert main(["chain", "unpause"]) == 0 and not client.paused()
    replacement = Account.create().address
    assert main(["chain", "set-oracle", replacement]) == 0 and client.oracle_address() == replacement
    assert f"receiver {address}: the oracle is now {replacement}" in capsys.readouterr().out
    assert main(["chain", "set-oracle", "0x1234"]) == 2
    assert "0x1234" in capsys.readouterr().err
    assert main(["chain", "deploy-receiver", "--admin", "0x1234"]) == 2
    assert "receiver admin '0x1234' is not an EVM address" in capsys.readouterr().err
    monkeypatch.delenv("ORACLE_PRIVATE_KEY")
    assert main(["chain", "deploy-receiver", "--admin", ADMIN]) == 2
    assert "set ORACLE_PRIVATE_KEY" in capsys.readouterr().err


@pytest.mark.unit
def test_schedules():
    assert every_minutes_cron(10) == "*/10 * * * *" and every_minutes_cron(120) == "0 */2 * * *"
    with pytest.raises(ValueError, match="DAMAGE_PAYOUT_CHECK_INTERVAL=90"):
        every_minutes_cron(90)
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 6, 21, 2, 0, tzinfo=dt.UTC))
    request = payout_proofs_nightly(context)
    assert request.partition_key == "2025-06-20" and request.run_key == "payout-proofs-2025-06-20"


@pytest.mark.integration
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
