"""A day's payout proofs without the network: recompute, build, validate and CID 2,000 proofs, then
the directory CIDs of their pins."""

import time

from microcrop_assets.proofs.document import build_proof, recompute_outputs
from microcrop_assets.proofs.pinning import proof_directories, proof_file
from microcrop_assets_tests.fixtures.proofs import DAY, chain_document, inputs_document


def run(n: int = 2_000) -> dict:
    documents = [inputs_document(f"plot-{i:06d}", f"0.{20 + i % 70:02d}") for i in range(n)]
    began = time.perf_counter()
    chain = chain_document()
    outputs = recompute_outputs(documents)
    recomputed = time.perf_counter()
    proofs = [
        proof_file(out["assessment_id"], build_proof(document, out, chain, out)[1])
        for document, out in zip(documents, outputs, strict=True)
    ]
    built = time.perf_counter()
    directories = proof_directories(DAY, proofs)
    done = time.perf_counter()
    return {
        "proofs": n,
        "recompute_seconds": round(recomputed - began, 2),
        "build_validate_cid_seconds": round(built - recomputed, 2),
        "directory_cid_seconds": round(done - built, 3),
        "directories": len(directories),
        "megabytes": round(sum(len(proof.data) for proof in proofs) / 1e6, 1),
    }
