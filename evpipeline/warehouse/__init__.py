"""The one DuckDB layer: connection resource, migrations, merge, quarantine, sync state, history."""

from evpipeline.warehouse.merge import MergeCounts, entity_key_sql, flag_missing, merge, table_columns
from evpipeline.warehouse.migrations import Migration, register, source_table
from evpipeline.warehouse.resource import WarehouseResource, connect, warehouse_from_env
from evpipeline.warehouse.writer import QuarantineRecord, Writer, read_sync_state, transaction

# DuckDB has one writer per file: every asset that writes the warehouse runs in this Dagster pool
# (limit 1 in dagster.yaml), so two runs never write at once.
WRITER_POOL = "duckdb_writer"

__all__ = [
    "MergeCounts",
    "Migration",
    "QuarantineRecord",
    "WarehouseResource",
    "WRITER_POOL",
    "Writer",
    "connect",
    "entity_key_sql",
    "flag_missing",
    "merge",
    "read_sync_state",
    "register",
    "source_table",
    "table_columns",
    "transaction",
    "warehouse_from_env",
]
