# pragma version 0.4.3
# pragma evm-version cancun
"""
@title MicroCrop payout receiver
@notice Records the oracle's damage reports, at most one per assessment. The pipeline's ledger can
        be lost or replayed; this contract is what makes a second report for the same assessment
        impossible, so no assessment is ever paid twice.
"""

struct DamageReport:
    policyId: String[64]
    damagePercentage: uint16  # basis points 0..10000
    weatherDamage: uint16  # basis points
    satelliteDamage: uint16  # basis points
    payoutAmount: uint256  # USDC, 6 decimals
    assessedAt: uint64  # unix seconds


event DamageReportReceived:
    assessmentId: indexed(bytes32)
    policyId: String[64]
    damagePercentage: uint16
    weatherDamage: uint16
    satelliteDamage: uint16
    payoutAmount: uint256
    assessedAt: uint64
    proofCid: String[128]


MAX_BPS: constant(uint16) = 10000

oracle: public(address)
reports: public(HashMap[bytes32, DamageReport])
proofCids: public(HashMap[bytes32, String[128]])
reported: public(HashMap[bytes32, bool])
reportCount: public(uint256)


@deploy
def __init__(oracle: address):
    assert oracle != empty(address), "oracle is the zero address"
    self.oracle = oracle


@external
def submitDamageReport(assessmentId: bytes32, report: DamageReport, proofCid: String[128]):
    assert msg.sender == self.oracle, "only the oracle reports"
    assert not self.reported[assessmentId], "assessment already reported"
    assert report.damagePercentage <= MAX_BPS, "damagePercentage above 10000 bps"
    assert report.weatherDamage <= MAX_BPS, "weatherDamage above 10000 bps"
    assert report.satelliteDamage <= MAX_BPS, "satelliteDamage above 10000 bps"
    assert len(proofCid) > 0, "proof CID is empty"
    self.reported[assessmentId] = True
    self.reports[assessmentId] = report
    self.proofCids[assessmentId] = proofCid
    self.reportCount += 1
    log DamageReportReceived(
        assessmentId=assessmentId,
        policyId=report.policyId,
        damagePercentage=report.damagePercentage,
        weatherDamage=report.weatherDamage,
        satelliteDamage=report.satelliteDamage,
        payoutAmount=report.payoutAmount,
        assessedAt=report.assessedAt,
        proofCid=proofCid,
    )
