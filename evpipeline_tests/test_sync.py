"""`write_sync` and `write_snapshot` (one page, one transaction) and the metadata every sync shows,
on a real DuckDB file. The large-pull path (`write_sync_batches`) is in test_sync_batches.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pandera.pandas as pa

from evpipeline.sync import (
    TableOutcome,
    TableRows,
    markdown_preview,
    table_metadata,
    write_snapshot,
    write_sync,
)
from evpipeline.warehouse import MergeCounts, Migration, WarehouseResource, Writer, register, source_table
from evpipeline_tests.conftest import query, scalar

register(
    Migration(
        "syncsrc",
        1,
        "items",
        "CREATE SCHEMA IF NOT EXISTS syncsrc;"
        + source_table("syncsrc.items", "item_id VARCHAR NOT NULL, size INTEGER, status VARCHAR"),
    )
)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
SCHEMA = pa.DataFrameSchema(
    {
        "item_id": pa.Column(str),
        "size": pa.Column(pd.Int64Dtype(), pa.Check.ge(0), nullable=True, coerce=True),
        "status": pa.Column(str, nullable=True),
        "is_deleted": pa.Column(bool, coerce=True),
        "last_updated": pa.Column(pd.DatetimeTZDtype("ns", "UTC"), coerce=True),
    },
    strict=True,
)


def rows(sizes: dict[str, int], at: datetime = T0) -> TableRows:
    frame = pd.DataFrame({"item_id": list(sizes), "size": list(sizes.values()), "status": "OK"})
    frame["is_deleted"] = False
    frame["last_updated"] = pd.Timestamp(at)
    raw = [{"id": k, "size": v} for k, v in sizes.items()]
    return TableRows("syncsrc.items", frame, SCHEMA, ("item_id",), raw, "status")


class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args)


# -- write_sync ------------------------------------------------------------------------------------


def test_one_sync_merges_quarantines_stamps_its_fetch_and_advances_the_watermark(
    warehouse: WarehouseResource,
) -> None:
    outcome = write_sync(
        warehouse,
        source="syncsrc",
        stream="items",
        run_id="r1",
        tables=[rows({"a": 1, "b": -1, "c": 3})],
        watermark=T0 + timedelta(minutes=5),
        requests=2,
        lineage="page 1",
        fetched_seq=42,
        observed_at=T0 + timedelta(minutes=1),
    )
    assert outcome.watermark == T0 + timedelta(minutes=5)
    items = outcome["syncsrc.items"]
    assert (items.counts.inserted, items.quarantined, sorted(items.valid["item_id"])) == (2, 1, ["a", "c"])
    assert query(
        warehouse,
        "SELECT item_id, _observed_seq, _observed_at, _lineage FROM syncsrc.items ORDER BY item_id",
    ) == [
        ("a", 42, T0 + timedelta(minutes=1), "page 1"),
        ("c", 42, T0 + timedelta(minutes=1), "page 1"),
    ]
    assert query(warehouse, "SELECT entity_key, raw_json FROM ops.quarantine") == [
        ("b", '{"id": "b", "size": -1}')
    ]
    assert warehouse.sync_state("syncsrc", "items")[0] == T0 + timedelta(minutes=5)
    assert query(warehouse, "SELECT stream, requests, watermark FROM ops.runs") == [
        ("items", 2, T0 + timedelta(minutes=5))
    ]


def test_without_a_watermark_the_sync_state_is_left_alone_and_the_run_still_logged(
    warehouse: WarehouseResource,
) -> None:
    write_sync(
        warehouse, source="syncsrc", stream="items", run_id="r1", tables=[rows({"a": 1})], watermark=None
    )
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state") == 0
    assert query(warehouse, "SELECT stream, watermark FROM ops.runs") == [("items", None)]


def test_before_commit_sees_the_valid_rows_and_its_work_shows_in_the_counts(
    warehouse: WarehouseResource,
) -> None:
    write_sync(
        warehouse, source="syncsrc", stream="items", run_id="r1", tables=[rows({"old": 1})], watermark=None
    )
    handed: dict[str, list[str]] = {}

    def sweep(writer: Writer, valid: dict[str, pd.DataFrame]) -> None:
        handed.update({name: sorted(frame["item_id"]) for name, frame in valid.items()})
        writer.flag_missing("syncsrc.items", ["item_id"], valid["syncsrc.items"], T0 + timedelta(hours=1))

    outcome = write_sync(
        warehouse,
        source="syncsrc",
        stream="items",
        run_id="r2",
        tables=[rows({"new": 1, "bad": -5}, T0 + timedelta(hours=1))],
        watermark=None,
        before_commit=sweep,
    )
    assert handed == {"syncsrc.items": ["new"]}
    counts = outcome["syncsrc.items"].counts
    assert (counts.inserted, counts.deleted) == (1, 1)
    assert query(warehouse, "SELECT item_id, is_deleted FROM syncsrc.items ORDER BY item_id") == [
        ("new", False),
        ("old", True),
    ]


# -- write_snapshot ----------------------------------------------------------------------------------


def snapshot(warehouse: WarehouseResource, sizes: dict[str, int], at: datetime, log: Log) -> TableOutcome:
    outcome = write_snapshot(
        warehouse,
        rows(sizes, at),
        source="syncsrc",
        stream="items",
        run_id=f"snap-{at:%H%M}",
        as_of=at,
        watermark=at,
        requests=1,
        lineage="list",
        log=log,
    )
    return outcome["syncsrc.items"]


def test_a_complete_list_flags_what_it_no_longer_holds_and_an_empty_one_flags_nothing(
    warehouse: WarehouseResource,
) -> None:
    log = Log()
    snapshot(warehouse, {"a": 1, "b": 2, "c": 3}, T0, log)
    second = snapshot(warehouse, {"a": 1, "c": 3}, T0 + timedelta(hours=1), log)
    assert second.counts.deleted == 1 and log.warnings == []
    deleted = "SELECT item_id FROM syncsrc.items WHERE is_deleted ORDER BY item_id"
    assert query(warehouse, deleted) == [("b",)]
    empty = snapshot(warehouse, {}, T0 + timedelta(hours=2), log)
    assert empty.counts.deleted == 0
    assert query(warehouse, deleted) == [("b",)]
    assert log.warnings == ["syncsrc returned no rows for syncsrc.items; not flagging anything deleted"]
    assert warehouse.sync_state("syncsrc", "items")[0] == T0 + timedelta(hours=2)


# -- what the UI shows -------------------------------------------------------------------------------


def test_the_preview_is_a_markdown_table_of_the_first_rows_escaped_and_cut() -> None:
    frame = pd.DataFrame({"name": ["a|b", None, "z" * 70, "not shown"], "n": [1, 2, 3, 4], "other": 0})
    assert markdown_preview(frame, ["n", "name", "absent"], rows=3) == "\n".join(
        [
            "| n | name |",
            "|---|---|",
            "| 1 | a\\|b |",
            "| 2 |  |",
            "| 3 | " + "z" * 60 + " |",
        ]
    )
    assert markdown_preview(frame, ["n"]) == "\n".join(["| n |", "|---|", "| 1 |", "| 2 |", "| 3 |", "| 4 |"])
    assert markdown_preview(frame.head(0), ["n"]) == "_no rows_"
    assert markdown_preview(frame, ["absent"]) == "_no rows_"


def test_every_sync_materialization_carries_its_counts() -> None:
    counts = MergeCounts(
        "syncsrc.items", fetched=7, inserted=3, updated=2, deleted=1, unchanged=1, status_changes=4
    )
    outcome = TableOutcome("syncsrc.items", counts, 2, pd.DataFrame({"item_id": ["a"]}))
    meta = table_metadata(
        outcome,
        requests=5,
        watermark=T0,
        preview_columns=["item_id"],
        extra={"pages": 2},
    )
    preview = meta.pop("preview")
    assert preview.value == "| item_id |\n|---|\n| a |"
    assert meta == {
        "table": "syncsrc.items",
        "fetched": 9,  # the merged rows and the quarantined ones
        "inserted": 3,
        "updated": 2,
        "deleted": 1,
        "unchanged": 1,
        "quarantined": 2,
        "status_changes": 4,
        "requests": 5,
        "watermark": "2026-03-01T12:00:00+00:00",
        "pages": 2,
    }
    bare = table_metadata(outcome, requests=None, watermark=None, preview_columns=["item_id"])
    assert "requests" not in bare and "watermark" not in bare and "pages" not in bare
