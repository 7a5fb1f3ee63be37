"""The daily NDW OCPI 2.2.1 export: one partition per day under `exports/ndw/YYYY-MM-DD/`."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from evpipeline import settings
from evpipeline.model.keys import MART_KEYS
from evpipeline.ndw.export import build_export, write_export
from evpipeline.sync import markdown_preview
from evpipeline.warehouse import WRITER_POOL, WarehouseResource

EXPORT_KEY = dg.AssetKey(["ndw", "ocpi_export"])
daily = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC", end_offset=1)


class NdwExportConfig(dg.Config):
    """Where the export goes and how many rejected locations fail the check."""

    max_rejected_ratio: float = Field(default=0.10, description="Fail the check above this share of rejected locations")
    directory: str = Field(default="", description="Export root (default $EVPIPELINE_DATA_DIR/exports/ndw)")


def export_root(config: NdwExportConfig) -> Path:
    return Path(config.directory) if config.directory else settings.data_dir() / "exports" / "ndw"


@dg.asset(
    key=EXPORT_KEY,
    group_name="ndw",
    partitions_def=daily,
    deps=list(MART_KEYS.values()),
    pool=WRITER_POOL,
    kinds={"json"},
    check_specs=[dg.AssetCheckSpec("rejections", asset=EXPORT_KEY, description="Objects left out for lacking NDW/AFIR fields")],
)
def ndw_ocpi_export(
    context: dg.AssetExecutionContext, config: NdwExportConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Daily OCPI 2.2.1 export for NDW: public Dutch locations and their tariffs, AFIR-complete."""
    partition = context.partition_key
    with warehouse.get_connection() as con:
        export = build_export(con)
    manifest = write_export(export, export_root(config) / partition, partition)
    counts = manifest.body["counts"]
    rejected_locations = sum(1 for r in export.rejections if r["object"] == "Location")
    ratio = rejected_locations / export.candidates if export.candidates else 0.0
    rejections = [{**r, "reasons": "; ".join(r["reasons"])} for r in export.rejections]
    import pandas as pd

    preview = markdown_preview(pd.DataFrame(rejections), ["object", "party_id", "location_id", "evse_uid", "connector_id", "tariff_id", "reasons"], rows=15)
    check = dg.AssetCheckResult(
        check_name="rejections",
        passed=not export.rejections,
        severity=dg.AssetCheckSeverity.ERROR if ratio > config.max_rejected_ratio else dg.AssetCheckSeverity.WARN,
        metadata={"rejected_objects": len(export.rejections), "rejected_locations": rejected_locations,
                  "rejected_location_ratio": round(ratio, 4), "threshold": config.max_rejected_ratio},
    )
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in counts.items()},
            "directory": dg.MetadataValue.path(str(manifest.directory)),
            "generated_at": manifest.body["generated_at"] or "",
            "rejections": dg.MetadataValue.md(preview),
        },
        check_results=[check],
    )


ndw_export_job = dg.define_asset_job("ndw_daily_export", selection=[EXPORT_KEY], partitions_def=daily)
ndw_export_schedule = dg.build_schedule_from_partitioned_job(
    ndw_export_job, hour_of_day=2, minute_of_hour=0, name="ndw_daily_export_0200", default_status=dg.DefaultScheduleStatus.RUNNING,
)
