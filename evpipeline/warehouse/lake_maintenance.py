"""DuckLake upkeep: merge the small Parquet files every commit leaves, expire old snapshots, delete
the files no snapshot needs any more.

Every merge commits at least one small file per table it touched (a lane cycle every few seconds
makes thousands a day); reads slow down with the file count until they are merged. Snapshots are
what time travel reads: expiring those older than the retention window bounds the catalog and the
storage, and also bounds how far back a delivery can be rebuilt (`EVPIPELINE_LAKE_KEEP_DAYS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from evpipeline.warehouse.backend import CATALOG, LAKE_METADATA_CATALOG


@dataclass(frozen=True)
class LakeFiles:
    """What the lake stores: data and delete files (referenced by any snapshot), and snapshots."""

    data_files: int
    data_bytes: int
    delete_files: int
    delete_bytes: int
    snapshots: int

    @property
    def files(self) -> int:
        return self.data_files + self.delete_files

    @property
    def bytes(self) -> int:
        return self.data_bytes + self.delete_bytes


@dataclass(frozen=True)
class MaintenanceResult:
    before: LakeFiles
    after: LakeFiles
    expired_before: datetime
    files_deleted: int


def lake_files(con: duckdb.DuckDBPyConnection) -> LakeFiles:
    meta = LAKE_METADATA_CATALOG
    data = con.execute(
        f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM {meta}.ducklake_data_file"
    ).fetchone()
    deletes = con.execute(
        f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM {meta}.ducklake_delete_file"
    ).fetchone()
    snapshots = con.execute(f"SELECT count(*) FROM ducklake_snapshots('{CATALOG}')").fetchone()
    assert data is not None and deletes is not None and snapshots is not None
    return LakeFiles(int(data[0]), int(data[1]), int(deletes[0]), int(deletes[1]), int(snapshots[0]))


def maintain(con: duckdb.DuckDBPyConnection, *, now: datetime, keep: timedelta) -> MaintenanceResult:
    """Merge adjacent small files, expire snapshots older than `keep`, then delete unreferenced files.

    Each step is DuckLake's own function; each commits by itself, and a crash between them leaves a
    consistent lake (the next run does the rest)."""
    before = lake_files(con)
    expire_before = now - keep
    con.execute(f"CALL ducklake_merge_adjacent_files('{CATALOG}')")
    # Retired files (merged, deleted) become unreferenced once no kept snapshot reads them.
    con.execute(f"CALL ducklake_expire_snapshots('{CATALOG}', older_than => ?)", [expire_before])
    deleted = con.execute(f"CALL ducklake_cleanup_old_files('{CATALOG}', cleanup_all => true)").fetchall()
    return MaintenanceResult(before, lake_files(con), expire_before, len(deleted))
