"""Step concurrency limits per pool, stored in the Dagster instance (dagster.yaml holds only the
default). `python -m microcrop_assets.deployment.pools` applies them to the instance DAGSTER_HOME names;
run it once per deployment and after changing a limit here.

Queues of the original system become pools of the same name (steps at once across all runs); the
vendor pools bound calls to an account shared by every run (the Redis token bucket still sets the
rate, these only cap the parallel steps waiting on it).
"""

import dagster as dg

POOL_LIMITS = {
    "default": 4,
    "weather": 4,
    "satellite": 2,
    "damage": 2,
    "priority": 2,
    "weatherxm": 2,
    "spexi": 1,
    "pinata": 2,
}


def apply_pool_limits(instance: dg.DagsterInstance, limits: dict[str, int] = POOL_LIMITS) -> dict[str, int]:
    """Set every pool's limit; returns the limits the instance now reports."""
    storage = instance.event_log_storage
    for pool, limit in limits.items():
        storage.set_concurrency_slots(pool, limit)
    return {pool: storage.get_concurrency_info(pool).slot_count for pool in limits}


if __name__ == "__main__":
    with dg.DagsterInstance.get() as current:
        for name, slots in apply_pool_limits(current).items():
            print(f"pool {name}: {slots} step(s) at once")
