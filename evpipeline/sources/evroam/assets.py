"""EVRoam assets: sites, charging stations, connectors and availability in schema `evroam`.

The first run bootstraps with a full pull; every later run pulls what changed since the
watermark (minus a small overlap, harmless because the merge is idempotent). `mode: repair`
pulls everything and flags records that vanished (hard deletes). `mode: push` merges the files
the push sensor downloaded, as of their notification time.
"""


from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from logging import Logger
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline import settings
from evpipeline.checks import quarantine_checks
from evpipeline.sources.evroam import normalize, schemas
from evpipeline.sources.evroam.client import EVRoamClient, EVRoamResource, Stream
from evpipeline.sources.evroam.tables import AVAILABILITY, CONNECTORS, KEYS, SITES, STATIONS, STATUS
from evpipeline.sync import SyncOutcome, TableRows, table_metadata, write_sync
from evpipeline.warehouse import WarehouseResource, Writer

SOURCE = "evroam"
POOL = "duckdb_writer"
SITES_KEY = dg.AssetKey(["evroam", "sites"])
STATIONS_KEY = dg.AssetKey(["evroam", "charging_stations"])
CONNECTORS_KEY = dg.AssetKey(["evroam", "connectors"])
AVAILABILITY_KEY = dg.AssetKey(["evroam", "availability"])
STATION_OUTPUTS = {STATIONS: STATIONS_KEY, CONNECTORS: CONNECTORS_KEY, AVAILABILITY: AVAILABILITY_KEY}
TABLE_ASSETS = {SITES: SITES_KEY, **STATION_OUTPUTS}


class EVRoamSyncConfig(dg.Config):
    """How a run syncs: `delta` (default; bootstraps when there is no watermark) or `repair` (full, finds hard deletes)."""

    mode: Literal["delta", "repair"] = "delta"
    overlap_seconds: int = Field(default=120, description="Re-read this much before the watermark (clock skew)")


def _since(warehouse: WarehouseResource, stream: str, config: EVRoamSyncConfig) -> datetime | None:
    if config.mode == "repair":
        return None
    watermark, _ = warehouse.sync_state(SOURCE, stream)
    return None if watermark is None else watermark - timedelta(seconds=config.overlap_seconds)


def record_tables(kind: str, records: list[dict[str, Any]], as_of: datetime) -> list[TableRows]:
    """Normalized rows of one EVRoam record set: `sites`, `chargingstations` or `availabilities`."""
    if kind == "sites":
        rows = normalize.sites(records, as_of)
        return [TableRows(SITES, rows.frame, schemas.SITES, KEYS[SITES], rows.raw)]
    if kind == "availabilities":
        avail = normalize.availabilities(records)
        return [TableRows(AVAILABILITY, avail.frame, schemas.AVAILABILITY, KEYS[AVAILABILITY], avail.raw, STATUS[AVAILABILITY])]
    stations = normalize.stations(records, as_of)
    return [
        TableRows(STATIONS, stations.stations.frame, schemas.STATIONS, KEYS[STATIONS], stations.stations.raw),
        TableRows(CONNECTORS, stations.connectors.frame, schemas.CONNECTORS, KEYS[CONNECTORS], stations.connectors.raw, STATUS[CONNECTORS]),
        TableRows(AVAILABILITY, stations.availability.frame, schemas.AVAILABILITY, KEYS[AVAILABILITY], stations.availability.raw,
                  STATUS[AVAILABILITY]),
    ]


def merge_records(
    warehouse: WarehouseResource, kind: str, records: list[dict[str, Any]], as_of: datetime, *, run_id: str | None,
    stream: str, lineage: str, full: bool = False, watermark: datetime | None = None, requests: int | None = None,
    before_commit: Callable[[Writer], None] | None = None,
) -> SyncOutcome:
    """Validate and merge one record set (a pull or a push file) as of `as_of`, in one transaction.

    A station record lists all its connectors, so one that left the list is gone; a complete
    snapshot (`full`: bootstrap or repair) also flags every site or station it no longer contains.
    `before_commit` joins the transaction (the lane advances its inbox cursor there).
    """

    def sweep(writer: Writer, valid: dict[str, pd.DataFrame]) -> None:
        if kind == "sites" and full:
            writer.flag_missing(SITES, KEYS[SITES], valid[SITES], as_of)
        elif kind == "chargingstations":
            stations_seen = valid[STATIONS]
            if full:
                writer.flag_missing(STATIONS, KEYS[STATIONS], stations_seen, as_of)
                writer.flag_missing(CONNECTORS, KEYS[CONNECTORS], valid[CONNECTORS], as_of)
            elif len(stations_seen):
                writer.flag_missing(CONNECTORS, KEYS[CONNECTORS], valid[CONNECTORS], as_of,
                                    scope_keys=stations_seen[["charging_station_id"]])
        if before_commit is not None:
            before_commit(writer)

    return write_sync(
        warehouse, source=SOURCE, stream=stream, run_id=run_id, tables=record_tables(kind, records, as_of),
        watermark=watermark, requests=requests, lineage=lineage, before_commit=sweep,
    )


