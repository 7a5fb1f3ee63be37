"""ops/lake_maintenance: small files merged, old snapshots expired, unreferenced files deleted,
data unchanged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from evpipeline.maintenance.assets import lake_maintenance
from evpipeline.run_config import op_config
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.lake_maintenance import lake_files, maintain
from evpipeline.warehouse.timetravel import SnapshotUnavailable, reading
from evpipeline_tests.conftest import materialize, query
from evpipeline_tests.warehouse import writers


def _parquet(root: str) -> list[Path]:
    return sorted(Path(root).rglob("*.parquet"))


def test_maintenance_merges_small_files_and_expires_old_snapshots(lake_database: str) -> None:
    warehouse = WarehouseResource(database=lake_database)
    for round_no in range(1, 9):  # eight syncs: eight small files per table, plus delete files
        writers.write_round(warehouse, "alpha", round_no, 300)
    contents = query(warehouse, "SELECT * EXCLUDE (_ingested_at) FROM alpha.items ORDER BY item_id")
    with warehouse.get_connection() as con:
        first = con.execute("SELECT min(snapshot_id) FROM ducklake_snapshots('warehouse')").fetchone()
        assert first is not None
        result = maintain(con, now=utcnow() + timedelta(seconds=1), keep=timedelta(0))
    assert result.after.files < result.before.files and result.after.snapshots < result.before.snapshots
    assert result.files_deleted > 0
    assert query(warehouse, "SELECT * EXCLUDE (_ingested_at) FROM alpha.items ORDER BY item_id") == contents
    with warehouse.get_connection() as con:
        assert lake_files(con).files == result.after.files
    with pytest.raises(SnapshotUnavailable, match="expired"), reading(warehouse, snapshot=int(first[0])):
        pass


def test_the_asset_reports_files_and_bytes_before_and_after(any_warehouse: WarehouseResource) -> None:
    for round_no in range(1, 4):
        writers.write_round(any_warehouse, "alpha", round_no, 100)
    result = materialize(
        [lake_maintenance],
        {"warehouse": any_warehouse},
        run_config=op_config([lake_maintenance], keep_days=0),
    )
    [materialization] = result.asset_materializations_for_node(lake_maintenance.op.name)
    meta = {k: v.value for k, v in materialization.metadata.items()}
    if not any_warehouse.backend.is_lake:
        assert meta["skipped"] is True
        return
    count = {
        k: int(str(meta[k]))
        for k in ("files_before", "files_after", "bytes_before", "snapshots_before", "snapshots_after")
    }
    assert str(meta["snapshots_expired_before"]).startswith("20")  # an ISO timestamp
    assert count["files_after"] < count["files_before"] and count["bytes_before"] > 0
    assert count["snapshots_after"] < count["snapshots_before"]
