"""Expected failures of the `microcrop` command: one line on stderr, no traceback, exit code 1."""


class UserError(Exception):
    """An expected failure the user can fix: printed as one line, no traceback, exit code 1."""


def expected_error(error: BaseException) -> str | None:
    """The message to print for an expected failure, None for a bug (whose traceback then shows).

    Project modules are imported here, on the error path only, so `microcrop cid` stays fast."""
    from microcrop_assets.settings import SettingError

    if isinstance(error, UserError | SettingError):
        return str(error)
    if isinstance(error, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError):
        return f"{error.strerror}: {error.filename}" if error.filename else str(error)

    import botocore.exceptions
    import redis.exceptions
    import sqlalchemy.exc

    from microcrop_assets.defs.imagery.rasters import ImageryError
    from microcrop_assets.defs.plots.registry import PlotsFileError
    from microcrop_assets.resources.http import VendorError
    from microcrop_assets.resources.object_store import ObjectStoreError

    if isinstance(error, PlotsFileError | VendorError | ObjectStoreError | ImageryError):
        return str(error)  # already names the value, its source and the reason (secrets redacted)
    if isinstance(error, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
        return f"object store: {error}"
    if isinstance(error, sqlalchemy.exc.OperationalError):
        # the driver's first line ("connection ... failed: ..."), without the SQL and the help link
        return "database: " + str(error.orig or error).strip().splitlines()[0]
    if isinstance(error, redis.exceptions.ConnectionError):
        return f"redis: {error}"
    return None
