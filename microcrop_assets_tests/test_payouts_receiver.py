"""The payout receiver enforces what its admin registered, on an in-process chain (eth-tester with
py-evm): only the oracle reports, never while paused, only for a registered policy, only to its
beneficiary and never above what is left of its sum insured; only the admin registers, rotates the
oracle, pauses and hands over. Then the ledger: an unregistered policy's payout waits, a refused
report fails at once with the receiver's reason, a paused receiver or a rotated oracle holds payouts."""

import dagster as dg
import pytest
import sqlalchemy as sa
from eth_account import Account
from web3 import Web3

from microcrop_assets.defs.payouts.assets import payouts
from microcrop_assets.defs.payouts.ledger import settle_payouts
from microcrop_assets.defs.payouts.registration import register_policies
from microcrop_assets.resources.chain import ChainResource, ContractRefused, DamageReport, PolicyTerms
from microcrop_assets_tests.fixtures.damage import add_plot
from microcrop_assets_tests.fixtures.payouts import ADMIN, ADMIN_KEY, ORACLE, fund, ledger, mined_status, register, sent
from microcrop_assets_tests.fixtures.proofs import ORACLE_KEY

FARMER = "0x00000000000000000000000000000000000fa4e5"
OTHER = "0x0000000000000000000000000000000000000b0b"
STRANGER_KEY = "0x" + "42" * 32
MAX_UINT256 = 2**256 - 1


def report(number: int, payout: int, policy_id: str = "POL-1", beneficiary: str = FARMER) -> DamageReport:
    return DamageReport(
        assessment_id=f"assessment-{number}",
        policy_id=policy_id,
        beneficiary=beneficiary,
        damage_bps=5_000,
        weather_damage_bps=6_000,
        satellite_damage_bps=4_000,
        payout_micro_usdc=payout,
        assessed_at=1_750_000_000,
        proof_cid="bafkreiproof",
    )


def accepted(chain: ChainResource, damage: DamageReport) -> None:
    """The oracle reports `damage`; the receiver takes it."""
    client = chain.client()
    signed = client.sign(damage)
    client.broadcast(signed)
    assert client.receipt(signed.tx_hash).status == 1


def refused(chain: ChainResource, damage: DamageReport) -> str:
    """The receiver's reason for refusing `damage` from this chain's oracle (nothing is signed)."""
    with pytest.raises(ContractRefused) as caught:
        chain.client().sign(damage)
    return caught.value.reason


def revert_reason(call, sender: str) -> str:
    """The receiver's reason for reverting `call` from `sender` (eth_estimateGas runs it unmined)."""
    with pytest.raises(Exception, match="execution reverted") as caught:
        call.estimate_gas({"from": sender})
    return str(caught.value).removeprefix("execution reverted: ")


def registered(chain: ChainResource, *terms: PolicyTerms) -> None:
    assert chain.admin(ADMIN_KEY).register_policies(terms) == {t.policy_id: None for t in terms}


def oracle_of(chain: ChainResource, key: str) -> ChainResource:
    """The same chain and receiver, reporting with another (funded) key."""
    other = ChainResource.in_process(
        chain._provider, chain_id=chain.chain_id, private_key=key, receiver_address=chain.receiver_address
    )
    fund(chain, Account.from_key(key).address)
    return other


