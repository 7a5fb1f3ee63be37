"""The one DuckDB layer: connection resource, migrations, merge, quarantine, sync state, history."""

from evpipeline import settings
from evpipeline.warehouse import columns  # noqa: F401  (registers the descriptions of the warehouse's own tables)
from evpipeline.warehouse.backend import Backend
from evpipeline.warehouse.merge import MergeCounts, entity_key_sql, flag_missing, merge, table_columns
from evpipeline.warehouse.migrations import Migration, describe_columns, register, source_table
from evpipeline.warehouse.resource import WarehouseResource, connect, warehouse_from_env
from evpipeline.warehouse.writer import QuarantineRecord, Writer, read_sync_state, transaction

# DuckDB has one writer per file: every asset that writes the warehouse runs in this Dagster pool
# (limit 1 in dagster.yaml), so two runs never write at once.
WRITER_POOL = "duckdb_writer"


def sync_pool() -> str | None:
    """The pool source syncs run in: the single writer's on a DuckDB file; none on a DuckLake, where
    writers commit side by side and a sync whose commit lost a race is redone (`WarehouseResource.write`).
    The model, exports and maintenance stay in `WRITER_POOL` on both: one of each at a time."""
    return None if Backend(settings.warehouse_path()).is_lake else WRITER_POOL


__all__ = [
    "MergeCounts",
    "Migration",
    "QuarantineRecord",
    "WarehouseResource",
    "WRITER_POOL",
    "Writer",
    "connect",
    "describe_columns",
    "entity_key_sql",
    "flag_missing",
    "merge",
    "read_sync_state",
    "sync_pool",
    "register",
    "source_table",
    "table_columns",
    "transaction",
    "warehouse_from_env",
]
