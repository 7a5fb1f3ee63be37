"""EVRoam assets: sites, charging stations, connectors and availability in schema `evroam`.

The first run bootstraps with a full pull; every later run pulls what changed since the
watermark (minus a small overlap, harmless because the merge is idempotent). `mode: repair`
pulls everything and flags records that vanished (hard deletes). `mode: push` merges the files
the push sensor downloaded, as of their notification time.
"""


import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline import settings
from evpipeline.checks import quarantine_checks
from evpipeline.model.keys import MODEL
from evpipeline.sources.evroam import normalize, schemas
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.tables import AVAILABILITY, CONNECTORS, KEYS, SITES, STATIONS, STATUS
from evpipeline.sync import TableRows, table_metadata, write_sync
from evpipeline.warehouse import WarehouseResource, Writer

SOURCE = "evroam"
POOL = "duckdb_writer"
SITES_KEY = dg.AssetKey(["evroam", "sites"])
STATIONS_KEY = dg.AssetKey(["evroam", "charging_stations"])
CONNECTORS_KEY = dg.AssetKey(["evroam", "connectors"])
AVAILABILITY_KEY = dg.AssetKey(["evroam", "availability"])
STATION_OUTPUTS = {"charging_stations": STATIONS_KEY, "connectors": CONNECTORS_KEY, "availability": AVAILABILITY_KEY}


class EVRoamSyncConfig(dg.Config):
    """How a run syncs: `delta` (default; bootstraps when there is no watermark), `repair` or `push`."""

    mode: Literal["delta", "repair", "push"] = "delta"
    overlap_seconds: int = Field(default=120, description="Re-read this much before the watermark (clock skew)")
    push_files: list[str] = Field(default_factory=list, description="Local push files to merge (set by the sensor)")
    push_event_times: list[str] = Field(default_factory=list, description="Notification time of each push file")


def _since(warehouse: WarehouseResource, stream: str, config: EVRoamSyncConfig) -> datetime | None:
    if config.mode == "repair":
        return None
    watermark, _ = warehouse.sync_state(SOURCE, stream)
    return None if watermark is None else watermark - timedelta(seconds=config.overlap_seconds)


