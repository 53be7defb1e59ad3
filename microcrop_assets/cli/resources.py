"""The resources a command needs, bound as in Definitions and opened for the command's duration."""

import contextlib
import re
from collections.abc import Iterator

from microcrop_assets.cli.errors import UserError


@contextlib.contextmanager
def open_resources(*keys: str) -> Iterator[dict]:
    """The named resources as bound in Definitions, with EnvVars resolved (Dagster does that only in
    runs), torn down (connection pools closed) when the block ends."""
    import dagster as dg

    from microcrop_assets.resources.environment import build_resources

    bound = build_resources()
    with contextlib.ExitStack() as stack:
        try:
            ready = {key: stack.enter_context(bound[key].process_config_and_initialize_cm()) for key in keys}
        except dg.DagsterInvalidConfigError as error:  # a vendor key or another required setting is unset
            unset = re.findall(r'environment variable "(\w+)" which is not set', str(error))
            if not unset:
                raise
            raise UserError(f"environment variable {', '.join(unset)} is not set (see docs/configuration.md)") from None
        yield ready
