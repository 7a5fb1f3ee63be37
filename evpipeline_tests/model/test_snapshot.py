"""The BI snapshot: readable while the pipeline holds the live warehouse, and published incrementally."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evpipeline.model import snapshot as snap
from evpipeline.model.snapshot import (
    MANIFEST_NAME,
    SNAPSHOT_NAME,
    Snapshot,
    known_keys,
    open_snapshot,
    publish_snapshot,
    snapshot_dir,
)
from evpipeline.model.tables import EVSES
from evpipeline.ndw.export import build_export
from evpipeline.ndw.pull_snapshot import load_snapshot
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.rows import scalar
from evpipeline_tests.conftest import materialize
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart
from evpipeline_tests.typed import present

KEYS = known_keys()  # imports every source's tables: all migrations registered before a warehouse opens


@pytest.fixture
def mart(warehouse: WarehouseResource) -> WarehouseResource:
    standard_mart().write(warehouse)
    return warehouse


@pytest.fixture
def directory(warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path / "data"))  # a DuckLake's snapshots go under it
    return snapshot_dir(warehouse.database)


def publish(warehouse: WarehouseResource, directory: Path, token: str = "t") -> Snapshot:
    with warehouse.get_connection() as con:
        return publish_snapshot(con, directory, token)


@contextmanager
def catalog(directory: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A reader of the published catalog, opened as the pull server opens it."""
    con = open_snapshot(directory)
    try:
        yield con
    finally:
        con.close()


def manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST_NAME).read_text())


def change_evses(warehouse: WarehouseResource, minutes: int, status: str, *, new: int | None = None) -> None:
    """Through the real merge: EVSE 1 of location 1 gets `status`; optionally a new EVSE `new` there."""
    location = MartRows().location(1)
    rows = MartRows()
    rows.evse(location, 1, status=status, updated=later(minutes))
    if new is not None:
        rows.evse(location, new, updated=later(minutes))
    rows.write(warehouse, run_id=f"change-{minutes}")


def evses(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(f"SELECT * FROM {EVSES} ORDER BY {', '.join(KEYS[EVSES])}").fetchall()


def relations(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        f"{schema}.{name}"
        for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary ORDER BY 1, 2"
        ).fetchall()
    ]


