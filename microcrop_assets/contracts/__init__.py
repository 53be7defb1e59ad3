"""The payout receiver contract: its Vyper source and the ABI and bytecode compiled from it.

The compiled artifact is committed beside the source so the pipeline needs no compiler at run time;
`python -m microcrop_assets.contracts` rebuilds it with the pinned Vyper, and a test recompiles the
source and requires the same ABI and bytecode.
"""

import hashlib
import json
from pathlib import Path

SOURCE = Path(__file__).with_name("payout_receiver.vy")
ARTIFACT = Path(__file__).with_name("payout_receiver.json")
VYPER_VERSION = "0.4.3"


def receiver_artifact() -> dict:
    """{"contract", "vyper", "source_sha256", "abi", "bytecode"} of the committed build."""
    artifact = json.loads(ARTIFACT.read_text())
    source_sha = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    if artifact["source_sha256"] != source_sha:
        raise RuntimeError(
            f"{ARTIFACT.name} was compiled from another version of {SOURCE.name} "
            f"(sha256 {artifact['source_sha256']} != {source_sha}): run python -m microcrop_assets.contracts"
        )
    return artifact


def compile_receiver() -> dict:
    """Compile the source with Vyper (a test dependency, pinned to VYPER_VERSION)."""
    import vyper

    if vyper.__version__ != VYPER_VERSION:
        raise RuntimeError(f"the receiver is built with Vyper {VYPER_VERSION}, this is Vyper {vyper.__version__}")
    source = SOURCE.read_text()
    output = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return {
        "contract": "PayoutReceiver",
        "vyper": VYPER_VERSION,
        "source_sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
        "abi": output["abi"],
        "bytecode": output["bytecode"],
    }
