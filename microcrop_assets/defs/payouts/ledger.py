"""The payouts ledger: one row per triggered, proven assessment, sent to the chain at most once.

pending -> submitted -> confirmed | failed. Three things stop a second payment:
- the signed transaction (nonce, hash, raw bytes) is committed to the ledger before it is broadcast,
  so a crash after sending leaves the pipeline its hash to look up, and the same bytes to send again
  (same nonce: the chain accepts them once);
- before signing anything new, the receiver contract is asked whether it already holds a report for
  the assessment (its event log gives the transaction), so a lost ledger row cannot resend;
- the contract refuses a second report for the same assessment id whatever the ledger says.
Without a chain configured nothing is signed: rows stay pending with the reason, no hash is made up.

The receiver also bounds what is paid: a report goes only to the beneficiary registered for its policy
(the plot's farmer_address, recorded in the assessment's inputs and so in its proof), and a policy's
reports never total more than its registered sum insured. A payout whose policy is not registered,
or while the receiver is paused or takes reports from another oracle, waits pending with the reason;
a report the receiver refuses (its revert reason) is failed at once: sending it again changes nothing.
"""

from dataclasses import dataclass, field

import sqlalchemy as sa

from microcrop_assets.resources.chain import (
    ChainError,
    ChainResource,
    ContractRefused,
    DamageReport,
    PayoutChain,
    Receipt,
    SignedReport,
)
from microcrop_assets.resources.timescaledb import TimescaleDBResource

MAX_ATTEMPTS = 5
# the beneficiary is the one the assessment recorded (and its proof carries), never today's plots row
_OPEN_PAYOUTS_SQL = """
SELECT p.*, d.inputs->>'beneficiary' AS beneficiary
FROM payouts p LEFT JOIN damage_assessments d USING (assessment_id)
WHERE p.status IN ('pending', 'submitted')
ORDER BY p.day, p.assessment_id
"""
# one settling run at a time: two would sign different transactions with the same pending nonce
_LEDGER_LOCK = 0x7061796F757473


@dataclass
class PayoutSummary:
    enqueued: int = 0
    broadcast: int = 0  # transactions handed to the node in this run
    confirmed: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # found on chain without sending
    failed: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)  # still pending/submitted, and why
    reason: str | None = None  # why nothing was sent at all


def enqueue(db: TimescaleDBResource) -> int:
    """A pending payout for every triggered assessment whose proof is pinned and that pays something."""
    with db.begin() as conn:
        result = conn.execute(
            sa.text(
                """
                INSERT INTO payouts (assessment_id, plot_id, policy_id, day, damage_bps, weather_damage_bps,
                                     satellite_damage_bps, payout_micro_usdc, assessed_at, proof_cid)
                SELECT assessment_id, plot_id, policy_id, day, damage_bps, weather_damage_bps,
                       COALESCE(satellite_damage_bps, 0), payout_micro_usdc, assessed_at, proof_cid
                FROM damage_assessments
                WHERE triggered AND proof_cid IS NOT NULL AND payout_micro_usdc > 0
                ON CONFLICT (assessment_id) DO NOTHING
                """
            )
        )
        return result.rowcount


def report_of(row: sa.Row) -> DamageReport:
    if row.beneficiary is None:
        raise ValueError(f"assessment {row.assessment_id}: its inputs record no beneficiary, so it names no payee")
    return DamageReport(
        assessment_id=row.assessment_id,
        policy_id=row.policy_id,
        beneficiary=row.beneficiary,
        damage_bps=int(row.damage_bps),
        weather_damage_bps=int(row.weather_damage_bps),
        satellite_damage_bps=int(row.satellite_damage_bps),
        payout_micro_usdc=int(row.payout_micro_usdc),
        assessed_at=int(row.assessed_at.timestamp()),
        proof_cid=row.proof_cid,
    )


def settle_payouts(db: TimescaleDBResource, chain: ChainResource, max_attempts: int = MAX_ATTEMPTS) -> PayoutSummary:
    """Enqueue new payouts, then bring every pending or submitted one as far as the chain allows."""
    summary = PayoutSummary(enqueued=enqueue(db))
    missing = chain.missing()
    if missing:
        summary.reason = f"no chain configured: set {', '.join(missing)}"
        _set_reason(db, summary.reason)
        return summary
    try:
        client = chain.client()
    except ChainError as error:
        summary.reason = str(error)
        _set_reason(db, summary.reason)
        return summary
    with db.engine.connect() as lock:
        if not lock.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _LEDGER_LOCK}):
            summary.reason = "another run is settling payouts; nothing sent by this one"
            return summary
        try:
            with db.begin() as conn:
                rows = conn.execute(sa.text(_OPEN_PAYOUTS_SQL)).all()
            # paused, or another oracle: earlier transactions are still followed, nothing new is sent
            try:
                summary.reason = client.refusal()
            except ChainError as error:
                summary.reason = str(error)
            # broadcast everything first, then wait: receipts of one block come back together
            settlements = [_Settlement(db, client, row, summary, max_attempts) for row in rows]
            sent = [(settlement, settlement.run()) for settlement in settlements]
            for settlement, signed in sent:
                if signed is not None:
                    settlement.await_receipt(signed)
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LEDGER_LOCK})
            lock.commit()
    return summary


def _set_reason(db: TimescaleDBResource, reason: str) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE payouts SET reason = :reason, updated_at = now() WHERE status = 'pending'"),
            {"reason": reason},
        )


