"""Warehouse upkeep: old days of the history tables move to the Parquet archive, and a DuckLake's
small files are merged and its old snapshots expired, daily."""

# No `from __future__ import annotations`: Dagster reads the `config:` annotation at decoration time.
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from evpipeline import settings
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WRITER_POOL, WarehouseResource
from evpipeline.warehouse.lake_maintenance import LakeFiles, maintain
from evpipeline.warehouse.retention import RETAINED, TrimResult, archive_root, retention_cron, trim_all

RETENTION_KEY = dg.AssetKey(["ops", "history_retention"])
LAKE_MAINTENANCE_KEY = dg.AssetKey(["ops", "lake_maintenance"])


def _days(table: str) -> str:
    return f"Whole UTC days of {table} kept in DuckDB (unset: ${RETAINED[table].keep_days_setting})"


class HistoryRetentionConfig(dg.Config):
    """Per-run overrides of the retention windows and the archive location."""

    status_history_keep_days: int | None = Field(default=None, description=_days("ops.status_history"))
    availability_snapshots_keep_days: int | None = Field(
        default=None, description=_days("tomtom.availability_snapshots")
    )
    ndw_pushes_keep_days: int | None = Field(default=None, description=_days("ops.ndw_pushes"))
    runs_keep_days: int | None = Field(default=None, description=_days("ops.runs"))
    archive_dir: str = Field(
        default="",
        description="Archive root (default: $EVPIPELINE_ARCHIVE_DIR, or $EVPIPELINE_DATA_DIR/archive)",
    )

    def keep_days(self) -> dict[str, int]:
        """The overrides that are set, by table."""
        overrides = {
            "ops.status_history": self.status_history_keep_days,
            "tomtom.availability_snapshots": self.availability_snapshots_keep_days,
            "ops.ndw_pushes": self.ndw_pushes_keep_days,
            "ops.runs": self.runs_keep_days,
        }
        return {table: days for table, days in overrides.items() if days is not None}


@dg.asset(
    key=RETENTION_KEY,
    group_name="ops",
    pool=WRITER_POOL,
    kinds={"duckdb", "parquet"},
    automation_condition=dg.AutomationCondition.on_cron(retention_cron(), "UTC"),
)
def history_retention(
    context: dg.AssetExecutionContext, config: HistoryRetentionConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Move whole UTC days older than each table's window from the history tables to a Parquet archive."""
    root = Path(config.archive_dir) if config.archive_dir else archive_root()
    root.mkdir(parents=True, exist_ok=True)
    with warehouse.get_connection() as con:
        results = trim_all(con, root, utcnow(), keep_days=config.keep_days(), run_id=context.run.run_id)
        try:
            # Frees the deleted rows' blocks for reuse now rather than at the next automatic checkpoint.
            con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            context.log.warning(f"checkpoint after retention skipped: {exc}")
    return dg.MaterializeResult(metadata=retention_metadata(results, root))


def retention_metadata(results: list[TrimResult], root: Path) -> dict[str, Any]:
    """Totals, per-table counts (plottable over runs) and a summary table."""
    metadata: dict[str, Any] = {
        "rows_archived": sum(r.rows_archived for r in results),
        "rows_deleted": sum(r.rows_deleted for r in results),
        "archive_bytes": sum(r.archive_bytes for r in results),
        "archive_dir": dg.MetadataValue.path(str(root)),
        "dagster/uri": root.resolve().as_uri(),
    }
    lines = [
        "| table | keep days | cutoff | days | rows archived | rows deleted | bytes | oldest remaining |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.table} | {r.keep_days} | {r.cutoff:%Y-%m-%d} | _no such table_ | | | | |")
            continue
        metadata[f"{r.table}.rows_archived"] = r.rows_archived
        metadata[f"{r.table}.rows_deleted"] = r.rows_deleted
        metadata[f"{r.table}.archive_bytes"] = r.archive_bytes
        oldest = f"{r.oldest_remaining:%Y-%m-%d %H:%M:%S}" if r.oldest_remaining else ""
        lines.append(
            f"| {r.table} | {r.keep_days} | {r.cutoff:%Y-%m-%d} | {r.days_archived} "
            f"| {r.rows_archived} | {r.rows_deleted} | {r.archive_bytes} | {oldest} |"
        )
    recovered = sum(r.parts_recovered for r in results)
    if recovered:
        metadata["parts_recovered"] = recovered
    metadata["tables"] = dg.MetadataValue.md("\n".join(lines))
    return metadata


class LakeMaintenanceConfig(dg.Config):
    """Per-run override of the snapshot retention window."""

    keep_days: int | None = Field(
        default=None, description="Days of snapshots kept (unset: $EVPIPELINE_LAKE_KEEP_DAYS)"
    )


@dg.asset(
    key=LAKE_MAINTENANCE_KEY,
    group_name="ops",
    kinds={"ducklake", "parquet"},
    automation_condition=dg.AutomationCondition.on_cron(
        settings.get("EVPIPELINE_LAKE_MAINTENANCE_CRON"), "UTC"
    ),
)
def lake_maintenance(
    context: dg.AssetExecutionContext, config: LakeMaintenanceConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Merge a DuckLake's small Parquet files, expire snapshots past the retention window, delete
    unreferenced files (files/bytes before and after). Nothing to do on a DuckDB file."""
    if not warehouse.backend.is_lake:
        context.log.info("the warehouse is a DuckDB file: no files to merge, no snapshots to expire")
        return dg.MaterializeResult(metadata={"backend": "duckdb file", "skipped": True})
    keep = timedelta(
        days=config.keep_days
        if config.keep_days is not None
        else int(settings.get("EVPIPELINE_LAKE_KEEP_DAYS"))
    )
    with warehouse.get_connection() as con:
        result = maintain(con, now=utcnow(), keep=keep)
    return dg.MaterializeResult(
        metadata={
            "backend": "ducklake",
            **_files("before", result.before),
            **_files("after", result.after),
            "files_deleted_from_storage": result.files_deleted,
            "snapshots_expired_before": result.expired_before.isoformat(),
        }
    )


def _files(when: str, files: LakeFiles) -> dict[str, Any]:
    return {
        f"files_{when}": files.files,
        f"bytes_{when}": files.bytes,
        f"data_files_{when}": files.data_files,
        f"delete_files_{when}": files.delete_files,
        f"snapshots_{when}": files.snapshots,
    }
