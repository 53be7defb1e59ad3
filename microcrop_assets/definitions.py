"""The project's one Definitions: every asset, check, job, schedule and sensor under `defs/` (a folder
per domain: plots, weather, imagery, damage, payouts, monitoring) with the resources bound once. A new
definition is one edit, in its domain's folder."""

from pathlib import Path

import dagster as dg

from microcrop_assets.resources.environment import build_resources

# the project root holds pyproject.toml, whose [tool.dg] names the defs folder (the image keeps it too)
PROJECT_ROOT = Path(__file__).resolve().parent.parent

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(project_root=PROJECT_ROOT), dg.Definitions(resources=build_resources())
)
