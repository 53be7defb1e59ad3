"""assessment_archive on moto_server S3: old assessments to verified Parquet, marked only after verification."""

import datetime as dt
import hashlib
import io
import json
import re

import dagster as dg
import pyarrow.parquet as pq
import pytest

from microcrop_assets.defs.damage.assets import assessment_archive, damage_assessments
from microcrop_assets.resources.object_store import ObjectStoreResource

from .fixtures.damage import add_plot, add_weather

pytestmark = pytest.mark.integration

OLD_DAYS = (dt.date(2025, 3, 1), dt.date(2025, 3, 2))
RECENT = dt.date(2025, 6, 10)
AS_OF = "2025-07-01T00:00:00+00:00"  # cutoff 2025-04-02: the March days are older than 90 days


class TamperingStore(ObjectStoreResource):
    """The S3 store with someone rewriting each object right after it is written."""

    mode: str = "corrupt"

    def put(self, key, source, content_type=None):
        stored = super().put(key, source, content_type)
        if self.mode == "corrupt":  # bytes damaged, the recorded sha256 left as it was
            damaged = source[:-64] + bytes(64)
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=damaged, Metadata={"sha256": stored.sha256})
        else:  # a well-formed Parquet file missing a row, its own sha256 recorded: only the archive's check sees it
            table = pq.read_table(io.BytesIO(source)).slice(1)
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            super().put(key, buffer.getvalue(), content_type)
        return stored


@pytest.fixture
def assessed(damage_db):
    db = damage_db
    for plot_id in ("A", "B", "C"):
        add_plot(db, plot_id, sowing=dt.date(2025, 2, 1))
        for day in (*OLD_DAYS, RECENT):
            add_weather(db, plot_id, day, 0.6)
    for day in (*OLD_DAYS, RECENT):
        assert dg.materialize([damage_assessments], resources={"timescaledb": db}, partition_key=str(day)).success
    return db


def archive(db, store, raise_on_error=True):
    return dg.materialize(
        [assessment_archive],
        resources={"timescaledb": db, "object_store": store},
        run_config={"ops": {"assessment_archive": {"config": {"as_of": AS_OF}}}},
        raise_on_error=raise_on_error,
    )


def marks(db):
    return db.read_frame("SELECT day, plot_id, archived_at, archive_key FROM damage_assessments ORDER BY day, plot_id")


def test_old_assessments_archived_verified_and_marked_not_deleted(assessed, s3_store):
    db = assessed
    before = db.read_frame("SELECT * FROM damage_assessments WHERE day < '2025-04-01' ORDER BY assessment_id")
    result = archive(db, s3_store)
    metadata = result.asset_materializations_for_node("assessment_archive")[0].metadata
    assert metadata["days"].value == 2 and metadata["rows"].value == 6

    keys = s3_store.list("archive/damage_assessments/")
    assert [k.split("/")[2] for k in keys] == ["day=2025-03-01", "day=2025-03-02"]
    table = pq.read_table(io.BytesIO(b"".join(s3_store.get_bytes(k) for k in keys[:1])))
    assert table.num_rows == 3 and set(table.column("plot_id").to_pylist()) == {"A", "B", "C"}
    archived = pq.read_table(io.BytesIO(s3_store.get_bytes(keys[1]))).to_pylist()
    stored = {r["assessment_id"]: r for r in before.to_dict("records")}
    for row in archived:  # every column's exact value survives: decimals, dates, timestamps, money, documents
        original = stored[row["assessment_id"]]
        assert set(row) == set(original) - {"archived_at", "archive_key"}
        for column, value in row.items():
            assert (json.loads(value) if column in ("weights", "inputs") else value) == original[column], column
        assert row["inputs"].startswith('{"baseline":null') and '"weather_stress":"0.6"' in row["inputs"]

    after = marks(db)
    old = after[after["day"] < dt.date(2025, 4, 1)]
    assert len(after) == 9 and old["archived_at"].notna().all()  # marked, every row still in the hot table
    assert set(old["archive_key"]) == set(keys)
    assert after[after["day"] == RECENT]["archived_at"].isna().all()

    again = archive(db, s3_store).asset_materializations_for_node("assessment_archive")[0].metadata
    assert again["days"].value == 0 and s3_store.list("archive/damage_assessments/") == keys


@pytest.mark.parametrize(
    ("mode", "refusal"),
    [
        # the store's verifying read refuses bytes that differ from their recorded sha256
        ("corrupt", "{key}: read back failed: object '{key}': sha256 {actual} does not match the stored {written}"),
        # the object under the key replaced, its own sha256 recorded: the archive's sha256 check refuses it
        ("replace", "{key}: sha256 read back {actual}, written {written}"),
    ],
    ids=["corrupt", "replace"],
)
def test_tampered_archive_fails_verification_and_marks_nothing(assessed, moto_endpoint, mode, refusal):
    db = assessed
    store = TamperingStore(
        endpoint=moto_endpoint,
        access_key="test-access",
        secret_key="test-secret-do-not-log",
        bucket=f"mc-tamper-{mode}",
        mode=mode,
    )
    result = archive(db, store, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("assessment_archive").error.message
    keys = store.list("archive/damage_assessments/")
    assert len(keys) == 2 and "test-secret-do-not-log" not in failure
    for key in keys:  # both days refused, naming the key, the sha256 read back and the one written
        actual = hashlib.sha256(store.get_bytes(key, verify=False)).hexdigest()
        written = key.rsplit("/", 1)[1].removesuffix(".parquet") + "[0-9a-f]{48}"  # the key holds its first 16
        assert re.search(refusal.format(key=re.escape(key), actual=actual, written=written), failure), failure
    assert marks(db)["archived_at"].isna().all()
