"""EVRoam assets: sites, charging stations, connectors and availability in schema `evroam`.

The first run bootstraps with a full pull; every later run pulls what changed since the
watermark (minus a small overlap, harmless because the merge is idempotent). `mode: repair`
pulls everything and flags records that vanished (hard deletes). `mode: push` merges the files
the push sensor downloaded, as of their notification time.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from logging import Logger
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline.sources.evroam import normalize, schemas
from evpipeline.sources.evroam.client import EVRoamClient, EVRoamResource, Stream
from evpipeline.sources.evroam.tables import AVAILABILITY, CONNECTORS, KEYS, SITES, STATIONS, STATUS
from evpipeline.sources.kit import Run, SyncReport, Table, sync_asset
from evpipeline.sync import SyncOutcome, TableRows, write_sync
from evpipeline.warehouse import WarehouseResource, Writer
from evpipeline.watermarks import Clock, WatermarkRule

SOURCE = "evroam"
# `If-Modified-Since` follows the server's `Date` on the first page of the previous pull.
WATERMARK = WatermarkRule(Clock.SERVER, overlap=timedelta(seconds=120))
SITES_TABLE = Table(
    SITES,
    "EVRoam charging sites (NZ), merged incrementally into evroam.sites.",
    ["site_id", "name", "operator", "latitude", "longitude", "is_deleted"],
)
STATION_TABLES = [
    Table(
        STATIONS,
        "EVRoam charging stations (one row per station).",
        ["charging_station_id", "site_id", "operator", "current", "kw_rated", "is_deleted"],
    ),
    Table(
        CONNECTORS,
        "EVRoam connectors (one row per station x connector).",
        ["charging_station_id", "connector_id", "connector_type", "operation_status", "is_deleted"],
    ),
    Table(
        AVAILABILITY,
        "Latest EVRoam availability per station; changes in ops.status_history.",
        ["charging_station_id", "availability_status", "kw_available", "availability_time"],
    ),
]
SITES_KEY = SITES_TABLE.key
STATIONS_KEY, CONNECTORS_KEY, AVAILABILITY_KEY = (t.key for t in STATION_TABLES)
TABLE_ASSETS = {t.name: t.key for t in (SITES_TABLE, *STATION_TABLES)}


class EVRoamSyncConfig(dg.Config):
    """How a run syncs: `delta` (default; bootstraps when there is no watermark) or `repair` (full,
    finds hard deletes)."""

    mode: Literal["delta", "repair"] = "delta"
    overlap_seconds: int = Field(
        default=int(WATERMARK.overlap.total_seconds()),
        description="Re-read this much before the watermark (clock skew)",
    )


def record_tables(kind: str, records: list[dict[str, Any]], as_of: datetime) -> list[TableRows]:
    """Normalized rows of one EVRoam record set: `sites`, `chargingstations` or `availabilities`."""
    if kind == "sites":
        rows = normalize.sites(records, as_of)
        return [TableRows(SITES, rows.frame, schemas.SITES, KEYS[SITES], rows.raw)]
    if kind == "availabilities":
        avail = normalize.availabilities(records)
        return [
            TableRows(
                AVAILABILITY,
                avail.frame,
                schemas.AVAILABILITY,
                KEYS[AVAILABILITY],
                avail.raw,
                STATUS[AVAILABILITY],
            )
        ]
    stations = normalize.stations(records, as_of)
    return [
        TableRows(STATIONS, stations.stations.frame, schemas.STATIONS, KEYS[STATIONS], stations.stations.raw),
        TableRows(
            CONNECTORS,
            stations.connectors.frame,
            schemas.CONNECTORS,
            KEYS[CONNECTORS],
            stations.connectors.raw,
            STATUS[CONNECTORS],
        ),
        TableRows(
            AVAILABILITY,
            stations.availability.frame,
            schemas.AVAILABILITY,
            KEYS[AVAILABILITY],
            stations.availability.raw,
            STATUS[AVAILABILITY],
        ),
    ]


def merge_records(
    warehouse: WarehouseResource,
    kind: str,
    records: list[dict[str, Any]],
    as_of: datetime,
    *,
    run_id: str | None,
    stream: str,
    lineage: str,
    full: bool = False,
    watermark: datetime | None = None,
    requests: int | None = None,
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
                writer.flag_missing(
                    CONNECTORS,
                    KEYS[CONNECTORS],
                    valid[CONNECTORS],
                    as_of,
                    scope_keys=stations_seen[["charging_station_id"]],
                )
        if before_commit is not None:
            before_commit(writer)

    return write_sync(
        warehouse,
        source=SOURCE,
        stream=stream,
        run_id=run_id,
        tables=record_tables(kind, records, as_of),
        watermark=watermark,
        requests=requests,
        lineage=lineage,
        before_commit=sweep,
    )


def pull(
    warehouse: WarehouseResource,
    client: EVRoamClient,
    stream: Stream,
    config: EVRoamSyncConfig,
    *,
    run_id: str | None,
    log: Logger,
) -> SyncOutcome:
    """A delta (or, first and in repair mode, complete) pull of one EVRoam stream,
    merged in one transaction."""
    stored, _ = warehouse.sync_state(SOURCE, stream)
    since = WATERMARK.since(stored, full=config.mode == "repair", overlap_seconds=config.overlap_seconds)
    mark = WATERMARK.tracker(stored)
    result = client.fetch(stream, since)
    mark.page(result.server_time)
    log.info(
        "fetched %d %s record(s) in %d page(s) since %s", len(result.records), stream, result.pages, since
    )
    kind = "sites" if stream == "Site" else "chargingstations"
    return merge_records(
        warehouse,
        kind,
        result.records,
        result.server_time,
        run_id=run_id,
        stream=stream,
        lineage=f"pull:{stream} since={since.isoformat() if since else 'all'}",
        full=since is None,
        watermark=mark.value(),
        requests=client.api.stats.requests,
    )


def _report(stream: Stream) -> Callable[..., SyncReport]:
    def run(
        context: dg.AssetExecutionContext,
        evroam: EVRoamResource,
        warehouse: WarehouseResource,
        config: EVRoamSyncConfig,
    ) -> SyncReport:
        client = evroam.client()
        outcome = pull(warehouse, client, stream, config, run_id=context.run.run_id, log=context.log)
        return SyncReport(outcome, client.api.stats.requests, {"mode": config.mode})

    return run


RESOURCE = ("evroam", EVRoamResource)
evroam_sites = sync_asset(
    "evroam_sites",
    [SITES_TABLE],
    RESOURCE,
    _report("Site"),
    config=EVRoamSyncConfig,
    description="EVRoam charging sites, kept in sync by deltas, pushes and repair pulls.",
)
evroam_stations = sync_asset(
    "evroam_stations",
    STATION_TABLES,
    RESOURCE,
    _report("ChargingStation"),
    config=EVRoamSyncConfig,
    description="EVRoam charging stations with their connectors and availability, from one endpoint.",
)
ASSETS = [evroam_sites, evroam_stations]
RUNS = [
    Run(
        "evroam_sync",
        "evroam_delta",
        "EVROAM_DELTA_CRON",
        "Delta sync of every EVRoam table by If-Modified-Since (bootstraps on the first run).",
    ),
    Run(
        "evroam_repair",
        "evroam_daily_repair",
        "EVROAM_REPAIR_CRON",
        "Full pull of EVRoam that also finds hard deletes and anything a missed push left behind.",
        config={"mode": "repair"},
        full=True,
    ),
]
