"""The daily NDW exports, one partition per day: OCPI 2.2.1 under `exports/ndw/YYYY-MM-DD/` and the
same objects as DATEX II 3.7 publications under `exports/datex2/YYYY-MM-DD/` (one job runs both)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from evpipeline import settings
from evpipeline.datex2 import versions
from evpipeline.datex2.client import Datex2PushResource
from evpipeline.model.checks import mart_integrity_check
from evpipeline.model.keys import MART_KEYS
from evpipeline.ndw.datex2_export import write_publications
from evpipeline.ndw.export import OcpiExport, build_export, nap_countries, write_export
from evpipeline.ocpi.definition import validate_location, validate_tariff
from evpipeline.sync import markdown_preview
from evpipeline.warehouse import WRITER_POOL, WarehouseResource
from evpipeline.warehouse.timetravel import reading

EXPORT_KEY = dg.AssetKey(["ndw", "ocpi_export"])
DATEX2_KEY = dg.AssetKey(["ndw", "datex2_export"])
daily = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC", end_offset=1)


class NdwExportConfig(dg.Config):
    """Where the export goes and how many rejected locations fail the check."""

    max_rejected_ratio: float = Field(
        default=0.10, description="Fail the check above this share of rejected locations"
    )
    directory: str = Field(default="", description="Export root (default $EVPIPELINE_DATA_DIR/exports/ndw)")


def cutoff(partition: str) -> datetime:
    """The end of a day's partition (or now, for today's): a DuckLake is read as it was then."""
    start = datetime.fromisoformat(partition).replace(tzinfo=UTC)
    return min(start + timedelta(days=1), datetime.now(UTC))


def export_root(config: NdwExportConfig) -> Path:
    return Path(config.directory) if config.directory else settings.data_dir() / "exports" / "ndw"


@dg.asset(
    key=EXPORT_KEY,
    group_name="ndw",
    partitions_def=daily,
    deps=list(MART_KEYS.values()),
    pool=WRITER_POOL,
    kinds={"json", "ocpi"},
    check_specs=[
        dg.AssetCheckSpec(
            "rejections", asset=EXPORT_KEY, description="Objects left out for lacking NDW/AFIR fields"
        )
    ],
)
def ndw_ocpi_export(
    context: dg.AssetExecutionContext, config: NdwExportConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Daily OCPI 2.2.1 export for NDW: public Dutch locations and their tariffs, AFIR-complete.
    On a DuckLake it reads the snapshot current at the day's cut-off (recorded; rebuildable)."""
    partition = context.partition_key
    with reading(warehouse, cutoff=cutoff(partition)) as read:
        export = build_export(read.con)
    failing = invalid_objects(export)
    if failing:  # blocking: nothing is written that NDW would get and our definition refuses
        raise dg.Failure(
            description=f"{len(failing)} selected object(s) fail our OCPI/AFIR definition; nothing exported",
            metadata={"failing": dg.MetadataValue.json(failing[:20])},
        )
    manifest = write_export(
        export, export_root(config) / partition, partition, warehouse_snapshot=read.snapshot
    )
    rejections = [{**r, "reasons": "; ".join(r["reasons"])} for r in export.rejections]
    return _delivered(
        manifest.directory, manifest.body, rejections, export.candidates, config.max_rejected_ratio
    )


def _delivered(
    directory: Path,
    manifest: dict[str, Any],
    rejections: list[dict[str, Any]],
    candidates: int,
    max_rejected_ratio: float,
) -> dg.MaterializeResult:
    """A daily delivery's materialization: its counts and files, and the rejection check (both formats)."""
    import pandas as pd

    rejected_locations = sum(1 for r in rejections if r["object"] == "Location")
    ratio = rejected_locations / candidates if candidates else 0.0
    frame = pd.DataFrame(rejections)
    check = dg.AssetCheckResult(
        check_name="rejections",
        passed=not rejections,
        severity=dg.AssetCheckSeverity.ERROR if ratio > max_rejected_ratio else dg.AssetCheckSeverity.WARN,
        metadata={
            "rejected_objects": len(rejections),
            "rejected_locations": rejected_locations,
            "rejected_location_ratio": round(ratio, 4),
            "threshold": max_rejected_ratio,
        },
    )
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in manifest["counts"].items() if isinstance(v, int | float | str)},
            "directory": dg.MetadataValue.path(str(directory)),
            "dagster/uri": directory.resolve().as_uri(),
            "generated_at": manifest["generated_at"] or "",
            "rejections": dg.MetadataValue.md(markdown_preview(frame, list(frame.columns), rows=15)),
        },
        check_results=[check],
    )