def dump(con: duckdb.DuckDBPyConnection, relation: str, omit: tuple[str, ...] = ()) -> tuple[list[Any], ...]:
    """(column names and types, every row in a stable order) of a table or view, without `omit`."""
    exclude = f" EXCLUDE ({', '.join(omit)})" if omit else ""
    query = f"SELECT *{exclude} FROM {relation}"
    columns = [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {query}").fetchall()]
    return columns, con.execute(f"{query} ORDER BY ALL").fetchall()


def assert_catalog_matches(warehouse: WarehouseResource, directory: Path) -> None:
    """Every table and view of the warehouse reads the same (types and rows) in the catalog."""
    with warehouse.get_connection() as live, catalog(directory) as bi:
        names = relations(live)
        assert "mart.evse_status_history" in names and "ops.status_history" in names
        for name in names:
            if name in snap.SKIP:
                assert name not in relations(bi), name  # not published at all
                continue
            assert dump(bi, name) == dump(live, name), name


def test_snapshot_published_and_readable_while_writer_holds_live_file(
    mart: WarehouseResource, directory: Path
) -> None:
    from evpipeline.model.assets import bi_snapshot  # here: the other tests do not need the asset module

    materialize([bi_snapshot], {"warehouse": mart})
    snapshot = directory / SNAPSHOT_NAME
    with mart.get_connection() as live:  # the pipeline is writing: the live file is locked
        live.execute("UPDATE mart.evses SET status = 'CHARGING'")
        with open_snapshot(snapshot) as bi:
            locations = scalar(bi.execute("SELECT count(*) FROM mart.locations"))
            assert locations == len(standard_mart().locations)
            assert scalar(bi.execute("SELECT count(*) FROM mart.evse_status_history")) > 0  # views too
    parquet = directory / "parquet" / "mart" / "evses"  # one base file after a first publication
    published = present(duckdb.sql(f"SELECT count(*) FROM '{parquet}/*.parquet'")).fetchall()[0][0]
    assert published == len(standard_mart().evses)
    # A second publication replaces the first atomically (no leftovers).
    materialize([bi_snapshot], {"warehouse": mart})
    assert sorted(p.name for p in directory.iterdir()) == [MANIFEST_NAME, "parquet", SNAPSHOT_NAME]


def test_second_publication_writes_only_the_changed_rows(mart: WarehouseResource, directory: Path) -> None:
    first = publish(mart, directory, "one")
    assert (
        first.written[EVSES] == len(standard_mart().evses) and first.tables == 7
    )  # locations, evses, connectors, tariffs, unmapped_values, identity, identity_candidates

    change_evses(mart, 5, "OUT_OF_ORDER", new=7)  # one status update, one insert
    second = publish(mart, directory, "two")

    # The EVSE delta and the two status transitions (update and insert); nothing else.
    assert second.written == {EVSES: 2, "ops.status_history": 2} and second.rows_written == 4
    assert second.tables_written == 2 and second.compacted == [] and second.bytes_written > 0
    files = manifest(directory)["tables"][EVSES]["files"]
    assert [(f["kind"], f["rows"]) for f in files] == [("base", len(standard_mart().evses)), ("delta", 2)]
    with mart.get_connection() as live, catalog(directory) as bi:
        assert evses(bi) == evses(live)
        assert len(evses(bi)) == len(standard_mart().evses) + 1
        status = "SELECT status FROM mart.evses WHERE evse_uid = 'LOC-0001-E1'"
        assert bi.execute(status).fetchall() == [("OUT_OF_ORDER",)]
    assert_catalog_matches(mart, directory)


# Catalog-file rules (when deltas fold into a base, how long a retired file outlives its manifest): the
# same code on either backend once the rows are read, and the reading is pinned on DuckLake by the other
# tests of this file; on DuckLake each of these cost about 20 s of publications.
@pytest.mark.parametrize("any_warehouse", ["duckdb"], indirect=True)
def test_compaction_keeps_the_catalog_equal_to_the_warehouse(
    mart: WarehouseResource, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(mart, directory)
    base = len(standard_mart().evses)
    # A ratio that folds after two deltas instead of six: the rule is the same,
    # each publication costs seconds.
    monkeypatch.setattr(snap, "COMPACT_RATIO", 1.5 / base)
    compacted_at = None
    statuses = ["CHARGING", "AVAILABLE", "BLOCKED", "CHARGING", "AVAILABLE", "OUT_OF_ORDER"]
    for i, status in enumerate(statuses, 1):
        change_evses(mart, 10 * i, status)  # the same EVSE again and again: deltas repeat its key
        result = publish(mart, directory)
        assert_catalog_matches(mart, directory)
        if EVSES in result.compacted:
            compacted_at = i
            break
        assert result.written[EVSES] == 1
    # Deltas fold into a fresh base once they exceed a quarter of it.
    assert compacted_at == int(base * snap.COMPACT_RATIO) + 1
    assert [f["kind"] for f in manifest(directory)["tables"][EVSES]["files"]] == ["base"]


# Catalog-file rules (when deltas fold into a base, how long a retired file outlives its manifest): the
# same code on either backend once the rows are read, and the reading is pinned on DuckLake by the other
# tests of this file; on DuckLake each of these cost about 20 s of publications.
@pytest.mark.parametrize("any_warehouse", ["duckdb"], indirect=True)
def test_reader_of_the_old_catalog_keeps_its_data(
    mart: WarehouseResource, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(mart, directory, "one")
    with catalog(directory) as old_reader:
        before = evses(old_reader)
        change_evses(mart, 5, "BLOCKED", new=8)
        publish(mart, directory, "two")  # a delta: the old catalog does not read it
        assert evses(old_reader) == before
        change_evses(mart, 6, "CHARGING")
        monkeypatch.setattr(snap, "COMPACT_RATIO", 0)
        assert EVSES in publish(mart, directory, "three").compacted  # the old base leaves the manifest
        assert evses(old_reader) == before  # but is retired, not deleted, within the grace period
        with catalog(directory) as new_reader, mart.get_connection() as live:
            assert evses(new_reader) == evses(live) != before

        monkeypatch.setattr(snap, "GRACE", timedelta(0))
        change_evses(mart, 7, "AVAILABLE")
        assert publish(mart, directory, "four").files_deleted > 0
        with pytest.raises(duckdb.IOException):  # past the grace period its files are gone
            evses(old_reader)
    assert_catalog_matches(mart, directory)


def test_publication_without_changes_writes_nothing(mart: WarehouseResource, directory: Path) -> None:
    publish(mart, directory, "one")

    def state() -> tuple[Any, ...]:
        files = sorted((p, p.stat().st_mtime_ns) for p in directory.rglob("*"))
        st = (directory / SNAPSHOT_NAME).stat()
        return (directory / MANIFEST_NAME).read_bytes(), files, (st.st_ino, st.st_size, st.st_mtime_ns)

    before = state()
    again = publish(mart, directory, "two")
    assert (again.rows_written, again.bytes_written, again.tables_written, again.written) == (0, 0, 0, {})
    assert state() == before


def test_append_table_drops_files_the_warehouse_no_longer_holds(
    mart: WarehouseResource, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in (3, 2, 1)]
    with mart.get_connection() as con:
        for day in days:
            con.execute(
                "INSERT INTO ops.status_history SELECT 'test', 'mart.evses', 'E' || i, 'status', NULL, "
                "'AVAILABLE', $day + i * INTERVAL 1 HOUR, $day + i * INTERVAL 1 HOUR, 'old' "
                "FROM range(24) r(i)",
                {"day": day},
            )
    publish(mart, directory, "one")
    history = manifest(directory)["tables"]["ops.status_history"]
    published = {f["day"]: f for f in history["files"]}
    assert [published[d.date().isoformat()]["rows"] for d in days] == [24, 24, 24]

    # Retention: day 3 ago goes entirely, 2 days ago only its first half.
    with mart.get_connection() as con:
        cut = days[1] + timedelta(hours=12)
        con.execute("DELETE FROM ops.status_history WHERE recorded_at < $cut", {"cut": cut})
    result = publish(mart, directory, "two")
    assert result.written == {"ops.status_history": 12}  # the trimmed day rewritten; dropping costs nothing
    files = {f["day"]: f for f in manifest(directory)["tables"]["ops.status_history"]["files"]}
    assert days[0].date().isoformat() not in files
    assert files[days[1].date().isoformat()]["rows"] == 12
    assert files[days[2].date().isoformat()] == published[days[2].date().isoformat()]  # untouched
    assert_catalog_matches(mart, directory)

    # The dropped files stay for readers of the old catalog until the grace period is over.
    gone = [directory / "parquet" / published[d.date().isoformat()]["path"] for d in days[:2]]
    assert all(p.exists() for p in gone)
    monkeypatch.setattr(snap, "GRACE", timedelta(0))
    assert publish(mart, directory, "three").files_deleted == 2
    assert not any(p.exists() for p in gone)


def test_append_table_repairs_rows_written_behind_the_watermark(
    mart: WarehouseResource, directory: Path
) -> None:
    publish(mart, directory, "one")
    with mart.get_connection() as con:  # e.g. an NDW push answered before the last publication, logged after
        for shift in ("- INTERVAL 1 MINUTE", "+ INTERVAL 1 MINUTE"):
            con.execute(
                f"INSERT INTO ops.status_history SELECT * REPLACE (now() {shift} AS recorded_at) "
                "FROM ops.status_history LIMIT 1"
            )
    publish(mart, directory, "two")
    assert_catalog_matches(mart, directory)


def test_rows_seen_again_later_are_republished(mart: WarehouseResource, directory: Path) -> None:
    publish(mart, directory, "one")
    rows = MartRows()
    rows.evse(MartRows().location(1), 1, _observed_at=later(60))  # same content, seen later: no new stamp
    rows.write(mart, run_id="seen-again")
    result = publish(mart, directory, "two")
    assert result.written == {EVSES: 1}
    assert_catalog_matches(mart, directory)


def test_crash_leaves_the_previous_publication_intact(
    mart: WarehouseResource, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(mart, directory, "one")
    with catalog(directory) as bi:
        published = evses(bi)
    listed = manifest(directory)
    change_evses(mart, 5, "BLOCKED", new=9)

    def crash(*args: Any) -> None:
        raise RuntimeError("killed")

    # 1. After the new Parquet files, before the manifest.
    with monkeypatch.context() as patch:
        patch.setattr(snap, "_write_manifest", crash)
        with pytest.raises(RuntimeError, match="killed"):
            publish(mart, directory, "two")
    orphans = {p for p in (directory / "parquet").rglob("*.parquet")} - {
        directory / "parquet" / f["path"] for t in listed["tables"].values() for f in t["files"]
    }
    assert orphans and manifest(directory) == listed
    assert sorted(p.name for p in directory.iterdir()) == [MANIFEST_NAME, "parquet", SNAPSHOT_NAME]
    with catalog(directory) as bi:
        assert evses(bi) == published

    # 2. After the manifest, before the catalog: the old catalog still reads; the next run, with
    #    nothing new to write, still brings the catalog up to date.
    replace = snap.os.replace

    def replace_all_but_catalog(src: Any, dst: Any) -> None:
        if Path(dst).name == SNAPSHOT_NAME:
            raise RuntimeError("killed")
        replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(snap.os, "replace", replace_all_but_catalog)
        with pytest.raises(RuntimeError, match="killed"):
            publish(mart, directory, "three")
    with catalog(directory) as bi:
        assert evses(bi) == published
    converged = publish(mart, directory, "four")
    assert converged.rows_written == 0 and converged.bytes_written > 0
    assert_catalog_matches(mart, directory)

    # Orphans of the crashed run are cleaned once no reader can know them.
    monkeypatch.setattr(snap, "GRACE", timedelta(0))
    publish(mart, directory, "five")
    assert not any(p.exists() for p in orphans)


def test_pull_server_reads_the_catalog(mart: WarehouseResource, directory: Path) -> None:
    publish(mart, directory, "one")
    change_evses(mart, 5, "OUT_OF_ORDER", new=3)
    rows = MartRows()
    rows.location(2, name="Laadplein Twee", updated=later(6))
    rows.write(mart, run_id="rename")
    publish(mart, directory, "two")
    assert manifest(directory)["tables"]["mart.locations"]["files"][-1]["kind"] == "delta"

    served = load_snapshot(directory / SNAPSHOT_NAME)
    with mart.get_connection() as live:
        expected = build_export(live)
    assert served.locations == expected.locations and served.tariffs == expected.tariffs
    assert served.location_keys == expected.location_keys and served.rejections == expected.rejections
    assert any("Laadplein Twee" in body for body in served.locations)


def test_merge_tables_without_a_known_key_are_published_whole(
    mart: WarehouseResource, directory: Path
) -> None:
    with mart.get_connection() as con:
        result = publish_snapshot(con, directory, "one", keys={})
    assert EVSES in result.unkeyed and manifest(directory)["tables"][EVSES]["mode"] == "replace"
    change_evses(mart, 5, "BLOCKED")
    with mart.get_connection() as con:
        result = publish_snapshot(con, directory, "two", keys={})
    assert result.written[EVSES] == len(standard_mart().evses)
    assert_catalog_matches(mart, directory)


def test_a_new_warehouse_at_the_same_path_is_published_afresh(
    mart: WarehouseResource, directory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mart.backend.is_lake:
        pytest.skip("replaces a DuckDB file at its path: a DuckLake has no such file")
    monkeypatch.setattr(snap, "COMPACT_RATIO", 10)  # only the warehouse's identity forces a fresh base
    publish(mart, directory, "one")
    with catalog(directory) as old_reader:
        before = evses(old_reader)
        rebuilt = WarehouseResource(database=str(tmp_path / "rebuilt.duckdb"))  # fewer rows, ingested later
        standard_mart(n_good=2).write(rebuilt)
        Path(rebuilt.database).replace(mart.database)
        result = publish(mart, directory, "two")
        assert result.written[EVSES] == len(standard_mart(n_good=2).evses)
        assert evses(old_reader) == before  # the old files are retired, not orphaned
    assert_catalog_matches(mart, directory)
