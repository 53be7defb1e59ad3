# pragma version 0.4.3
# pragma evm-version cancun
"""
@title MicroCrop payout receiver
@notice Records the oracle's damage reports, at most one per assessment, and only within the terms
        the admin registered for the policy: the registered beneficiary, and in total no more than
        the policy's sum insured. The pipeline's ledger can be lost or replayed and the oracle's key
        can leak; this contract is what makes a second report for the same assessment, a report to
        another address or a payout above the sum insured impossible.
        Two keys: the admin (policy terms, oracle rotation, pause) and the oracle (reports only).
"""

struct DamageReport:
    policyId: String[64]
    beneficiary: address  # the insured farmer's address, as registered for the policy
    damagePercentage: uint16  # basis points 0..10000
    weatherDamage: uint16  # basis points
    satelliteDamage: uint16  # basis points
    payoutAmount: uint256  # USDC, 6 decimals
    assessedAt: uint64  # unix seconds


struct Policy:
    sumInsured: uint256  # USDC, 6 decimals; 0 means not registered
    beneficiary: address
    paid: uint256  # total payoutAmount of the policy's accepted reports


event DamageReportReceived:
    assessmentId: indexed(bytes32)
    beneficiary: indexed(address)
    policyId: String[64]
    damagePercentage: uint16
    weatherDamage: uint16
    satelliteDamage: uint16
    payoutAmount: uint256
    assessedAt: uint64
    proofCid: String[128]


event PolicyRegistered:
    beneficiary: indexed(address)
    policyId: String[64]
    sumInsured: uint256
    paid: uint256


event OracleChanged:
    previousOracle: indexed(address)
    newOracle: indexed(address)


event AdminProposed:
    admin: indexed(address)
    proposedAdmin: indexed(address)


event AdminChanged:
    previousAdmin: indexed(address)
    newAdmin: indexed(address)


event Paused:
    admin: indexed(address)


event Unpaused:
    admin: indexed(address)


MAX_BPS: constant(uint16) = 10000

admin: public(address)
proposedAdmin: public(address)
oracle: public(address)
paused: public(bool)
policies: public(HashMap[String[64], Policy])
reports: public(HashMap[bytes32, DamageReport])
proofCids: public(HashMap[bytes32, String[128]])
reported: public(HashMap[bytes32, bool])
reportCount: public(uint256)


@deploy
def __init__(oracle: address, admin: address):
    assert oracle != empty(address), "oracle is the zero address"
    assert admin != empty(address), "admin is the zero address"
    self.oracle = oracle
    self.admin = admin


@internal
def _only_admin():
    assert msg.sender == self.admin, "only the admin"


@external
def proposeAdmin(newAdmin: address):
    """Hand over in two steps: the new admin accepts, so a mistyped address cannot lock the receiver."""
    self._only_admin()
    self.proposedAdmin = newAdmin
    log AdminProposed(admin=msg.sender, proposedAdmin=newAdmin)


@external
def acceptAdmin():
    assert msg.sender == self.proposedAdmin and msg.sender != empty(address), "only the proposed admin"
    log AdminChanged(previousAdmin=self.admin, newAdmin=msg.sender)
    self.admin = msg.sender
    self.proposedAdmin = empty(address)


@external
def setOracle(newOracle: address):
    self._only_admin()
    assert newOracle != empty(address), "oracle is the zero address"
    log OracleChanged(previousOracle=self.oracle, newOracle=newOracle)
    self.oracle = newOracle


@external
def pause():
    self._only_admin()
    assert not self.paused, "already paused"
    self.paused = True
    log Paused(admin=msg.sender)


@external
def unpause():
    self._only_admin()
    assert self.paused, "not paused"
    self.paused = False
    log Unpaused(admin=msg.sender)


@external
def registerPolicy(policyId: String[64], sumInsured: uint256, beneficiary: address):
    """Register or amend a policy's terms; what it has been paid already stays and bounds the sum insured."""
    self._only_admin()
    assert len(policyId) > 0, "policy id is empty"
    assert beneficiary != empty(address), "beneficiary is the zero address"
    assert sumInsured > 0, "sum insured is zero"
    paid: uint256 = self.policies[policyId].paid
    assert sumInsured >= paid, "sum insured below what the policy has been paid"
    self.policies[policyId] = Policy(sumInsured=sumInsured, beneficiary=beneficiary, paid=paid)
    log PolicyRegistered(beneficiary=beneficiary, policyId=policyId, sumInsured=sumInsured, paid=paid)


@external
def submitDamageReport(assessmentId: bytes32, report: DamageReport, proofCid: String[128]):
    assert msg.sender == self.oracle, "only the oracle reports"
    assert not self.paused, "receiver is paused"
    assert not self.reported[assessmentId], "assessment already reported"
    assert report.damagePercentage <= MAX_BPS, "damagePercentage above 10000 bps"
    assert report.weatherDamage <= MAX_BPS, "weatherDamage above 10000 bps"
    assert report.satelliteDamage <= MAX_BPS, "satelliteDamage above 10000 bps"
    assert len(proofCid) > 0, "proof CID is empty"
    policy: Policy = self.policies[report.policyId]
    assert policy.sumInsured > 0, "policy not registered"
    assert report.beneficiary == policy.beneficiary, "beneficiary is not the policy's"
    # written so that no sum overflows: payoutAmount may be anything up to 2**256 - 1
    assert report.payoutAmount <= policy.sumInsured - policy.paid, "payout above the remaining sum insured"
    self.policies[report.policyId].paid = policy.paid + report.payoutAmount
    self.reported[assessmentId] = True
    self.reports[assessmentId] = report
    self.proofCids[assessmentId] = proofCid
    self.reportCount += 1
    log DamageReportReceived(
        assessmentId=assessmentId,
        beneficiary=report.beneficiary,
        policyId=report.policyId,
        damagePercentage=report.damagePercentage,
        weatherDamage=report.weatherDamage,
        satelliteDamage=report.satelliteDamage,
        payoutAmount=report.payoutAmount,
        assessedAt=report.assessedAt,
        proofCid=proofCid,
    )
