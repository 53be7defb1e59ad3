"""MicroCrop asset pipeline (Dagster definitions in `microcrop_assets.definitions`)."""

import warnings

# Dagster 1.13 flags `backfill_policy` as beta on @asset (the same option on @multi_asset is not):
# every process loading the definitions (`dagster` and `microcrop` commands, each run worker) printed
# one BetaWarning per partitioned asset, which the user can do nothing about. Only that message is
# silenced; any other Dagster warning still shows.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset` is currently in beta")
# stress_response_job runs one stressed day's orders and assessments together; the two assets' backfill
# policies (per day, single run) cannot differ for a one-partition run, yet each such run warned.
warnings.filterwarnings("ignore", message=r"Asset job stress_response_job materializes assets with varying")
