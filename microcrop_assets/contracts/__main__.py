"""Rebuild payout_receiver.json from payout_receiver.vy: python -m microcrop_assets.contracts"""

import json

from microcrop_assets.contracts import ARTIFACT, compile_receiver

ARTIFACT.write_text(json.dumps(compile_receiver(), indent=1, sort_keys=True) + "\n")
print(f"wrote {ARTIFACT}")
