"""One running sandbox's state: its configuration, world, imagery, fault knobs and clock. The vendor
simulators read it; the server (server.py) builds one per app."""

import datetime as dt

from microcrop_assets.sandbox.config import SandboxConfig
from microcrop_assets.sandbox.faults import FaultState
from microcrop_assets.sandbox.imagery import Imagery
from microcrop_assets.sandbox.world import World


class Sandbox:
    """Everything one running sandbox knows: its configuration, world, imagery and fault knobs."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.world = World(config)
        self.imagery = Imagery(self.world)
        self.faults = FaultState(config.seed, config.faults)

    def now(self) -> dt.datetime:
        moment = self.config.clock()
        if moment.tzinfo is None:
            raise ValueError(f"the sandbox clock returned a naive datetime {moment!r}; it must be timezone-aware")
        return moment.astimezone(dt.UTC)
