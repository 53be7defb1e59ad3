"""The run launcher of the Docker stack (deploy/dagster.yaml): dagster-docker's, plus the container
settings a job's definition carries in its `dagster-docker/container_context` tag.

dagster-docker 0.29 takes container settings from the instance and the code location only, so every
run container would get the same mounts and variables. The payouts job is the one whose runs need the
oracle's signing key (payouts/assets.py, ORACLE_KEY_TAGS): its tag mounts the key's volume into its own
containers and no other's. The tag is read from the job's snapshot, what the code server defined, and
never from the run's tags: a tag added to one run from the UI cannot mount the key into another job's
run. The daemon holds only the volume's name.
"""

import json

import dagster as dg
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext

CONTAINER_CONTEXT_TAG = "dagster-docker/container_context"


class JobDockerRunLauncher(DockerRunLauncher):
    """DockerRunLauncher whose containers also get the `env_vars` and `container_kwargs` (merged over
    the instance's, e.g. `volumes`) of the job definition's CONTAINER_CONTEXT_TAG."""

    def get_container_context(self, dagster_run: dg.DagsterRun) -> DockerContainerContext:
        context = super().get_container_context(dagster_run)
        job_context = self.job_container_context(dagster_run)
        if job_context is None:
            return context
        return context.merge(DockerContainerContext.create_from_config({"docker": job_context}))

    def job_container_context(self, dagster_run: dg.DagsterRun) -> dict | None:
        """The run's job definition's CONTAINER_CONTEXT_TAG, parsed; None without one."""
        if dagster_run.job_snapshot_id is None:
            return None
        snapshot = self._instance.get_job_snapshot(dagster_run.job_snapshot_id)
        value = (snapshot.run_tags or {}).get(CONTAINER_CONTEXT_TAG)
        return json.loads(value) if value else None
