"""The BI snapshot is readable while the pipeline holds the live warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb

from evpipeline.model.assets import bi_snapshot
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize
from evpipeline_tests.mart_fixture import standard_mart


def test_snapshot_published_and_readable_while_writer_holds_live_file(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    materialize([bi_snapshot], {"warehouse": warehouse})
    snapshot = Path(warehouse.database).parent / "snapshots" / "warehouse.duckdb"
    with warehouse.get_connection() as live:  # the pipeline is writing: the live file is locked
        live.execute("UPDATE mart.evses SET status = 'CHARGING'")
        with duckdb.connect(str(snapshot), read_only=True) as bi:
            assert bi.execute("SELECT count(*) FROM mart.locations").fetchone()[0] == len(standard_mart().locations)
            assert bi.execute("SELECT count(*) FROM mart.evse_status_history").fetchone()[0] > 0  # views come along
    parquet = Path(warehouse.database).parent / "snapshots" / "parquet" / "mart" / "evses.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM '{parquet}'").fetchall()[0][0] == len(standard_mart().evses)
    # A second publication replaces the first atomically (no leftovers).
    materialize([bi_snapshot], {"warehouse": warehouse})
    assert sorted(p.name for p in snapshot.parent.iterdir()) == ["parquet", "warehouse.duckdb"]
