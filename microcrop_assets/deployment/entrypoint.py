"""The image's entrypoint: a Dagster command starts only when the instance it loads can be built.

The deployed instance (deploy/dagster.yaml, the image's DAGSTER_HOME) takes its database from
`{env: ...}` settings, and the daemon's run launcher passes every name in its `env_vars` to each run
container and refuses a run when one is unset in the daemon's own environment. Left to Dagster, a
missing one surfaces as a stack trace naming one variable (or a run stuck at launch); here every
missing name is listed at once, with where it is documented, before the command starts. Any other
command (`microcrop demo`, `python ...`) starts unchecked.

    python -m microcrop_assets.deployment.entrypoint dagster-daemon run -w workspace.yaml
"""

import os
import re
import sys
from pathlib import Path

import yaml

DAGSTER_COMMANDS = ("dagster", "dagster-webserver", "dagster-daemon")
ENV_REFERENCE = re.compile(r"\{\s*env:\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
DOCS = "docs/deployment.md#settings-of-the-deployed-instance"


def missing_settings(instance_text: str, command: str, environ: dict[str, str]) -> list[str]:
    """The variables the command's instance needs and the environment lacks (set to empty is set)."""
    needed = ENV_REFERENCE.findall(instance_text)
    if command == "dagster-daemon":  # the process that launches runs
        launcher = (yaml.safe_load(instance_text).get("run_launcher") or {}).get("config") or {}
        needed += [name for name in launcher.get("env_vars", []) if "=" not in name]
    return sorted({name for name in needed if name not in environ})


def refusal(instance_file: Path, missing: list[str]) -> str:
    return (
        f"microcrop: the Dagster instance {instance_file} reads {len(missing)} unset environment"
        f" variable(s): {', '.join(missing)}.\nSet them (an empty value counts as set) as compose.yaml"
        f" does; what each means: {DOCS} and docs/configuration.md. To run without the deployed"
        " instance, point DAGSTER_HOME at another folder."
    )


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m microcrop_assets.deployment.entrypoint COMMAND [ARGS...]", file=sys.stderr)
        return 2
    command = Path(argv[0]).name
    instance_file = Path(os.environ.get("DAGSTER_HOME", "")) / "dagster.yaml"
    if command in DAGSTER_COMMANDS and os.environ.get("DAGSTER_HOME") and instance_file.is_file():
        missing = missing_settings(instance_file.read_text(), command, dict(os.environ))
        if missing:
            print(refusal(instance_file, missing), file=sys.stderr)
            return 2
    os.execvp(argv[0], argv)  # replaces this process: signals reach the command itself


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
