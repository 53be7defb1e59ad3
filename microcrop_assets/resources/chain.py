"""The payout chain (Base): the oracle's signed EIP-1559 reports to the payout receiver contract, and
the receiver admin's registrations of policies.

The resource knows the protocol only: build, sign and broadcast a `submitDamageReport` call, read
receipts, nonces, the contract's own record of reported assessments and its registered policies.
Which report to send and when is the payouts ledger's business (microcrop_assets/payouts).

Two keys, two roles. The oracle's key (ORACLE_PRIVATE_KEY, the resource's `private_key`) signs damage
reports and nothing else. The admin's key (RECEIVER_ADMIN_PRIVATE_KEY) registers each policy's sum
insured and beneficiary, rotates the oracle and pauses the receiver; it is no field of the resource,
so no Dagster run holds it: `ChainResource.admin(key)` takes it from the one command that registers
policies (or a test or demo chain). Keys are used only to sign locally; they and the RPC URL (hosted
RPC URLs carry an API key) are registered with the vendors' redaction, so none appears in an error, a
log line or metadata. Tests inject an in-process provider (eth-tester with py-evm) with
`ChainResource.in_process`.
"""

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from microcrop_assets.contracts import receiver_artifact
from microcrop_assets.resources.http import install_redaction, redact, register_secret

# the environment variables a chain needs, by resource field
CHAIN_ENV = {
    "rpc_url": "BASE_RPC_URL",
    "chain_id": "BASE_CHAIN_ID",
    "private_key": "ORACLE_PRIVATE_KEY",
    "receiver_address": "PAYOUT_RECEIVER_ADDRESS",
}
ADMIN_KEY_ENV = "RECEIVER_ADMIN_PRIVATE_KEY"
MAX_BPS = 10_000
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
IN_PROCESS = "in-process://"
_IN_PROCESS_PROVIDERS: dict[str, Any] = {}
# filters do not inherit: every logger that may print the RPC URL is named
install_redaction(
    [
        "microcrop.chain",
        "web3.providers.HTTPProvider",
        "web3.manager.RequestManager",
        "web3._utils.http_session_manager.HTTPSessionManager",
        "urllib3.connectionpool",
    ]
)


class ChainError(Exception):
    """A chain call failed; the message never holds a private key or the RPC URL."""

    def __init__(self, message: str):
        super().__init__(redact(message))


class ContractRefused(ChainError):
    """The receiver reverts the call (the node says so before anything is signed): `reason` is the
    contract's own, e.g. "payout above the remaining sum insured". Sending it again changes nothing."""

    def __init__(self, doing: str, reason: str):
        self.reason = redact(reason)
        super().__init__(f"{doing} refused by the receiver: {reason}")


def checksum_address(value: object, what: str) -> str:
    """`value` as an EIP-55 address; ValueError naming `what` when it is no address, fails its checksum
    (mixed case) or is the zero address (which no payout may go to)."""
    from eth_utils import is_checksum_address, to_checksum_address

    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not an EVM address (0x and 40 hex digits)")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise ValueError(f"{what} {value!r} fails its EIP-55 checksum")
    if int(digits, 16) == 0:
        raise ValueError(f"{what} is the zero address")
    return to_checksum_address(value)


def _check_policy_id(policy_id: object, where: str) -> None:
    # the contract's String[64]: a longer id would revert on chain
    if not isinstance(policy_id, str) or not 0 < len(policy_id.encode()) <= 64:
        raise ValueError(f"{where}: policy id {policy_id!r} is not 1..64 bytes")


