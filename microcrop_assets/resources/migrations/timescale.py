"""TimescaleDB features where the extension exists; the same schema stays plain PostgreSQL elsewhere."""

import logging

import sqlalchemy as sa
from alembic import op

log = logging.getLogger("microcrop.migrations")


def timescaledb_available() -> bool:
    bind = op.get_bind()
    return bool(bind.scalar(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")))


def make_hypertable(
    table: str, time_column: str, chunk_interval: str, segment_by: str, compress_after: str, retain: str | None
) -> bool:
    """Turn `table` into a compressed hypertable with retention; returns False on plain PostgreSQL."""
    if not timescaledb_available():
        log.info("timescaledb extension not available: %s stays a plain PostgreSQL table", table)
        return False
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    op.execute(
        f"SELECT create_hypertable('{table}', by_range('{time_column}', INTERVAL '{chunk_interval}'),"
        " migrate_data => true, if_not_exists => true)"
    )
    op.execute(f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = '{segment_by}')")
    op.execute(f"SELECT add_compression_policy('{table}', INTERVAL '{compress_after}', if_not_exists => true)")
    if retain:
        op.execute(f"SELECT add_retention_policy('{table}', INTERVAL '{retain}', if_not_exists => true)")
    log.info("timescaledb: %s is a hypertable on %s", table, time_column)
    return True
