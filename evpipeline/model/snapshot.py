"""The BI snapshot: a read-only copy of the warehouse, swapped in atomically after each run.

DuckDB lets one process write a database file and nobody else open it meanwhile, so BI tools (and
the OCPI pull server) read `snapshots/warehouse.duckdb` instead of the live file. The copy is
written next to it and renamed over it: a reader holding the old file keeps a consistent view
until it reopens. Parquet files of every mart table are published the same way.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

SNAPSHOT_NAME = "warehouse.duckdb"


@dataclass
class Snapshot:
    database: Path
    parquet: Path
    tables: int


def snapshot_dir(warehouse_path: str) -> Path:
    return Path(warehouse_path).resolve().parent / "snapshots"


def publish_snapshot(con: duckdb.DuckDBPyConnection, directory: Path, token: str) -> Snapshot:
    """Copy the whole warehouse (tables and views) plus Parquet of `mart` into `directory`, atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".{SNAPSHOT_NAME}.{token}"
    staging.unlink(missing_ok=True)
    source = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH '{staging}' AS evp_snapshot")
    try:
        con.execute(f'COPY FROM DATABASE "{source}" TO evp_snapshot')
    finally:
        con.execute("DETACH evp_snapshot")
    os.replace(staging, directory / SNAPSHOT_NAME)

    parquet_new = directory / f".parquet.{token}"
    shutil.rmtree(parquet_new, ignore_errors=True)
    (parquet_new / "mart").mkdir(parents=True)
    tables = [t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mart' ORDER BY 1"
    ).fetchall()]
    for table in tables:
        con.execute(f"COPY (SELECT * FROM mart.\"{table}\") TO '{parquet_new / 'mart' / (table + '.parquet')}' (FORMAT parquet)")
    parquet = directory / "parquet"
    retired = directory / f".parquet.old.{token}"
    if parquet.exists():
        parquet.rename(retired)
    parquet_new.rename(parquet)
    shutil.rmtree(retired, ignore_errors=True)
    return Snapshot(directory / SNAPSHOT_NAME, parquet, len(tables))