def _is_micro_usdc(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class PolicyTerms:
    """What the admin registers for a policy on the receiver: the most it may pay in total and to whom."""

    policy_id: str
    sum_insured_micro_usdc: int
    beneficiary: str

    def __post_init__(self):
        _check_policy_id(self.policy_id, "policy terms")
        if not _is_micro_usdc(self.sum_insured_micro_usdc) or self.sum_insured_micro_usdc == 0:
            raise ValueError(
                f"policy {self.policy_id}: sum insured {self.sum_insured_micro_usdc!r} is not a positive micro-USDC"
            )
        checksum_address(self.beneficiary, f"policy {self.policy_id}: beneficiary")

    def call_args(self) -> tuple:
        return self.policy_id, self.sum_insured_micro_usdc, checksum_address(self.beneficiary, "beneficiary")


@dataclass(frozen=True)
class PolicyRegistration:
    """The receiver's record of a policy id: a sum insured of 0 means it was never registered."""

    policy_id: str
    sum_insured_micro_usdc: int
    beneficiary: str
    paid_micro_usdc: int  # total of the policy's accepted reports

    @property
    def registered(self) -> bool:
        return self.sum_insured_micro_usdc > 0

    def matches(self, terms: PolicyTerms) -> bool:
        return (
            self.sum_insured_micro_usdc == terms.sum_insured_micro_usdc
            and self.beneficiary.lower() == terms.beneficiary.lower()
        )


@dataclass(frozen=True)
class DamageReport:
    """What the receiver's `DamageReport` struct carries, plus the assessment it reports."""

    assessment_id: str
    policy_id: str
    beneficiary: str  # the farmer's address, as registered for the policy on the receiver
    damage_bps: int
    weather_damage_bps: int
    satellite_damage_bps: int
    payout_micro_usdc: int
    assessed_at: int  # unix seconds
    proof_cid: str

    def __post_init__(self):
        for name in ("damage_bps", "weather_damage_bps", "satellite_damage_bps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BPS:
                raise ValueError(f"assessment {self.assessment_id}: {name}={value!r} is not 0..{MAX_BPS} basis points")
        if not _is_micro_usdc(self.payout_micro_usdc):
            raise ValueError(
                f"assessment {self.assessment_id}: payout {self.payout_micro_usdc!r} is not a non-negative micro-USDC"
            )
        _check_policy_id(self.policy_id, f"assessment {self.assessment_id}")
        checksum_address(self.beneficiary, f"assessment {self.assessment_id}: beneficiary")
        # the contract's String[128]: a longer CID would revert on chain
        if not 0 < len(self.proof_cid.encode()) <= 128:
            raise ValueError(f"assessment {self.assessment_id}: proof CID {self.proof_cid!r} is not 1..128 bytes")

    @property
    def assessment_key(self) -> bytes:
        """The contract's id of the assessment: keccak-256 of its id text."""
        from eth_utils import keccak

        return keccak(text=self.assessment_id)

    def call_args(self) -> tuple:
        report = (
            self.policy_id,
            checksum_address(self.beneficiary, "beneficiary"),
            self.damage_bps,
            self.weather_damage_bps,
            self.satellite_damage_bps,
            self.payout_micro_usdc,
            self.assessed_at,
        )
        return self.assessment_key, report, self.proof_cid


@dataclass(frozen=True)
class SignedReport:
    """A signed transaction not yet known to be on the chain: its hash is final once signed."""

    tx_hash: str
    nonce: int
    raw: str  # 0x hex of the signed bytes, broadcast again unchanged after a crash


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    status: int
    gas_used: int


def eip1559_fees(web3: Any) -> dict[str, int]:
    """The node's priority fee, and a fee cap leaving room for the base fee to double before it stalls."""
    base_fee = web3.eth.get_block("latest")["baseFeePerGas"]
    priority = web3.eth.max_priority_fee
    return {"maxPriorityFeePerGas": priority, "maxFeePerGas": 2 * base_fee + priority}


class _ReceiverClient:
    """One account on the receiver contract: the reads anyone may make, and the account's signed calls."""

    def __init__(self, web3: Any, private_key: str, receiver_address: str, receipt_timeout_seconds: float):
        from eth_account import Account
        from web3 import Web3

        self.web3 = web3
        self._account = Account.from_key(private_key)
        self.sender = self._account.address
        self.receipt_timeout_seconds = receipt_timeout_seconds
        if not Web3.is_address(receiver_address):
            raise ChainError(f"PAYOUT_RECEIVER_ADDRESS {receiver_address!r} is not an EVM address")
        artifact = receiver_artifact()
        self.contract = web3.eth.contract(address=Web3.to_checksum_address(receiver_address), abi=artifact["abi"])

    @property
    def chain_id(self) -> int:
        return int(self.web3.eth.chain_id)

    def policy(self, policy_id: str) -> PolicyRegistration:
        """The receiver's record of the policy: its registered terms and what it has paid so far."""
        with _chain_errors(f"reading policy {policy_id} on the receiver"):
            sum_insured, beneficiary, paid = self.contract.functions.policies(policy_id).call()
        return PolicyRegistration(policy_id, int(sum_insured), beneficiary, int(paid))

    def oracle_address(self) -> str:
        with _chain_errors("reading the receiver's oracle"):
            return self.contract.functions.oracle().call()

    def admin_address(self) -> str:
        with _chain_errors("reading the receiver's admin"):
            return self.contract.functions.admin().call()

    def paused(self) -> bool:
        with _chain_errors("reading whether the receiver is paused"):
            return bool(self.contract.functions.paused().call())

    def _sign(self, call: Any, doing: str, nonce: int | None = None) -> SignedReport:
        """Build and sign `call` from this account (EIP-1559, gas estimated with headroom), with `nonce` or
        the account's next one. A call the contract would revert raises ContractRefused with its reason."""
        with _chain_errors(doing):
            if nonce is None:
                nonce = self.web3.eth.get_transaction_count(self.sender, "pending")
            gas = self._with_headroom(call.estimate_gas({"from": self.sender}))
            transaction = call.build_transaction(
                {
                    "chainId": self.chain_id,
                    "from": self.sender,
                    "nonce": nonce,
                    "gas": gas,
                    "value": 0,
                    **eip1559_fees(self.web3),
                }
            )
            signed = self._account.sign_transaction(transaction)
        return SignedReport("0x" + bytes(signed.hash).hex(), nonce, "0x" + bytes(signed.raw_transaction).hex())

    @staticmethod
    def _with_headroom(estimate: int) -> int:
        return int((Decimal(estimate) * Decimal("1.2")).to_integral_value(ROUND_CEILING))

    def broadcast(self, signed: SignedReport) -> None:
        """Send the signed bytes; a node that already has this exact transaction is not an error."""
        try:
            with _chain_errors("sending the transaction"):
                self.web3.eth.send_raw_transaction(signed.raw)
        except ChainError as error:
            if self.transaction_known(signed.tx_hash):
                return
            raise error

    def transaction_known(self, tx_hash: str) -> bool:
        from web3.exceptions import TransactionNotFound

        try:
            with _chain_errors("looking up a transaction", passthrough=(TransactionNotFound,)):
                self.web3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        return True

    def receipt(self, tx_hash: str, wait: bool = True) -> Receipt | None:
        """The mined receipt, waiting up to the timeout when `wait`; None when not mined (yet)."""
        from web3.exceptions import TimeExhausted, TransactionNotFound

        try:
            with _chain_errors("reading a receipt", passthrough=(TimeExhausted, TransactionNotFound)):
                if wait:
                    found = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout_seconds)
                else:
                    found = self.web3.eth.get_transaction_receipt(tx_hash)
        except (TimeExhausted, TransactionNotFound):
            return None
        return Receipt(tx_hash, int(found["blockNumber"]), int(found["status"]), int(found["gasUsed"]))

    def _outcome(self, signed: SignedReport) -> str | None:
        """None once the sent transaction is mined and succeeded, else what happened to it."""
        receipt = self.receipt(signed.tx_hash, wait=True)
        if receipt is None:
            return f"transaction {signed.tx_hash} not mined within {self.receipt_timeout_seconds:g} s"
        if receipt.status != 1:
            return f"transaction {signed.tx_hash} reverted in block {receipt.block_number}"
        return None


class PayoutChain(_ReceiverClient):
    """A connected oracle: one Web3, the oracle account and the receiver contract."""

    def reported(self, report: DamageReport) -> bool:
        """The contract's own answer: has this assessment been reported already?"""
        with _chain_errors("reading the receiver"):
            return bool(self.contract.functions.reported(report.assessment_key).call())

    def find_report(self, report: DamageReport) -> Receipt | None:
        """The transaction that reported this assessment, from the receiver's event log.

        The contract's cheap `reported` flag is read first; the log search (from block 0, which some
        hosted RPCs limit) only runs for an assessment the contract says it holds."""
        if not self.reported(report):
            return None
        with _chain_errors("reading the receiver's events"):
            logs = self.contract.events.DamageReportReceived.get_logs(
                argument_filters={"assessmentId": report.assessment_key}, from_block=0
            )
        if not logs:
            return None
        return self.receipt("0x" + bytes(logs[0]["transactionHash"]).hex(), wait=False)

    def refusal(self) -> str | None:
        """Why the receiver takes no report from this oracle now (paused, or another oracle), else None."""
        if self.paused():
            return f"the receiver {self.contract.address} is paused by its admin"
        oracle = self.oracle_address()
        if oracle != self.sender:
            return (
                f"the receiver {self.contract.address} takes reports from oracle {oracle}, not from this"
                f" ORACLE_PRIVATE_KEY's account {self.sender} (rotated by its admin?)"
            )
        return None

    def sign(self, report: DamageReport) -> SignedReport:
        """Build and sign `submitDamageReport` for `report` with the oracle's next nonce; ContractRefused
        when the receiver would revert it (its reason: not registered, wrong beneficiary, above the
        remaining sum insured, already reported...)."""
        call = self.contract.functions.submitDamageReport(*report.call_args())
        return self._sign(call, f"preparing the report of assessment {report.assessment_id}")

    def mined_nonce(self) -> int:
        """Transactions of the oracle already mined: a recorded nonce below it is spent."""
        with _chain_errors("reading the oracle's nonce"):
            return int(self.web3.eth.get_transaction_count(self.sender, "latest"))

    def decode_report(self, tx_hash: str) -> dict:
        """The `submitDamageReport` arguments a mined transaction carried (what an auditor checks)."""
        with _chain_errors("decoding a transaction"):
            transaction = self.web3.eth.get_transaction(tx_hash)
            function, arguments = self.contract.decode_function_input(transaction["input"])
        if function.fn_name != "submitDamageReport":
            raise ChainError(f"transaction {tx_hash} calls {function.fn_name}, not submitDamageReport")
        return arguments


class ReceiverAdmin(_ReceiverClient):
    """The receiver's admin account: policy registrations, oracle rotation, pause and admin hand-over."""

    def register_policies(self, policies: Sequence[PolicyTerms]) -> dict[str, str | None]:
        """Register (or amend) each policy's terms. Every call is checked and signed with consecutive
        nonces and sent, then the receipts are awaited (a block holds many, so this takes a few blocks,
        not one per policy). Per policy id: None once registered, else why not (the receiver's reason)."""
        outcome: dict[str, str | None] = {}
        sent: list[tuple[str, SignedReport]] = []
        with _chain_errors("reading the admin's nonce"):
            nonce = self.web3.eth.get_transaction_count(self.sender, "pending")
        for terms in policies:
            call = self.contract.functions.registerPolicy(*terms.call_args())
            try:
                signed = self._sign(call, f"registering policy {terms.policy_id}", nonce)
            except ContractRefused as error:
                outcome[terms.policy_id] = error.reason
                continue
            self.broadcast(signed)
            sent.append((terms.policy_id, signed))
            nonce += 1
        for policy_id, signed in sent:
            outcome[policy_id] = self._outcome(signed)
        return outcome

    def set_oracle(self, oracle: str) -> None:
        """Rotate the oracle: from the next block only `oracle` may report."""
        address = checksum_address(oracle, "oracle")
        self._transact(self.contract.functions.setOracle(address), f"setting the oracle to {address}")

    def pause(self) -> None:
        """Stop all reports until `unpause`."""
        self._transact(self.contract.functions.pause(), "pausing the receiver")

    def unpause(self) -> None:
        self._transact(self.contract.functions.unpause(), "unpausing the receiver")

    def propose_admin(self, admin: str) -> None:
        """First step of a hand-over: `admin` becomes admin when it calls `accept_admin`."""
        address = checksum_address(admin, "admin")
        self._transact(self.contract.functions.proposeAdmin(address), f"proposing {address} as admin")

    def accept_admin(self) -> None:
        """Second step of a hand-over, signed by the proposed admin's key."""
        self._transact(self.contract.functions.acceptAdmin(), f"accepting the admin role for {self.sender}")

    def _transact(self, call: Any, doing: str) -> None:
        signed = self._sign(call, doing)
        self.broadcast(signed)
        failure = self._outcome(signed)
        if failure is not None:
            raise ChainError(f"{doing}: {failure}")


class ChainResource(dg.ConfigurableResource):
    """Resource key `chain`: BASE_RPC_URL, BASE_CHAIN_ID, ORACLE_PRIVATE_KEY, PAYOUT_RECEIVER_ADDRESS.

    Any of them unset means no chain: payouts wait in the ledger, nothing is sent. The receiver's admin
    key (RECEIVER_ADMIN_PRIVATE_KEY) is deliberately no field: see `admin`."""

    rpc_url: str | None = Field(default=None, repr=False, description="BASE_RPC_URL (may embed an API key)")
    chain_id: int | None = Field(default=None, description="BASE_CHAIN_ID: 8453 Base, 84532 Base Sepolia")
    private_key: str | None = Field(default=None, repr=False, description="ORACLE_PRIVATE_KEY, signs locally")
    # deployed, the key is a secret mounted into payouts_job's runs only (payouts/assets.py, ORACLE_KEY_TAGS)
    private_key_file: str | None = Field(
        default=None, description="ORACLE_PRIVATE_KEY_FILE: the key's file, read when ORACLE_PRIVATE_KEY is unset"
    )
    receiver_address: str | None = Field(default=None, description="PAYOUT_RECEIVER_ADDRESS, the receiver contract")
    receipt_timeout_seconds: float = Field(default=120, gt=0, description="longest wait for a receipt")
    request_timeout_seconds: float = Field(default=30, gt=0)

    @classmethod
    def in_process(cls, provider: Any, **config: Any) -> "ChainResource":
        """A resource on an injected provider (tests: web3's EthereumTesterProvider) instead of an RPC URL.

        The provider is registered under an `in-process://` URL, so copies Dagster makes of the
        resource reach the same chain."""
        name = f"{IN_PROCESS}{id(provider)}"
        _IN_PROCESS_PROVIDERS[name] = provider
        return cls(rpc_url=name, **config)

    @property
    def _provider(self) -> Any:
        return _IN_PROCESS_PROVIDERS.get(self.rpc_url or "")

    def missing(self) -> list[str]:
        """Environment variables still needed before anything can be sent (the key may be a file)."""
        given = {field: getattr(self, field) not in (None, "") for field in CHAIN_ENV}
        given["private_key"] = given["private_key"] or bool(self.private_key_file)
        return [env for field, env in CHAIN_ENV.items() if not given[field]]

    @cached_property
    def _oracle_key(self) -> str | None:
        """ORACLE_PRIVATE_KEY, else the contents of ORACLE_PRIVATE_KEY_FILE (registered for redaction)."""
        if self.private_key or not self.private_key_file:
            return self.private_key
        try:
            key = Path(self.private_key_file).read_text().strip()
        except OSError as error:
            raise ChainError(f"ORACLE_PRIVATE_KEY_FILE {self.private_key_file}: {error.strerror}") from None
        register_key(key)
        return key

    def describe(self) -> str:
        if self.missing():
            return "no chain"
        # the host only: hosted RPC URLs carry their API key in the path or query
        where = "an in-process provider" if self._provider is not None else urlsplit(self.rpc_url).hostname
        return f"chain {self.chain_id} via {where}, receiver {self.receiver_address}"

    @cached_property
    def _web3(self):
        from web3 import Web3

        register_key(self.private_key)
        if self._provider is None:
            _register_rpc_url(self.rpc_url)
        provider = self._provider or Web3.HTTPProvider(
            self.rpc_url, request_kwargs={"timeout": self.request_timeout_seconds}
        )
        return Web3(provider)

    def _checked_web3(self):
        """The Web3, after checking the node serves BASE_CHAIN_ID (a signature is only valid on one chain)."""
        register_key(self.private_key)
        with _chain_errors("connecting to the chain"):
            actual = int(self._web3.eth.chain_id)
        if actual != self.chain_id:
            raise ChainError(f"BASE_CHAIN_ID is {self.chain_id} but the RPC node serves chain {actual}")
        return self._web3

    def client(self) -> PayoutChain:
        """The connected oracle; raises ChainError when unconfigured or on the wrong chain."""
        missing = self.missing()
        if missing:
            raise ChainError(f"no chain configured: set {', '.join(missing)}")
        web3 = self._checked_web3()
        try:
            return PayoutChain(web3, self._oracle_key, self.receiver_address, self.receipt_timeout_seconds)
        except ValueError as error:  # eth-account's message on a malformed key never quotes the key
            raise ChainError(f"ORACLE_PRIVATE_KEY is not a usable private key: {type(error).__name__}") from None

    def admin(self, private_key: str | None) -> ReceiverAdmin:
        """The receiver's admin account, signing with `private_key` (RECEIVER_ADMIN_PRIVATE_KEY).

        The key is an argument, never a field of the resource: only the command that registers policies
        (and test or demo chains) read it, so no Dagster run ever holds it. The oracle's key is not
        needed; ChainError when the rest is unconfigured, on the wrong chain or the key is unusable."""
        register_key(private_key)
        missing = [env for env in self.missing() if env != CHAIN_ENV["private_key"]]
        if not private_key:
            missing.append(ADMIN_KEY_ENV)
        if missing:
            raise ChainError(f"no receiver admin configured: set {', '.join(missing)}")
        web3 = self._checked_web3()
        try:
            return ReceiverAdmin(web3, private_key, self.receiver_address, self.receipt_timeout_seconds)
        except ValueError as error:  # eth-account's message on a malformed key never quotes the key
            raise ChainError(f"{ADMIN_KEY_ENV} is not a usable private key: {type(error).__name__}") from None

    def recorded_proof_cid(self, assessment_id: str) -> str | None:
        """The proof CID the receiver records for an assessment (None: not reported). A read needs no key:
        an auditor sets only BASE_RPC_URL, BASE_CHAIN_ID and PAYOUT_RECEIVER_ADDRESS."""
        from eth_utils import keccak

        missing = [env for env in self.missing() if env != CHAIN_ENV["private_key"]]
        if missing:
            raise ChainError(f"no chain configured: set {', '.join(missing)}")
        try:
            address = checksum_address(self.receiver_address, "PAYOUT_RECEIVER_ADDRESS")
        except ValueError as error:
            raise ChainError(str(error)) from None
        contract = self._checked_web3().eth.contract(address=address, abi=receiver_artifact()["abi"])
        with _chain_errors(f"reading the proof CID of assessment {assessment_id}"):
            return contract.functions.proofCids(keccak(text=assessment_id)).call() or None

    def deploy_receiver(self, admin: str) -> str:
        """Deploy the receiver with this oracle as its only reporter (and payer of the gas) and `admin`
        (an address: its key stays wherever the admin keeps it) as its admin; its address.

        `receiver_address` is not needed for this."""
        from eth_account import Account

        missing = [env for env in self.missing() if env != CHAIN_ENV["receiver_address"]]
        if missing:
            raise ChainError(f"no chain configured: set {', '.join(missing)}")
        try:
            admin_address = checksum_address(admin, "receiver admin")
        except ValueError as error:
            raise ChainError(str(error)) from None
        web3 = self._checked_web3()
        artifact = receiver_artifact()
        with _chain_errors("deploying the receiver"):
            oracle = Account.from_key(self._oracle_key)
            contract = web3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
            call = contract.constructor(oracle.address, admin_address)
            transaction = call.build_transaction(
                {
                    "chainId": self.chain_id,
                    "from": oracle.address,
                    "nonce": web3.eth.get_transaction_count(oracle.address, "pending"),
                    **eip1559_fees(web3),
                }
            )
            tx_hash = web3.eth.send_raw_transaction(oracle.sign_transaction(transaction).raw_transaction)
            found = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout_seconds)
        if found["status"] != 1:
            raise ChainError(f"deploying the receiver reverted in transaction 0x{bytes(tx_hash).hex()}")
        return found["contractAddress"]

    def with_receiver(self, address: str) -> "ChainResource":
        """The same chain and oracle with another receiver address (after a deploy)."""
        fields = (
            "rpc_url",
            "chain_id",
            "private_key",
            "private_key_file",
            "receipt_timeout_seconds",
            "request_timeout_seconds",
        )
        return ChainResource(receiver_address=address, **{name: getattr(self, name) for name in fields})


