"""The payout chain (Base): the oracle's signed EIP-1559 reports to the payout receiver contract.

The resource knows the protocol only: build, sign and broadcast a `submitDamageReport` call, read
receipts, nonces and the contract's own record of reported assessments. Which report to send and
when is the payouts ledger's business (microcrop_assets/payouts).

The oracle's private key is used only to sign locally; it and the RPC URL (hosted RPC URLs carry an
API key) are registered with the vendors' redaction, so neither appears in an error, a log line or
metadata. Tests inject an in-process provider (eth-tester with py-evm) with `ChainResource.in_process`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import cached_property
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
MAX_BPS = 10_000
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
    """A chain call failed; the message never holds the private key or the RPC URL."""

    def __init__(self, message: str):
        super().__init__(redact(message))


@dataclass(frozen=True)
class DamageReport:
    """What the receiver's `DamageReport` struct carries, plus the assessment it reports."""

    assessment_id: str
    policy_id: str
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
        if isinstance(self.payout_micro_usdc, bool) or not isinstance(self.payout_micro_usdc, int):
            raise ValueError(f"assessment {self.assessment_id}: payout {self.payout_micro_usdc!r} is not micro-USDC")
        if self.payout_micro_usdc < 0:
            raise ValueError(f"assessment {self.assessment_id}: payout {self.payout_micro_usdc} is negative")
        # the contract's String[64] and String[128]: longer values would revert on chain
        if not 0 < len(self.policy_id.encode()) <= 64:
            raise ValueError(f"assessment {self.assessment_id}: policy id {self.policy_id!r} is not 1..64 bytes")
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


class PayoutChain:
    """A connected oracle: one Web3, the oracle account and the receiver contract."""

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

    def sign(self, report: DamageReport) -> SignedReport:
        """Build and sign `submitDamageReport` for `report` with the oracle's next nonce (EIP-1559, gas
        estimated with headroom)."""
        call = self.contract.functions.submitDamageReport(*report.call_args())
        with _chain_errors(f"preparing the report of assessment {report.assessment_id}"):
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
            with _chain_errors("sending the report"):
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


class ChainResource(dg.ConfigurableResource):
    """Resource key `chain`: BASE_RPC_URL, BASE_CHAIN_ID, ORACLE_PRIVATE_KEY, PAYOUT_RECEIVER_ADDRESS.

    Any of them unset means no chain: payouts wait in the ledger, nothing is sent."""

    rpc_url: str | None = Field(default=None, repr=False, description="BASE_RPC_URL (may embed an API key)")
    chain_id: int | None = Field(default=None, description="BASE_CHAIN_ID: 8453 Base, 84532 Base Sepolia")
    private_key: str | None = Field(default=None, repr=False, description="ORACLE_PRIVATE_KEY, signs locally")
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
        """Environment variables still needed before anything can be sent."""
        return [env for field, env in CHAIN_ENV.items() if getattr(self, field) in (None, "")]

    def describe(self) -> str:
        if self.missing():
            return "no chain"
        # the host only: hosted RPC URLs carry their API key in the path or query
        where = "an in-process provider" if self._provider is not None else urlsplit(self.rpc_url).hostname
        return f"chain {self.chain_id} via {where}, receiver {self.receiver_address}"

    @cached_property
    def _web3(self):
        from web3 import Web3

        register_secret(self.private_key)
        if self._provider is None:
            _register_rpc_url(self.rpc_url)
        provider = self._provider or Web3.HTTPProvider(
            self.rpc_url, request_kwargs={"timeout": self.request_timeout_seconds}
        )
        return Web3(provider)

    def _checked_web3(self):
        """The Web3, after checking the node serves BASE_CHAIN_ID (a signature is only valid on one chain)."""
        register_secret(self.private_key)
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
            return PayoutChain(web3, self.private_key, self.receiver_address, self.receipt_timeout_seconds)
        except ValueError as error:  # eth-account's message on a malformed key never quotes the key
            raise ChainError(f"ORACLE_PRIVATE_KEY is not a usable private key: {type(error).__name__}") from None

    def deploy_receiver(self) -> str:
        """Deploy the receiver with this oracle as its only reporter (and payer of the gas); its address.

        `receiver_address` is not needed for this."""
        from eth_account import Account

        missing = [env for env in self.missing() if env != CHAIN_ENV["receiver_address"]]
        if missing:
            raise ChainError(f"no chain configured: set {', '.join(missing)}")
        web3 = self._checked_web3()
        artifact = receiver_artifact()
        with _chain_errors("deploying the receiver"):
            oracle = Account.from_key(self.private_key)
            call = web3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"]).constructor(oracle.address)
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
        fields = ("rpc_url", "chain_id", "private_key", "receipt_timeout_seconds", "request_timeout_seconds")
        return ChainResource(receiver_address=address, **{name: getattr(self, name) for name in fields})


def _register_rpc_url(url: str) -> None:
    """Hosted RPC URLs carry their API key in the path or query: all of it is secret but the host."""
    parts = urlsplit(url)
    register_secret(url)
    register_secret(parts.path if len(parts.path) > 1 else None)
    register_secret(parts.query or None)
    register_secret(parts.netloc.rpartition("@")[0] or None)


@contextmanager
def _chain_errors(doing: str, passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Any failure from web3, the provider or the node becomes a ChainError with a redacted message."""
    try:
        yield
    except passthrough:
        raise
    except ChainError:
        raise
    except Exception as error:  # noqa: BLE001 - providers raise many types; all are chain failures here
        raise ChainError(f"{doing} failed: {type(error).__name__}: {error}") from None
