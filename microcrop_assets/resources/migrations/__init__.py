"""Versioned schema migrations (Alembic), applied automatically and idempotently on first use."""

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

log = logging.getLogger("microcrop.migrations")

# own version table: Dagster's instance storage uses Alembic too and may share the database
VERSION_TABLE = "microcrop_schema_version"
# any constant works; it only has to be the same in every process of this project
_MIGRATION_LOCK = 0x6D6963726F


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; concurrent processes wait for each other on an advisory lock."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
