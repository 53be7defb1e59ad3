"""Payout jobs: pin a day's proofs; send pending payouts (the only runs that hold the oracle's key)."""

import json

import dagster as dg

from microcrop_assets.defs.payouts.assets import PAYOUT_TAGS, payout_proofs, payouts

# The oracle's signing key reaches the runs of payouts_job and no other process: not the webserver, the
# daemon or the code server, nor the runs whose GDAL parses vendor GeoTIFFs. Docker: the volume
# microcrop-oracle-key mounted into this job's run containers (read by microcrop_assets.deployment.launcher);
# Kubernetes: the secret microcrop-oracle-key in this job's run pods (read by dagster-k8s). A run of the
# payouts asset outside this job finds no key: its payouts wait in the ledger with that reason.
ORACLE_KEY_SECRET = "microcrop-oracle-key"
ORACLE_KEY_DIR = f"/run/secrets/{ORACLE_KEY_SECRET}"
ORACLE_KEY_TAGS = {
    "dagster-docker/container_context": json.dumps(
        {
            "env_vars": [f"ORACLE_PRIVATE_KEY_FILE={ORACLE_KEY_DIR}/ORACLE_PRIVATE_KEY"],
            "container_kwargs": {"volumes": {ORACLE_KEY_SECRET: {"bind": ORACLE_KEY_DIR, "mode": "ro"}}},
        }
    ),
    "dagster-k8s/config": json.dumps(
        {
            "container_config": {
                "env": [
                    {
                        "name": "ORACLE_PRIVATE_KEY",
                        "value_from": {"secret_key_ref": {"name": ORACLE_KEY_SECRET, "key": "ORACLE_PRIVATE_KEY"}},
                    }
                ]
            }
        }
    ),
}


payout_proofs_job = dg.define_asset_job(
    "payout_proofs_job", selection=[payout_proofs], tags=PAYOUT_TAGS, description="Pin one day's payout proofs."
)
payouts_job = dg.define_asset_job(
    "payouts_job",
    selection=[payouts],
    tags={**PAYOUT_TAGS, **ORACLE_KEY_TAGS},
    description="Send pending payouts to the chain.",
)