class _Settlement:
    """One payout row: find what the chain already knows about it, and send only when it knows nothing."""

    def __init__(self, db: TimescaleDBResource, client: PayoutChain, row, summary: PayoutSummary, max_attempts: int):
        self.db, self.client, self.row, self.summary, self.max_attempts = db, client, row, summary, max_attempts
        self.id = row.assessment_id
        self.counted = False  # this run's attempt already counted in the ledger

    def run(self) -> SignedReport | None:
        """Settle from what the chain knows, or broadcast; the transaction whose receipt to wait for."""
        try:
            self.report = report_of(self.row)
        except ValueError as error:  # the contract could never take it: no retry helps
            self._update("status = 'failed', last_error = :error", error=str(error))
            self.summary.failed[self.id] = str(error)
            return None
        try:
            if self._settled_by_recorded_transaction() or self._settled_by_contract():
                return None
            waiting = self.summary.reason or self._unregistered()  # the run's reason, or this policy's
            if waiting:
                self._update("status = 'pending', reason = :reason", reason=waiting)
                self.summary.waiting[self.id] = waiting
                return None
            signed = self._transaction_to_send()
            self.client.broadcast(signed)
        except ContractRefused as error:  # the receiver's own reason: no retry can change it
            self._update("status = 'failed', last_error = :error", error=str(error))
            self.summary.failed[self.id] = str(error)
            return None
        except ChainError as error:
            self._record_error(str(error))
            return None
        self.summary.broadcast += 1
        self._update("status = 'submitted', submitted_at = now(), reason = NULL, last_error = NULL")
        return signed

    def await_receipt(self, signed: SignedReport) -> None:
        try:
            receipt = self.client.receipt(signed.tx_hash, wait=True)
            if receipt is None:
                self.summary.waiting[self.id] = f"transaction {signed.tx_hash} not mined yet"
            else:
                self._record(receipt)
        except ChainError as error:
            self._record_error(str(error))

    def _settled_by_recorded_transaction(self) -> bool:
        """A transaction signed earlier (perhaps sent just before a crash): its receipt, if mined."""
        tx_hash = self.row.tx_hash
        if tx_hash is None:
            return False
        known = self.client.transaction_known(tx_hash)
        receipt = self.client.receipt(tx_hash, wait=known)
        if receipt is not None:
            self._record(receipt)
            return True
        if known:  # in the node's pool, not mined within the timeout: look again next run
            self._update("status = 'submitted', submitted_at = COALESCE(submitted_at, now())")
            self.summary.waiting[self.id] = f"transaction {tx_hash} not mined yet"
            return True
        return False

    def _unregistered(self) -> str | None:
        """Why the payout waits for its policy's registration on the receiver, if it does."""
        if self.client.policy(self.report.policy_id).registered:
            return None
        return (
            f"policy {self.report.policy_id} is not registered on the receiver {self.client.contract.address}:"
            " its admin registers it (microcrop chain register-policies)"
        )

    def _settled_by_contract(self) -> bool:
        """The receiver already holds a report for this assessment: record its transaction, send nothing."""
        found = self.client.find_report(self.report)
        if found is None:
            return False
        self._record(found)
        self.summary.recovered.append(self.id)
        return True

    def _transaction_to_send(self) -> SignedReport:
        """Our signed bytes again while their nonce is unspent; otherwise a new signature, recorded first."""
        row = self.row
        if row.raw_transaction is not None and row.nonce is not None and row.nonce >= self.client.mined_nonce():
            signed = SignedReport(row.tx_hash, int(row.nonce), row.raw_transaction)
        else:
            signed = self.client.sign(self.report)
        # committed before the broadcast: whatever happens next, the ledger knows the hash to look for
        self.counted = True
        self._update(
            "attempts = attempts + 1, nonce = :nonce, tx_hash = :tx_hash, raw_transaction = :raw,"
            " chain_id = :chain_id, sender_address = :sender, receiver_address = :receiver",
            nonce=signed.nonce,
            tx_hash=signed.tx_hash,
            raw=signed.raw,
            chain_id=self.client.chain_id,
            sender=self.client.sender,
            receiver=self.client.contract.address,
        )
        return signed

    def _record(self, receipt: Receipt) -> None:
        if receipt.status == 1:
            self._update(
                "status = 'confirmed', tx_hash = :tx_hash, block_number = :block, gas_used = :gas,"
                " confirmed_at = now(), submitted_at = COALESCE(submitted_at, now()), reason = NULL,"
                " last_error = NULL",
                tx_hash=receipt.tx_hash,
                block=receipt.block_number,
                gas=receipt.gas_used,
            )
            self.summary.confirmed.append(self.id)
            return
        # reverted: confirmed anyway if another transaction carried this report, else failed
        found = self.client.find_report(self.report)
        if found is not None and found.status == 1:
            self._record(found)
            return
        error = f"transaction {receipt.tx_hash} reverted in block {receipt.block_number}"
        self._update(
            "status = 'failed', tx_hash = :tx_hash, block_number = :block, gas_used = :gas, last_error = :error",
            tx_hash=receipt.tx_hash,
            block=receipt.block_number,
            gas=receipt.gas_used,
            error=error,
        )
        self.summary.failed[self.id] = error

    def _record_error(self, error: str) -> None:
        attempts = self.row.attempts + 1
        if not self.counted:
            self._update("attempts = :attempts", attempts=attempts)
        if attempts >= self.max_attempts:
            self._update("status = 'failed', last_error = :error", error=error)
            self.summary.failed[self.id] = error
        else:
            self._update("last_error = :error", error=error)
            self.summary.waiting[self.id] = error

    def _update(self, assignments: str, **params) -> None:
        with self.db.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE payouts SET {assignments}, updated_at = now() WHERE assessment_id = :id"),
                {"id": self.id, **params},
            )


def ledger_counts(db: TimescaleDBResource) -> dict[str, int]:
    frame = db.read_frame("SELECT status, count(*) AS n FROM payouts GROUP BY status")
    return {status: int(n) for status, n in zip(frame["status"], frame["n"], strict=True)}
