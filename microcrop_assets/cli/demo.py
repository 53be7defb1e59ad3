"""`microcrop demo`: the season demo on embedded defaults (see microcrop_assets/season/run.py).

Embedded PostgreSQL, the local object store and the in-process Redis stand in for the services; the
sandbox stands in for WeatherXM, Spexi and Pinata, and an in-process chain for Base. Only the
vendor URLs and keys differ from production. The terminal shows one line per stage, then the
summary and where the report is.
"""

import argparse
import datetime as dt
import sys
from pathlib import Path

from microcrop_assets import settings
from microcrop_assets.cli.errors import UserError

# the sandbox scenario `microcrop ui` serves over the bundled demo plots (the season demo has its own)
DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "sandbox" / "scenarios" / "drought_kakamega.json"


def run_demo(days: int | None = None, plots: int | None = None, scenario: str | None = None) -> int:
    import logging  # here: every `microcrop` command imports this module to build its parser

    import dagster as dg

    from microcrop_assets.sandbox.scenario import ScenarioError
    from microcrop_assets.season.results import season_outputs, summary_text
    from microcrop_assets.season.run import SeasonError, load_season, run_season

    try:
        season = load_season(scenario, days=days, plots=plots)
    except (ScenarioError, SeasonError) as error:
        raise UserError(str(error)) from None
    # The terminal shows stages. Dagster's own lines (sensor ticks log at INFO) and Python warnings
    # (libraries such as eth_tester reset the warning filters on import, so filters cannot hold them)
    # go to a log file instead; every run's events are in the demo's Dagster instance.
    home = settings.ensure_home()
    (home / "logs").mkdir(exist_ok=True)
    log_path = home / "logs" / f"season-demo-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.log"
    handler = logging.FileHandler(log_path, encoding="utf-8")
    logging.captureWarnings(True)
    for name in ("py.warnings", "dagster"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    print(f"warnings and Dagster's log lines: {log_path}", flush=True)
    try:
        run = run_season(season)
    except dg.DagsterExecutionStepExecutionError as error:
        cause = error.__cause__ or error
        raise UserError(f"{error.step_key}: {type(cause).__name__}: {cause} (log: {log_path})") from None
    finally:
        handler.flush()
    data, report = season_outputs(run)
    print(f"\ndone in {run.seconds:.0f} s ({run.runs} Dagster runs)\n", flush=True)
    print(summary_text(data))
    print(f"\nreport: {report}", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(days=args.days, plots=args.plots, scenario=args.scenario)


def add_commands(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="run the pipeline end to end on embedded defaults and the sandbox")
    demo.add_argument("--days", type=int, default=None, help="first N days of the season (default: all 120)")
    demo.add_argument("--plots", type=int, default=None, help="N plots taken evenly over the regions (default 220)")
    demo.add_argument("--scenario", default=None, help="scenario JSON with a season window (default season_2025)")
    demo.set_defaults(func=cmd_demo)


if __name__ == "__main__":
    sys.exit(run_demo())
