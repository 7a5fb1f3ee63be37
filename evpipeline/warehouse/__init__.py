"""The one DuckDB layer: connection resource, migrations, merge, quarantine, sync state, history."""

from evpipeline.warehouse.merge import MergeCounts, entity_key_sql, flag_missing, merge, table_columns
from evpipeline.warehouse.migrations import Migration, register, source_table
from evpipeline.warehouse.resource import WarehouseResource, connect, warehouse_from_env
from evpipeline.warehouse.writer import QuarantineRecord, Writer, read_sync_state, transaction

__all__ = [
    "MergeCounts",
    "Migration",
    "QuarantineRecord",
    "WarehouseResource",
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