def _push_batches(config: EVRoamSyncConfig) -> Iterator[tuple[list[dict[str, Any]], datetime, str]]:
    """(records, as-of, lineage) of each downloaded push file, oldest first."""
    pairs = sorted(zip(config.push_files, config.push_event_times, strict=True), key=lambda p: p[1])
    for path, event_time in pairs:
        yield json.loads(Path(path).read_text()), pd.Timestamp(event_time).to_pydatetime(), f"push:{Path(path).name}"


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
    batches: list[tuple[list[dict[str, Any]], datetime, str]]
    full = False
    if config.mode == "push":
        batches = list(_push_batches(config))
        watermark = None
    else:
        since = _since(warehouse, "Site", config)
        full = since is None  # bootstrap or repair: a complete snapshot
        pull = client.fetch("Site", since)
        batches = [(pull.records, pull.server_time, f"pull:Site since={since.isoformat() if since else 'all'}")]
        watermark = pull.server_time
        context.log.info("fetched %d sites in %d page(s) since %s", len(pull.records), pull.pages, since)

    outcome = None
    for records, as_of, lineage in batches:
        rows = normalize.sites(records, as_of)

        def sweep(writer: Writer, valid: dict[str, pd.DataFrame], as_of: datetime = as_of, full: bool = full) -> None:
            if full:  # a complete snapshot: whatever is missing was hard-deleted upstream
                writer.flag_missing(SITES, KEYS[SITES], valid[SITES], as_of)

        outcome = write_sync(
            warehouse, source=SOURCE, stream="Site" if watermark else "push:Site", run_id=context.run.run_id,
            tables=[TableRows(SITES, rows.frame, schemas.SITES, KEYS[SITES], rows.raw)],
            watermark=watermark, requests=client.api.stats.requests, lineage=lineage,
            before_commit=sweep if config.mode != "push" else None,
        )
    assert outcome is not None or not batches
    if outcome is None:
        return dg.MaterializeResult(metadata={"fetched": 0, "requests": client.api.stats.requests})
    return dg.MaterializeResult(
        metadata=table_metadata(
            outcome[SITES], requests=client.api.stats.requests, watermark=watermark,
            preview_columns=["site_id", "name", "operator", "latitude", "longitude", "is_deleted"],
            extra={"mode": config.mode},
        )
    )


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
    selected = {name for name, key in STATION_OUTPUTS.items() if key in context.selected_asset_keys}
    watermark: datetime | None = None
    full = False
    batches: list[tuple[str, list[dict[str, Any]], datetime, str]]
    if config.mode == "push":
        batches = []
        for records, as_of, lineage in _push_batches(config):
            kind = "availabilities" if "availabilities" in lineage else "chargingstations"
            batches.append((kind, records, as_of, lineage))
    else:
        since = _since(warehouse, "ChargingStation", config)
        full = since is None  # bootstrap or repair: a complete snapshot
        pull = client.fetch("ChargingStation", since)
        watermark = pull.server_time
        batches = [("chargingstations", pull.records, pull.server_time, f"pull:ChargingStation since={since.isoformat() if since else 'all'}")]
        context.log.info("fetched %d stations in %d page(s) since %s", len(pull.records), pull.pages, since)
        if selected != set(STATION_OUTPUTS):
            # One endpoint feeds all three tables and shares one watermark: write them all.
            context.log.warning("pull runs write all EVRoam station tables; reporting only %s", sorted(selected))

    totals: dict[str, Any] = {}
    for kind, records, as_of, lineage in batches:
        if kind == "availabilities":
            avail = normalize.availabilities(records)
            tables = [TableRows(AVAILABILITY, avail.frame, schemas.AVAILABILITY, KEYS[AVAILABILITY], avail.raw, STATUS[AVAILABILITY])]
        else:
            rows = normalize.stations(records, as_of)
            tables = [
                TableRows(STATIONS, rows.stations.frame, schemas.STATIONS, KEYS[STATIONS], rows.stations.raw),
                TableRows(CONNECTORS, rows.connectors.frame, schemas.CONNECTORS, KEYS[CONNECTORS], rows.connectors.raw, STATUS[CONNECTORS]),
                TableRows(AVAILABILITY, rows.availability.frame, schemas.AVAILABILITY, KEYS[AVAILABILITY], rows.availability.raw, STATUS[AVAILABILITY]),
            ]

        def sweep(writer: Writer, valid: dict[str, pd.DataFrame], as_of: datetime = as_of, full: bool = full, kind: str = kind) -> None:
            if kind != "chargingstations":
                return
            stations_seen = valid[STATIONS]
            if full:  # complete snapshot: stations (and their connectors) missing were hard-deleted
                writer.flag_missing(STATIONS, KEYS[STATIONS], stations_seen, as_of)
                writer.flag_missing(CONNECTORS, KEYS[CONNECTORS], valid[CONNECTORS], as_of)
            elif len(stations_seen):
                # A station record lists all its connectors: one that disappeared from the list is gone.
                writer.flag_missing(
                    CONNECTORS, KEYS[CONNECTORS], valid[CONNECTORS], as_of,
                    scope_keys=stations_seen[["charging_station_id"]],
                )

        outcome = write_sync(
            warehouse, source=SOURCE, stream="ChargingStation" if watermark else "push:ChargingStation",
            run_id=context.run.run_id, tables=tables, watermark=watermark, requests=client.api.stats.requests,
            lineage=lineage, before_commit=sweep,
        )
        for table, result in outcome.tables.items():
            if table in totals:
                totals[table].counts += result.counts
                totals[table].quarantined += result.quarantined
                totals[table].valid = pd.concat([totals[table].valid, result.valid], ignore_index=True)
            else:
                totals[table] = result

    previews = {
        STATIONS: ["charging_station_id", "site_id", "operator", "current", "kw_rated", "is_deleted"],
        CONNECTORS: ["charging_station_id", "connector_id", "connector_type", "operation_status", "is_deleted"],
        AVAILABILITY: ["charging_station_id", "availability_status", "kw_available", "availability_time"],
    }
    for name, table in (("charging_stations", STATIONS), ("connectors", CONNECTORS), ("availability", AVAILABILITY)):
        if name not in selected:
            continue
        if table in totals:
            metadata = table_metadata(totals[table], requests=client.api.stats.requests, watermark=watermark,
                                      preview_columns=previews[table], extra={"mode": config.mode})
        else:
            metadata = {"fetched": 0, "requests": client.api.stats.requests, "mode": config.mode}
        yield dg.MaterializeResult(asset_key=STATION_OUTPUTS[name], metadata=metadata)


EVROAM_ASSETS = [SITES_KEY, STATIONS_KEY, CONNECTORS_KEY, AVAILABILITY_KEY]
evroam_checks = quarantine_checks(
    [(SITES_KEY, SITES), (STATIONS_KEY, STATIONS), (CONNECTORS_KEY, CONNECTORS), (AVAILABILITY_KEY, AVAILABILITY)]
)
evroam_sync_job = dg.define_asset_job(
    "evroam_sync",
    selection=dg.AssetSelection.assets(*EVROAM_ASSETS) | MODEL,
    description="Delta sync of every EVRoam table (bootstraps on the first run).",
)
evroam_repair_job = dg.define_asset_job(
    "evroam_repair",
    selection=dg.AssetSelection.assets(*EVROAM_ASSETS) | MODEL,
    config={"ops": {op: {"config": {"mode": "repair"}} for op in ("evroam__sites", "evroam_stations")}},
    description="Full pull of EVRoam that also detects hard deletes (run on demand or daily).",
)
evroam_delta_schedule = dg.ScheduleDefinition(
    name="evroam_delta",
    job=evroam_sync_job,
    cron_schedule=settings.get("EVROAM_DELTA_CRON"),
    execution_timezone="UTC",
    description="EVRoam delta sync (If-Modified-Since) every 5 minutes by default (EVROAM_DELTA_CRON).",
)
evroam_repair_schedule = dg.ScheduleDefinition(
    name="evroam_daily_repair",
    job=evroam_repair_job,
    cron_schedule=settings.get("EVROAM_REPAIR_CRON"),
    execution_timezone="UTC",
    description="Daily full EVRoam pull: catches missed pushes and hard deletes.",
)
