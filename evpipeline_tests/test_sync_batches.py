"""`write_sync_batches`: page-by-page validation, spooling, one transaction, on a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pandera.pandas as pa
import pytest

from evpipeline.sync import Batch, TableRows, write_sync_batches
from evpipeline.warehouse import Migration, WarehouseResource, Writer, register, source_table
from evpipeline_tests.conftest import query, scalar

register(
    Migration(
        "batchsrc",
        1,
        "items",
        "CREATE SCHEMA IF NOT EXISTS batchsrc;"
        + source_table(
            "batchsrc.items", "item_id VARCHAR NOT NULL, size INTEGER, flag BOOLEAN, status VARCHAR"
        ),
    )
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SCHEMA = pa.DataFrameSchema(
    {
        "item_id": pa.Column(str),
        "size": pa.Column(pd.Int64Dtype(), pa.Check.ge(0), nullable=True, coerce=True),
        "flag": pa.Column(pd.BooleanDtype(), nullable=True, coerce=True),
        "status": pa.Column(str, nullable=True),
        "is_deleted": pa.Column(bool, coerce=True),
        "last_updated": pa.Column(pd.DatetimeTZDtype("ns", "UTC"), coerce=True),
    },
    strict=True,
)


@pytest.fixture
def warehouse(any_warehouse: WarehouseResource) -> WarehouseResource:
    """This sync suite runs on both backends: a DuckDB file and a DuckLake on PostgreSQL."""
    return any_warehouse


def page(ids: list[str], sizes: list[int | None], at: datetime) -> Batch:
    frame = pd.DataFrame(
        {"item_id": ids, "size": sizes, "flag": [None] * len(ids), "status": ["OK"] * len(ids)}
    )
    frame["is_deleted"] = False
    frame["last_updated"] = pd.Timestamp(at)
    raw = [{"id": i, "size": s} for i, s in zip(ids, sizes, strict=True)]
    return Batch(
        [TableRows("batchsrc.items", frame, SCHEMA, ("item_id",), raw, "status")],
        as_of=at,
        lineage=f"page {ids[0]}",
    )


def test_pages_are_validated_merged_and_committed_once(warehouse: WarehouseResource) -> None:
    seen_by_hook: list[list[str]] = []
    produced: list[str] = []

    def pages() -> Iterator[Batch]:
        for n in range(3):
            produced.append(f"page {n}")
            yield page([f"a{n}", f"b{n}"], [n, -1 if n == 1 else n], T0 + timedelta(minutes=n))

    def after(
        writer: Writer, batch: Batch, valid: dict[str, pd.DataFrame], seen: dict[str, pd.DataFrame]
    ) -> None:
        seen_by_hook.append(sorted(seen["batchsrc.items"]["item_id"]))

    outcome = write_sync_batches(
        warehouse,
        source="batchsrc",
        stream="items",
        run_id="r1",
        batches=pages(),
        coalesce_rows=1,
        watermark=lambda: T0 + timedelta(minutes=len(produced)),
        requests=lambda: len(produced),
        after_batch=after,
    )
    assert scalar(warehouse, "SELECT count(*) FROM batchsrc.items") == 5
    assert outcome["batchsrc.items"].quarantined == 1 and outcome["batchsrc.items"].counts.inserted == 5
    assert query(warehouse, "SELECT entity_key, raw_json FROM ops.quarantine") == [
        ("b1", '{"id": "b1", "size": -1}')
    ]
    assert seen_by_hook == [
        ["a0", "b0"],
        ["a1", "b1"],
        ["a2", "b2"],
    ]  # the hook sees every row's key, valid or not
    assert warehouse.sync_state("batchsrc", "items")[0] == T0 + timedelta(
        minutes=3
    )  # read after the last page
    assert query(warehouse, "SELECT requests FROM ops.runs") == [(3,)]
    assert scalar(warehouse, "SELECT _lineage FROM batchsrc.items WHERE item_id = 'a2'") == "page a2"
    # Nullable integers and booleans survive the Parquet spool.
    assert query(warehouse, "SELECT size, flag FROM batchsrc.items WHERE item_id = 'a1'") == [(1, None)]


def test_small_pages_are_coalesced_before_validation(warehouse: WarehouseResource) -> None:
    batches = [page([f"x{n}"], [n], T0) for n in range(5)]
    outcome = write_sync_batches(
        warehouse,
        source="batchsrc",
        stream="items",
        run_id="r1",
        batches=batches,
        watermark=None,
        coalesce_rows=2,
    )
    lineages = sorted({r[0] for r in query(warehouse, "SELECT _lineage FROM batchsrc.items")})
    assert lineages == ["page x0 … page x1", "page x2 … page x3", "page x4"]
    assert outcome["batchsrc.items"].counts.inserted == 5


def test_a_failing_page_source_writes_nothing(warehouse: WarehouseResource) -> None:
    def pages() -> Iterator[Batch]:
        yield page(["a"], [1], T0)
        raise RuntimeError("HTTP error on page 2")

    with pytest.raises(RuntimeError, match="page 2"):
        write_sync_batches(
            warehouse, source="batchsrc", stream="items", run_id="r1", batches=pages(), watermark=T0
        )
    assert scalar(warehouse, "SELECT count(*) FROM batchsrc.items") == 0
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state") == 0


def test_a_crash_in_any_batch_leaves_no_row_and_no_watermark(warehouse: WarehouseResource) -> None:
    batches = [page([f"c{n}"], [n], T0) for n in range(4)]

    def crash_on_third(
        writer: Writer, batch: Batch, valid: dict[str, pd.DataFrame], seen: dict[str, pd.DataFrame]
    ) -> None:
        if batch.lineage == "page c2":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_sync_batches(
            warehouse,
            source="batchsrc",
            stream="items",
            run_id="r1",
            batches=batches,
            watermark=T0,
            coalesce_rows=1,
            after_batch=crash_on_third,
        )
    assert (
        scalar(warehouse, "SELECT count(*) FROM batchsrc.items") == 0
    )  # all or nothing, however many batches
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state") == 0
    outcome = write_sync_batches(
        warehouse,
        source="batchsrc",
        stream="items",
        run_id="r2",
        batches=batches,
        watermark=T0,
        coalesce_rows=1,
    )
    assert scalar(warehouse, "SELECT count(*) FROM batchsrc.items") == 4
    assert outcome["batchsrc.items"].counts.inserted == 4
    assert query(warehouse, "SELECT inserted FROM ops.runs WHERE run_id = 'r2'") == [(4,)]
    assert warehouse.sync_state("batchsrc", "items")[0] == T0


DUCKDB_ONLY = pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # logic above the backend: one is enough


@DUCKDB_ONLY
def test_two_versions_of_one_key_with_one_stamp_in_a_batch_quarantine_the_earlier(
    warehouse: WarehouseResource,
) -> None:
    """Two different versions of one key with the same `last_updated` in one batch cannot be ordered:
    the later one is merged, the earlier one lands in ops.quarantine with why (never dropped silently)."""
    batch = page(["dup", "dup"], [1, 2], T0)  # same key, same stamp, different content
    outcome = write_sync_batches(
        warehouse, source="batchsrc", stream="items", run_id="r1", batches=[batch], watermark=None
    )
    assert outcome["batchsrc.items"].quarantined == 1 and outcome["batchsrc.items"].counts.inserted == 1
    assert query(warehouse, "SELECT item_id, size FROM batchsrc.items") == [
        ("dup", 2)
    ]  # the later position wins
    assert query(warehouse, "SELECT entity_key, failed_checks, raw_json FROM ops.quarantine") == [
        (
            "dup",
            "duplicate key in one batch with the same last_updated: a different version (row 1) was kept",
            '{"id": "dup", "size": 1}',
        )
    ]


def _fetch(size: int, provider_stamp: datetime, server_time: datetime, seq: int) -> Batch:
    """One fetch of item `v`: the provider's `last_updated` and the server time of the response apart."""
    rows = page(["v"], [size], provider_stamp)
    return Batch(rows.tables, as_of=server_time, lineage=f"fetch {seq}", seq=seq)


# The provider's stamp goes back between two fetches: the later fetch carries the older `last_updated`.
EARLIER_FETCH = (1, T0 + timedelta(minutes=10), T0 + timedelta(minutes=1), 1)
LATER_FETCH = (2, T0, T0 + timedelta(minutes=2), 2)


@DUCKDB_ONLY
@pytest.mark.parametrize(
    ("version_by_fetch", "size"),
    [
        (True, 2),  # our observation time is the clock: the later fetch wins whatever the provider stamped
        (False, 1),  # the provider's last_updated is the clock: its older stamp makes the later fetch stale
    ],
)
def test_the_version_clock_is_the_fetch_or_the_provider_stamp_as_the_source_says(
    warehouse: WarehouseResource, version_by_fetch: bool, size: int
) -> None:
    for fetch in (EARLIER_FETCH, LATER_FETCH):
        write_sync_batches(
            warehouse,
            source="batchsrc",
            stream="items",
            run_id=f"fetch-{fetch[3]}",
            batches=[_fetch(*fetch)],
            watermark=None,
            version_by_fetch=version_by_fetch,
        )
    assert query(warehouse, "SELECT size FROM batchsrc.items WHERE item_id = 'v'") == [(size,)]