def register_key(private_key: str | None) -> None:
    """A private key is redacted with and without its 0x prefix."""
    register_secret(private_key)
    if private_key and private_key.startswith("0x"):
        register_secret(private_key[2:])


def _register_rpc_url(url: str) -> None:
    """Hosted RPC URLs carry their API key in the path or query: all of it is secret but the host."""
    parts = urlsplit(url)
    register_secret(url)
    register_secret(parts.path if len(parts.path) > 1 else None)
    register_secret(parts.query or None)
    register_secret(parts.netloc.rpartition("@")[0] or None)


def _revert_reason(error: Exception) -> str | None:
    """The contract's reason when the node answers that the call reverts, else None.

    web3 raises ContractLogicError for a JSON-RPC node; eth-tester raises its own TransactionFailed,
    both worded "execution reverted: <reason>" as nodes do."""
    from web3.exceptions import ContractLogicError

    message = str(getattr(error, "message", None) or (error.args[0] if error.args else ""))
    if not (isinstance(error, ContractLogicError) or message.startswith("execution reverted")):
        return None
    return message.removeprefix("execution reverted").lstrip(": ") or "reverted without a reason"


@contextmanager
def _chain_errors(doing: str, passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Any failure from web3, the provider or the node becomes a ChainError with a redacted message;
    the contract refusing the call becomes ContractRefused with its reason."""
    try:
        yield
    except passthrough:
        raise
    except ChainError:
        raise
    except Exception as error:  # noqa: BLE001 - providers raise many types; all are chain failures here
        reason = _revert_reason(error)
        if reason is not None:
            raise ContractRefused(doing, reason) from None
        raise ChainError(f"{doing} failed: {type(error).__name__}: {error}") from None