@pytest.mark.unit
def test_only_the_oracle_reports(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    assert refused(oracle_of(chain, STRANGER_KEY), report(1, 10)) == "only the oracle reports"
    assert refused(oracle_of(chain, ADMIN_KEY), report(1, 10)) == "only the oracle reports"  # not even the admin
    accepted(chain, report(1, 10))


@pytest.mark.unit
def test_a_paused_receiver_takes_no_report_until_unpaused(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    admin = chain.admin(ADMIN_KEY)
    admin.pause()
    assert chain.client().paused()
    assert refused(chain, report(1, 10)) == "receiver is paused"
    with pytest.raises(ContractRefused, match="already paused"):
        admin.pause()
    admin.unpause()
    accepted(chain, report(1, 10))
    with pytest.raises(ContractRefused, match="not paused"):
        admin.unpause()
    contract = chain.client().contract
    assert [e["args"]["admin"] for e in contract.events.Paused.get_logs(from_block=0)] == [ADMIN]
    assert [e["args"]["admin"] for e in contract.events.Unpaused.get_logs(from_block=0)] == [ADMIN]


@pytest.mark.unit
def test_a_report_for_an_unregistered_policy_is_refused(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    assert refused(chain, report(1, 10, policy_id="POL-2")) == "policy not registered"
    assert not chain.client().policy("POL-2").registered


@pytest.mark.unit
def test_a_report_to_another_beneficiary_is_refused(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    assert refused(chain, report(1, 10, beneficiary=OTHER)) == "beneficiary is not the policy's"
    accepted(chain, report(1, 10, beneficiary=FARMER.upper().replace("0X", "0x")))  # any case of the same address


@pytest.mark.unit
def test_reports_never_total_more_than_the_sum_insured(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    assert refused(chain, report(1, MAX_UINT256)) == "payout above the remaining sum insured"
    assert refused(chain, report(1, 101)) == "payout above the remaining sum insured"
    accepted(chain, report(1, 60))
    assert refused(chain, report(2, 41)) == "payout above the remaining sum insured"  # 60 + 41 > 100
    # with something paid, 2**256 - 1 more must still be refused for its reason, not by an overflow
    assert refused(chain, report(2, MAX_UINT256)) == "payout above the remaining sum insured"
    accepted(chain, report(2, 40))  # exactly the sum insured in total
    assert refused(chain, report(3, 1)) == "payout above the remaining sum insured"
    client = chain.client()
    assert client.policy("POL-1").paid_micro_usdc == 100
    # forced on chain with a fixed gas limit, a 2**256 - 1 payout is mined, reverted and changes nothing
    call = client.contract.functions.submitDamageReport(*report(4, MAX_UINT256).call_args())
    assert mined_status(client, ORACLE_KEY, call) == 0
    assert client.policy("POL-1").paid_micro_usdc == 100 and client.contract.functions.reportCount().call() == 2


@pytest.mark.unit
def test_re_registration_changes_the_terms_but_never_below_what_was_paid(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    accepted(chain, report(1, 60))
    admin = chain.admin(ADMIN_KEY)
    below = admin.register_policies([PolicyTerms("POL-1", 59, FARMER)])
    assert below == {"POL-1": "sum insured below what the policy has been paid"}
    registered(chain, PolicyTerms("POL-1", 60, OTHER))  # down to what was paid, and a new beneficiary
    policy = chain.client().policy("POL-1")
    assert (policy.sum_insured_micro_usdc, policy.beneficiary, policy.paid_micro_usdc) == (
        60,
        Web3.to_checksum_address(OTHER),
        60,
    )
    assert refused(chain, report(2, 1, beneficiary=FARMER)) == "beneficiary is not the policy's"
    assert refused(chain, report(2, 1, beneficiary=OTHER)) == "payout above the remaining sum insured"
    registered(chain, PolicyTerms("POL-1", 200, OTHER))
    accepted(chain, report(2, 140, beneficiary=OTHER))
    assert chain.client().policy("POL-1").paid_micro_usdc == 200


@pytest.mark.unit
def test_only_the_admin_registers_rotates_pauses_and_hands_over(chain):
    not_admin = chain.admin(ORACLE_KEY)  # a funded key that is not the admin's: the oracle's
    assert not_admin.register_policies([PolicyTerms("POL-1", 100, FARMER)]) == {"POL-1": "only the admin"}
    for action in (
        lambda: not_admin.set_oracle(OTHER),
        not_admin.pause,
        not_admin.unpause,
        lambda: not_admin.propose_admin(OTHER),
    ):
        with pytest.raises(ContractRefused, match="refused by the receiver: only the admin"):
            action()
    client = chain.client()
    assert not client.policy("POL-1").registered and client.oracle_address() == ORACLE and not client.paused()
    # what the Python side never sends, the contract refuses too
    functions = client.contract.functions
    farmer, zero = Web3.to_checksum_address(FARMER), "0x" + "00" * 20
    assert revert_reason(functions.registerPolicy("POL-1", 0, farmer), ADMIN) == "sum insured is zero"
    assert revert_reason(functions.registerPolicy("POL-1", 100, zero), ADMIN) == "beneficiary is the zero address"
    assert revert_reason(functions.registerPolicy("", 100, farmer), ADMIN) == "policy id is empty"
    assert revert_reason(functions.setOracle(zero), ADMIN) == "oracle is the zero address"


@pytest.mark.unit
def test_rotating_the_oracle(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    new_oracle = oracle_of(chain, STRANGER_KEY)
    new_address = Account.from_key(STRANGER_KEY).address
    chain.admin(ADMIN_KEY).set_oracle(new_address)
    assert refused(chain, report(1, 10)) == "only the oracle reports"  # the old key is out from the next block
    accepted(new_oracle, report(1, 10))
    [changed] = chain.client().contract.events.OracleChanged.get_logs(from_block=0)
    assert (changed["args"]["previousOracle"], changed["args"]["newOracle"]) == (ORACLE, new_address)


@pytest.mark.unit
def test_the_admin_hands_over_in_two_steps(chain):
    new_key = "0x" + "77" * 32
    new_admin = Account.from_key(new_key).address
    fund(chain, new_admin, Account.from_key(STRANGER_KEY).address)
    chain.admin(ADMIN_KEY).propose_admin(new_admin)
    with pytest.raises(ContractRefused, match="only the proposed admin"):
        chain.admin(STRANGER_KEY).accept_admin()
    assert chain.client().admin_address() == ADMIN  # still the old admin until the new one accepts
    chain.admin(new_key).accept_admin()
    assert chain.client().admin_address() == new_admin
    assert chain.admin(ADMIN_KEY).register_policies([PolicyTerms("POL-1", 100, FARMER)]) == {"POL-1": "only the admin"}
    assert chain.admin(new_key).register_policies([PolicyTerms("POL-1", 100, FARMER)]) == {"POL-1": None}
    [changed] = chain.client().contract.events.AdminChanged.get_logs(from_block=0)
    assert (changed["args"]["previousAdmin"], changed["args"]["newAdmin"]) == (ADMIN, new_admin)


@pytest.mark.unit
def test_events_carry_the_beneficiary(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER), PolicyTerms("POL-2", 50, OTHER))
    accepted(chain, report(1, 10))
    accepted(chain, report(2, 20, policy_id="POL-2", beneficiary=OTHER))
    events = chain.client().contract.events
    [registration, _] = events.PolicyRegistered.get_logs(from_block=0)
    assert dict(registration["args"]) == {
        "beneficiary": Web3.to_checksum_address(FARMER),
        "policyId": "POL-1",
        "sumInsured": 100,
        "paid": 0,
    }
    # indexed: an auditor finds every report paid to one farmer by its address
    [paid] = events.DamageReportReceived.get_logs(
        argument_filters={"beneficiary": Web3.to_checksum_address(OTHER)}, from_block=0
    )
    assert paid["args"]["beneficiary"] == Web3.to_checksum_address(OTHER)
    assert (paid["args"]["policyId"], paid["args"]["payoutAmount"]) == ("POL-2", 20)


@pytest.mark.unit
def test_the_report_checks_stay(chain):
    registered(chain, PolicyTerms("POL-1", 100, FARMER))
    accepted(chain, report(1, 10))
    assert refused(chain, report(1, 10)) == "assessment already reported"
    submit = chain.client().contract.functions.submitDamageReport
    key, fields, cid = report(2, 10).call_args()
    for position, name in ((2, "damagePercentage"), (3, "weatherDamage"), (4, "satelliteDamage")):
        too_much = (*fields[:position], 10_001, *fields[position + 1 :])
        assert revert_reason(submit(key, too_much, cid), ORACLE) == f"{name} above 10000 bps"
    assert revert_reason(submit(key, fields, ""), ORACLE) == "proof CID is empty"


@pytest.mark.integration
def test_a_payout_waits_for_its_policys_registration(proven, chain):
    """Only plot-a's policy is registered: its payout is sent; plot-b's waits with the reason, nothing
    counted against it, and is sent once its policy is registered."""
    with proven.begin() as conn:
        farmer = conn.scalar(sa.text("SELECT inputs->>'beneficiary' FROM damage_assessments WHERE plot_id = 'plot-a'"))
    registered(chain, PolicyTerms("POL-plot-a", 10_000 * 10**6, farmer))
    summary = settle_payouts(proven, chain)
    rows = ledger(proven)
    assert summary.broadcast == 1 and rows["plot-a"].status == "confirmed"
    waiting = rows["plot-b"]
    assert waiting.status == "pending" and waiting.attempts == 0 and waiting.tx_hash is None
    assert waiting.last_error is None and "policy POL-plot-b is not registered on the receiver" in waiting.reason
    assert summary.waiting == {waiting.assessment_id: waiting.reason} and not summary.failed
    assert register(proven, chain) == ["POL-plot-b", "POL-plot-c"]  # plot-a's terms match: not sent again
    assert settle_payouts(proven, chain).broadcast == 1
    row = ledger(proven)["plot-b"]
    assert row.status == "confirmed" and row.reason is None


@pytest.mark.integration
def test_a_report_the_receiver_refuses_fails_at_once_with_its_reason(proven, chain):
    """Registered to another beneficiary, or with less sum insured left than the payout: each report is
    failed on its first try with the receiver's reason, and no later run sends it."""
    settle_payouts(proven, ChainResource())  # enqueued, waiting for a chain
    rows = ledger(proven)
    # plot-a's farmer changed after the assessment: the report still names the one its inputs (and
    # proof) recorded, which the receiver no longer has for the policy
    with proven.begin() as conn:
        conn.execute(sa.text("UPDATE plots SET farmer_address = :other WHERE plot_id = 'plot-a'"), {"other": OTHER})
    registered(
        chain,
        PolicyTerms("POL-plot-a", 10_000 * 10**6, OTHER),
        PolicyTerms("POL-plot-b", rows["plot-b"].payout_micro_usdc - 1, rows["plot-b"].beneficiary),
    )
    before = sent(chain)
    summary = settle_payouts(proven, chain)
    assert summary.broadcast == 0 and sent(chain) == before
    rows = ledger(proven)
    for plot, reason in (
        ("plot-a", "beneficiary is not the policy's"),
        ("plot-b", "payout above the remaining sum insured"),
    ):
        row = rows[plot]
        assert row.status == "failed" and row.attempts == 0 and row.tx_hash is None
        assert row.last_error == (
            f"preparing the report of assessment {row.assessment_id} refused by the receiver: {reason}"
        )
        assert summary.failed[row.assessment_id] == row.last_error
    result = dg.materialize([payouts], resources={"timescaledb": proven, "chain": chain})
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["failed"].value == 2
    assert sent(chain) == before  # failed stays failed: never retried blindly


@pytest.mark.integration
def test_a_paused_receiver_or_a_rotated_oracle_holds_payouts_pending(proven, chain):
    register(proven, chain)
    admin = chain.admin(ADMIN_KEY)
    admin.pause()
    before = sent(chain)
    summary = settle_payouts(proven, chain)
    paused = f"the receiver {chain.receiver_address} is paused by its admin"
    assert summary.broadcast == 0 and summary.reason == paused and sent(chain) == before
    assert {(row.status, row.reason, row.attempts) for row in ledger(proven).values()} == {("pending", paused, 0)}
    admin.unpause()
    admin.set_oracle(OTHER)
    summary = settle_payouts(proven, chain)
    assert summary.broadcast == 0 and sent(chain) == before
    assert summary.reason.startswith(f"the receiver {chain.receiver_address} takes reports from oracle")
    assert {(row.status, row.reason) for row in ledger(proven).values()} == {("pending", summary.reason)}
    admin.set_oracle(ORACLE)
    summary = settle_payouts(proven, chain)
    assert summary.reason is None and len(summary.confirmed) == 2


@pytest.mark.integration
def test_register_policies_sums_a_policys_plots_and_refuses_conflicting_farmers(clean_assessments, chain):
    db = clean_assessments
    for plot_id, policy_id, sum_insured in (("p1", "POL-shared", 100), ("p2", "POL-shared", 50), ("p3", "POL-3", 70)):
        add_plot(db, plot_id, policy_id=policy_id, sum_insured_usdc=sum_insured)
    for plot_id, policy_id in (("p4", "POL-split"), ("p5", "POL-split")):
        add_plot(db, plot_id, policy_id=policy_id)
    add_plot(db, "p6", policy_id="POL-gone", active=False)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE plots SET farmer_address = :other WHERE plot_id = 'p5'"), {"other": OTHER})
    admin = chain.admin(ADMIN_KEY)
    summary = register_policies(db, admin)
    assert summary.registered == ["POL-3", "POL-shared"] and summary.unchanged == 0
    assert summary.refused["POL-split"].startswith("its active plots p4, p5 name different farmers")
    assert admin.policy("POL-shared").sum_insured_micro_usdc == 150 * 10**6
    assert not admin.policy("POL-split").registered and not admin.policy("POL-gone").registered
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE plots SET sum_insured_micro_usdc = 80000000, max_payout_micro_usdc = 80000000"
                " WHERE plot_id = 'p3'"
            )
        )
    again = register_policies(db, admin)
    assert again.registered == ["POL-3"] and again.unchanged == 1  # only the changed policy is sent
    assert admin.policy("POL-3").sum_insured_micro_usdc == 80 * 10**6