def pull(warehouse: WarehouseResource, client: EVRoamClient, stream: Stream, config: EVRoamSyncConfig, *,
         run_id: str | None, log: Logger) -> SyncOutcome:
    """A delta (or, first and in repair mode, complete) pull of one EVRoam stream, merged in one transaction."""
    since = _since(warehouse, stream, config)
    result = client.fetch(stream, since)
    log.info("fetched %d %s record(s) in %d page(s) since %s", len(result.records), stream, result.pages, since)
    kind = "sites" if stream == "Site" else "chargingstations"
    return merge_records(
        warehouse, kind, result.records, result.server_time, run_id=run_id, stream=stream,
        lineage=f"pull:{stream} since={since.isoformat() if since else 'all'}", full=since is None,
        watermark=result.server_time, requests=client.api.stats.requests,
    )


@dg.asset(
    key=SITES_KEY,
    group_name="evroam",
    pool=POOL,
    kinds={"duckdb", "python"},
    description="EVRoam charging sites (NZ), merged incrementally into evroam.sites.",
)
def evroam_sites(
    context: dg.AssetExecutionContext, config: EVRoamSyncConfig, evroam: EVRoamResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """EVRoam charging sites, kept in sync by deltas, pushes and repair pulls."""
    client = evroam.client()
    outcome = pull(warehouse, client, "Site", config, run_id=context.run.run_id, log=context.log)
    return dg.MaterializeResult(
        metadata=table_metadata(
            outcome[SITES], requests=client.api.stats.requests, watermark=outcome.watermark,
            preview_columns=PREVIEWS[SITES], extra={"mode": config.mode},
        )
    )


PREVIEWS = {
    SITES: ["site_id", "name", "operator", "latitude", "longitude", "is_deleted"],
    STATIONS: ["charging_station_id", "site_id", "operator", "current", "kw_rated", "is_deleted"],
    CONNECTORS: ["charging_station_id", "connector_id", "connector_type", "operation_status", "is_deleted"],
    AVAILABILITY: ["charging_station_id", "availability_status", "kw_available", "availability_time"],
}


@dg.multi_asset(
    name="evroam_stations",
    group_name="evroam",
    pool=POOL,
    can_subset=True,
    specs=[
        dg.AssetSpec(STATIONS_KEY, description="EVRoam charging stations (one row per station).", kinds={"duckdb"}, skippable=True),
        dg.AssetSpec(CONNECTORS_KEY, description="EVRoam connectors (one row per station x connector).", kinds={"duckdb"}, skippable=True),
        dg.AssetSpec(AVAILABILITY_KEY, description="Latest EVRoam availability per station; changes in ops.status_history.", kinds={"duckdb"}, skippable=True),
    ],
)
def evroam_stations(
    context: dg.AssetExecutionContext, config: EVRoamSyncConfig, evroam: EVRoamResource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """EVRoam charging stations with their connectors and availability, from one endpoint."""
    client = evroam.client()
    selected = {table for table, key in STATION_OUTPUTS.items() if key in context.selected_asset_keys}
    if selected != set(STATION_OUTPUTS):
        # One endpoint feeds all three tables and shares one watermark: write them all.
        context.log.warning("pull runs write all EVRoam station tables; reporting only %s", sorted(selected))
    outcome = pull(warehouse, client, "ChargingStation", config, run_id=context.run.run_id, log=context.log)
    for table in sorted(selected):
        metadata = table_metadata(outcome[table], requests=client.api.stats.requests, watermark=outcome.watermark,
                                  preview_columns=PREVIEWS[table], extra={"mode": config.mode})
        yield dg.MaterializeResult(asset_key=STATION_OUTPUTS[table], metadata=metadata)


EVROAM_ASSETS = [SITES_KEY, STATIONS_KEY, CONNECTORS_KEY, AVAILABILITY_KEY]
evroam_checks = quarantine_checks(
    [(SITES_KEY, SITES), (STATIONS_KEY, STATIONS), (CONNECTORS_KEY, CONNECTORS), (AVAILABILITY_KEY, AVAILABILITY)]
)
evroam_sync_job = dg.define_asset_job(
    "evroam_sync",
    selection=dg.AssetSelection.assets(*EVROAM_ASSETS),
    description="Delta sync of every EVRoam table (bootstraps on the first run).",
)
evroam_repair_job = dg.define_asset_job(
    "evroam_repair",
    selection=dg.AssetSelection.assets(*EVROAM_ASSETS),
    config={"ops": {op: {"config": {"mode": "repair"}} for op in ("evroam__sites", "evroam_stations")}},
    description="Full pull of EVRoam that also detects hard deletes (run on demand or daily).",
)
evroam_delta_schedule = dg.ScheduleDefinition(
    name="evroam_delta",
    job=evroam_sync_job,
    cron_schedule=settings.get("EVROAM_DELTA_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="EVRoam delta sync (If-Modified-Since) every 5 minutes by default (EVROAM_DELTA_CRON).",
)
evroam_repair_schedule = dg.ScheduleDefinition(
    name="evroam_daily_repair",
    job=evroam_repair_job,
    cron_schedule=settings.get("EVROAM_REPAIR_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily full EVRoam pull: catches missed pushes and hard deletes.",
)