def invalid_objects(export: OcpiExport) -> list[dict[str, str]]:
    """Selected objects that fail `evpipeline.ocpi.definition` (the SQL selection and the definition
    disagree)."""
    failing = []
    for kind, bodies, keys, validate in (
        ("Location", export.locations, export.location_keys, validate_location),
        ("Tariff", export.tariffs, export.tariff_keys, validate_tariff),
    ):
        for body, key in zip(bodies, keys, strict=True):
            if errors := validate(json.loads(body)):
                failing.append({"object": kind, "key": "/".join(key), "errors": "; ".join(errors[:5])})
    return failing


class Datex2ExportConfig(dg.Config):
    """Where the DATEX II publications go and how many rejected locations fail the check."""

    max_rejected_ratio: float = Field(
        default=0.10, description="Fail the check above this share of rejected locations"
    )
    directory: str = Field(
        default="", description="Export root (default $EVPIPELINE_DATA_DIR/exports/datex2)"
    )


def datex2_root(config: Datex2ExportConfig) -> Path:
    return Path(config.directory) if config.directory else settings.data_dir() / "exports" / "datex2"


@dg.asset(
    key=DATEX2_KEY,
    group_name="ndw",
    partitions_def=daily,
    deps=list(MART_KEYS.values()),
    pool=WRITER_POOL,
    kinds={"xml", "json"},
    check_specs=[
        dg.AssetCheckSpec(
            "rejections", asset=DATEX2_KEY, description="Objects left out of the DATEX II publications"
        )
    ],
)
def ndw_datex2_export(
    context: dg.AssetExecutionContext,
    config: Datex2ExportConfig,
    warehouse: WarehouseResource,
    datex2: Datex2PushResource,
) -> dg.MaterializeResult:
    """Daily AFIR DATEX II static and status publications (profile JSON, DATEX II 3.7 XML) of the objects
    sent to NDW as OCPI."""
    partition = context.partition_key
    with reading(warehouse, cutoff=cutoff(partition)) as read:
        published = write_publications(
            read.con,
            datex2_root(config) / partition,
            countries=nap_countries(),
            creator=datex2.creator(),
            partition=partition,
            warehouse_snapshot=read.snapshot,
        )
    with warehouse.writer("datex2", context.run.run_id) as writer:  # the versions this publication gave
        versions.record(writer, published.version_changes)
    rows = [
        {k: ("; ".join(v) if isinstance(v, list) else v) for k, v in r.items()} for r in published.rejections
    ]
    return _delivered(
        published.directory, published.body, rows, published.candidates, config.max_rejected_ratio
    )


# One job, both formats: NDW's OCPI files and the DATEX II publications of the same day.
ndw_export_job = dg.define_asset_job(
    "ndw_daily_export", selection=[EXPORT_KEY, DATEX2_KEY], partitions_def=daily
)
ndw_export_schedule = dg.build_schedule_from_partitioned_job(
    ndw_export_job,
    hour_of_day=2,
    minute_of_hour=0,
    name="ndw_daily_export_0200",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def invalid_exported(con: duckdb.DuckDBPyConnection) -> tuple[int, list[dict[str, Any]]]:
    """How many objects the NDW selection would send, and those that fail the definition."""
    export = build_export(con)
    return len(export.locations) + len(export.tariffs), list(invalid_objects(export))


# The model's blocking integrity check, asking this delivery's question of the exported objects.
mart_integrity = mart_integrity_check(invalid_exported)
