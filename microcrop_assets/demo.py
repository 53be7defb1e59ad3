"""`microcrop demo`: the season demo on embedded defaults (see microcrop_assets/season/run.py).

Embedded PostgreSQL, the local object store and the in-process Redis stand in for the services; the
sandbox stands in for WeatherXM, Spexi and Pinata, and an in-process chain for Base. Only the
vendor URLs and keys differ from production. The terminal shows one line per stage, then the
summary and where the report is.
"""

import logging
import sys
import warnings

from microcrop_assets.cli import UserError


def run_demo(days: int | None = None, plots: int | None = None, scenario: str | None = None) -> int:
    import dagster as dg

    from microcrop_assets.sandbox.scenario import ScenarioError
    from microcrop_assets.season.results import season_outputs, summary_text
    from microcrop_assets.season.run import SeasonError, load_season, run_season

    try:
        season = load_season(scenario, days=days, plots=plots)
    except (ScenarioError, SeasonError) as error:
        raise UserError(str(error)) from None
    # the terminal shows stages; Dagster's own event lines (sensor ticks log at INFO) and warnings
    # about library internals the user cannot act on (unclosed connections in vendor libraries,
    # deprecations inside Dagster) stay off it. Every run's events are in the demo's Dagster instance.
    logging.getLogger("dagster").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", ResourceWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message="Asset job stress_response_job materializes assets with varying")
    try:
        run = run_season(season)
    except dg.DagsterExecutionStepExecutionError as error:
        cause = error.__cause__ or error
        raise UserError(f"{error.step_key}: {type(cause).__name__}: {cause}") from None
    data, report = season_outputs(run)
    print(f"\ndone in {run.seconds:.0f} s ({run.runs} Dagster runs)\n", flush=True)
    print(summary_text(data))
    print(f"\nreport: {report}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
