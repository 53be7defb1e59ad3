"""Payout schedules: yesterday's proofs nightly, the ledger every DAMAGE_PAYOUT_CHECK_INTERVAL minutes."""

import dagster as dg

from microcrop_assets import settings
from microcrop_assets.defs.payouts.jobs import payout_proofs_job, payouts_job
from microcrop_assets.defs.shared import day_keyed_schedule

payout_proofs_nightly = day_keyed_schedule(
    "payout_proofs_nightly",
    payout_proofs_job,
    "0 2 * * *",
    "payout-proofs",
    days_back=1,
    description="Yesterday's proofs, after the nightly damage run (01:30 UTC).",
)


def every_minutes_cron(minutes: int) -> str:
    """A cron for 'every N minutes': steps under an hour, whole hours above (cron minutes stop at 59)."""
    if minutes < 60:
        return f"*/{minutes} * * * *"
    if minutes % 60 or minutes > 24 * 60:
        raise ValueError(f"DAMAGE_PAYOUT_CHECK_INTERVAL={minutes}: above 59 minutes use whole hours up to 1440")
    return f"0 */{minutes // 60} * * *"


payouts_every_interval = dg.ScheduleDefinition(
    name="payouts_every_interval",
    job=payouts_job,
    cron_schedule=every_minutes_cron(settings.env_int("DAMAGE_PAYOUT_CHECK_INTERVAL", 10)),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every DAMAGE_PAYOUT_CHECK_INTERVAL minutes: enqueue, send and confirm payouts.",
)
