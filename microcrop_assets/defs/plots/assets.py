import os
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from microcrop_assets.defs.plots.registry import parse_plots, refuse_oversized, store_plots
from microcrop_assets.resources.object_store import ObjectStoreResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource

DEMO_PLOTS = Path(__file__).with_name("demo_plots.geojson")


def default_source() -> str:
    return os.environ.get("MICROCROP_PLOTS_SOURCE") or str(DEMO_PLOTS)


def read_source(source: str, store: ObjectStoreResource | None) -> bytes:
    """A local path, or `s3://<bucket>/<key>` in the configured object store (`store`, needed only then);
    a file over MICROCROP_MAX_PLOTS_FILE_BYTES is refused by its stored size, before it is read."""
    if source.startswith("s3://"):
        bucket, _, key = source[len("s3://") :].partition("/")
        if bucket != store.bucket or not key:
            raise ValueError(
                f"plots source {source!r}: expected s3://{store.bucket}/<key> (the configured MINIO_BUCKET)"
            )
        refuse_oversized(store.head(key).size, source)  # before a byte is read
        # an operator uploads the file with any S3 tool (no sha256 metadata); a recorded sha256 is still checked
        return store.get_bytes(key, accept_unrecorded=True)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"plots source {source!r} is not a file")
    refuse_oversized(path.stat().st_size, source)
    return path.read_bytes()


class PlotsConfig(dg.Config):
    source: str | None = None
    """GeoJSON FeatureCollection: a path or s3://bucket/key. Default: MICROCROP_PLOTS_SOURCE, else the demo plots."""


@dg.asset(
    group_name="plots",
    kinds={"postgres"},
    check_specs=[dg.AssetCheckSpec("plots_active", asset="plots", description="at least one active plot")],
)
def plots(
    config: PlotsConfig, timescaledb: TimescaleDBResource, object_store: ObjectStoreResource
) -> dg.MaterializeResult:
    """The insured plots and their policy terms (table `plots`); plots missing from the source become inactive."""
    source = config.source or default_source()
    frame = parse_plots(read_source(source, object_store), source)
    summary = store_plots(timescaledb, frame, source)
    with timescaledb.begin() as conn:
        by_crop = dict(conn.execute(sa.text("SELECT crop, count(*) FROM plots WHERE active GROUP BY crop")).all())
    return dg.MaterializeResult(
        metadata={
            "source": source,
            "inserted": summary.inserted,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "deactivated": summary.deactivated,
            "active_plots": summary.active,
            "active_by_crop": dg.MetadataValue.json(by_crop),
            "total_area_ha": float(frame["area_ha"].sum()),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="plots_active", passed=summary.active > 0, metadata={"active_plots": summary.active}
            )
        ],
    )
