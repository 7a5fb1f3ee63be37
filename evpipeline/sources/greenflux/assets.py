"""GreenFlux assets: locations, EVSEs, connectors, charge stations and tariffs in schema `greenflux`.

Each list endpoint is its own stream with its own watermark. The first run bootstraps with a full
pull; every later run asks for `date_from` = watermark minus an overlap (inclusive, so the
boundary second is re-read; harmless, merges are idempotent) and pages with offset/limit until a
short page. Pages are normalized and validated as they arrive and written in one transaction at
the end, so a million EVSEs never sit in memory as dicts and a failed run writes nothing.

`mode: full` re-reads everything: it heals what a delta cannot see (EVSE changes that did not
bump a Location's last-modified, REMOVED copies left behind by moves) and flags objects that
vanished (hard deletes).
"""


import time
from collections.abc import Callable, Iterator
from datetime import datetime
from logging import Logger
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline import settings
from evpipeline.checks import quarantine_checks
from evpipeline.sources.greenflux import normalize, schemas
from evpipeline.sources.greenflux.client import GreenFluxClient, GreenFluxResource, Page, since_watermark
from evpipeline.sources.greenflux.tables import (
    CHARGE_STATIONS,
    CONNECTORS,
    EVSES,
    KEYS,
    LOCATIONS,
    STATUS,
    TARIFFS,
)
from evpipeline.sync import Batch, SyncOutcome, TableRows, table_metadata, write_sync_batches
from evpipeline.warehouse import WarehouseResource, Writer, table_columns

SOURCE = "greenflux"
POOL = "duckdb_writer"
LOCATIONS_KEY = dg.AssetKey(["greenflux", "locations"])
EVSES_KEY = dg.AssetKey(["greenflux", "evses"])
CONNECTORS_KEY = dg.AssetKey(["greenflux", "connectors"])
CHARGE_STATIONS_KEY = dg.AssetKey(["greenflux", "charge_stations"])
TARIFFS_KEY = dg.AssetKey(["greenflux", "tariffs"])
LOCATION_OUTPUTS = {LOCATIONS: LOCATIONS_KEY, EVSES: EVSES_KEY, CONNECTORS: CONNECTORS_KEY}
PREVIEWS = {
    LOCATIONS: ["location_id", "cpo_id", "name", "city", "country", "last_updated"],
    EVSES: ["location_id", "evse_uid", "evse_id", "status", "last_updated"],
    CONNECTORS: ["evse_uid", "connector_id", "standard", "power_type", "max_electric_power", "tariff_id"],
    CHARGE_STATIONS: ["charge_station_id", "location_id", "deploy_state", "connectivity_status", "charge_point_vendor"],
    TARIFFS: ["tariff_id", "cpo_id", "currency", "last_updated"],
}
SUPERSEDED = "inferred REMOVED: the EVSE is live in a newer location (GreenFlux leaves the old copy's timestamps unchanged)"


class GreenFluxSyncConfig(dg.Config):
    """How a run syncs: `delta` (default; bootstraps when there is no watermark) or `full`."""

    mode: Literal["delta", "full"] = "delta"
    overlap_seconds: int = Field(default=120, description="Re-read this much before the watermark (clock skew, late writes)")


class Watermark:
    """The newest change time seen, capped at the server time of the first page.

    The cap matters: an object changed while we page, on a page already read, is not in this pull;
    its change time is after the first page was produced, so the next delta still asks for it.
    """

    def __init__(self) -> None:
        self.first_page_at: datetime | None = None
        self.newest: datetime | None = None

    def page(self, page: Page) -> None:
        if self.first_page_at is None:
            self.first_page_at = page.server_time

    def seen(self, stamps: pd.Series) -> None:
        newest = stamps.max() if len(stamps) else None
        if newest is not None and pd.notna(newest):
            self.newest = max(self.newest, newest.to_pydatetime()) if self.newest else newest.to_pydatetime()

    def value(self) -> datetime | None:
        if self.newest is None:
            return None  # nothing seen: keep the old watermark
        return min(self.newest, self.first_page_at) if self.first_page_at else self.newest


def _since(warehouse: WarehouseResource, stream: str, config: GreenFluxSyncConfig) -> tuple[datetime | None, bool]:
    """(date_from, bootstrap): None for a full pull or the first run."""
    watermark, _ = warehouse.sync_state(SOURCE, stream)
    if config.mode == "full":
        return None, watermark is None
    return since_watermark(watermark, config.overlap_seconds), watermark is None


def _lineage(stream: str, page: Page, since: datetime | None) -> str:
    return f"pull:{stream} offset={page.offset} since={since.isoformat() if since else 'all'}"


def supersede_moved_evses(writer: Writer) -> int:
    """Where an EVSE uid is live in several locations, keep the newest; the older copies become REMOVED.

    GreenFlux marks a moved EVSE REMOVED in its old location without changing any timestamp, so a
    `date_from` delta returns only the new location. Until a full pull confirms it, the old copy
    would look live twice; this records what the API would answer, through the same merge (so
    `ops.status_history` gets the transition). Returns how many copies were marked.
    """
    columns = [c for c in table_columns(writer.con, EVSES) if c not in
               {"status", "deleted_at", "_observed_at", "_observed_seq", "_row_hash", "_ingested_at", "_run_id", "_lineage",
                "_change", "_prev_status"}]
    stale = writer.con.execute(
        f"""
        WITH live AS (
            SELECT location_id, evse_uid,
                   row_number() OVER (PARTITION BY evse_uid ORDER BY last_updated DESC, _observed_at DESC, location_id) AS rank,
                   max(_observed_at) OVER (PARTITION BY evse_uid) AS newest_seen
            FROM {EVSES}
            WHERE status <> 'REMOVED' AND NOT is_deleted
            QUALIFY count(*) OVER (PARTITION BY evse_uid) > 1
        )
        SELECT {", ".join(f"e.{c}" for c in columns)}, 'REMOVED' AS status, live.newest_seen AS _observed_at
        FROM {EVSES} e JOIN live USING (location_id, evse_uid)
        WHERE live.rank > 1
        """
    ).df()
    if stale.empty:
        return 0
    stale["_observed_seq"] = time.time_ns()  # an inference made now, as of the newest fetch that showed the move
    return writer.merge(stale, EVSES, KEYS[EVSES], status_column=STATUS[EVSES], lineage=SUPERSEDED).updated


Tables = Callable[[list[dict[str, Any]]], tuple[list[TableRows], pd.Series]]


def _sync(
    warehouse: WarehouseResource, client: GreenFluxClient, *, run_id: str | None, log: Logger, stream: str,
    pages: Iterator[Page], since: datetime | None, tables: Tables, mark: Watermark,
    after_batch: Callable[[Writer, Batch, dict[str, pd.DataFrame], dict[str, pd.DataFrame]], None] | None = None,
    before_commit: Callable[[Writer], None] | None = None,
) -> SyncOutcome:
    """Pages -> normalized, validated batches -> one transaction; `tables` turns a page into rows
    and the change times the watermark follows."""

    def batches() -> Iterator[Batch]:
        for page in pages:
            mark.page(page)
            rows, stamps = tables(page.records)
            mark.seen(stamps)
            yield Batch(rows, as_of=page.server_time, lineage=_lineage(stream, page, since))

    # GreenFlux keeps `last_updated` across some content changes (moved EVSEs), so versions are
    # ordered by when the server answered (and our fetch sequence within a second), not by it.
    outcome = write_sync_batches(
        warehouse, source=SOURCE, stream=stream, run_id=run_id, batches=batches(), watermark=mark.value,
        requests=lambda: client.api.stats.requests, after_batch=after_batch, before_commit=before_commit,
        version_by_fetch=True,
    )
    log.info("%s: %d request(s), since %s, watermark %s", stream, client.api.stats.requests, since, outcome.watermark)
    return outcome


def _metadata(outcome: SyncOutcome, table: str, client: GreenFluxClient, config: GreenFluxSyncConfig) -> dict[str, Any]:
    if table not in outcome.tables:
        return {"fetched": 0, "requests": client.api.stats.requests, "mode": config.mode}
    return table_metadata(outcome[table], requests=client.api.stats.requests, watermark=outcome.watermark,
                          preview_columns=PREVIEWS[table], extra={"mode": config.mode})


def sync_locations(warehouse: WarehouseResource, client: GreenFluxClient, config: GreenFluxSyncConfig, *,
                   run_id: str | None, log: Logger) -> SyncOutcome:
    """Locations with their EVSEs and connectors since the watermark (or all), in one transaction.
    Used by the asset and by the real-time lane's minute poll."""
    since, bootstrap = _since(warehouse, "Locations", config)
    mark = Watermark()
    seen_locations: list[str] = []

    def tables(records: list[dict[str, Any]]) -> tuple[list[TableRows], pd.Series]:
        rows = normalize.locations(records)
        if config.mode == "full":
            seen_locations.extend(rows.locations.frame["location_id"].dropna().astype(str))
        return [
            TableRows(LOCATIONS, rows.locations.frame, schemas.LOCATIONS, KEYS[LOCATIONS], rows.locations.raw),
            TableRows(EVSES, rows.evses.frame, schemas.EVSES, KEYS[EVSES], rows.evses.raw, STATUS[EVSES]),
            TableRows(CONNECTORS, rows.connectors.frame, schemas.CONNECTORS, KEYS[CONNECTORS], rows.connectors.raw),
        ], rows.locations.frame["last_updated"]

    def sweep(writer: Writer, batch: Batch, valid: dict[str, pd.DataFrame], seen: dict[str, pd.DataFrame]) -> None:
        # A location lists all its EVSEs and an EVSE all its connectors: what left a list is gone.
        # (Nothing can be gone yet on a bootstrap.)
        if bootstrap or batch.as_of is None:
            return
        if len(seen[LOCATIONS]):
            writer.flag_missing(EVSES, KEYS[EVSES], seen[EVSES], batch.as_of, scope_keys=seen[LOCATIONS])
        if len(seen[EVSES]):
            writer.flag_missing(CONNECTORS, KEYS[CONNECTORS], seen[CONNECTORS], batch.as_of, scope_keys=seen[EVSES])

    def finish(writer: Writer) -> None:
        supersede_moved_evses(writer)
        if config.mode == "full" and not bootstrap and mark.first_page_at is not None:  # a complete snapshot
            writer.flag_missing(LOCATIONS, KEYS[LOCATIONS], pd.DataFrame({"location_id": seen_locations}), mark.first_page_at)

    return _sync(warehouse, client, run_id=run_id, log=log, stream="Locations", pages=client.locations(since), since=since,
                 tables=tables, mark=mark, after_batch=sweep, before_commit=finish)


@dg.multi_asset(
    name="greenflux_locations",
    group_name="greenflux",
    pool=POOL,
    can_subset=True,
    specs=[
        dg.AssetSpec(LOCATIONS_KEY, description="GreenFlux Locations v2 (one row per location, custom fields kept).", kinds={"duckdb"}, skippable=True),
        dg.AssetSpec(EVSES_KEY, description="GreenFlux EVSEs per (location, uid); REMOVED copies kept; see greenflux.current_evses.", kinds={"duckdb"}, skippable=True),
        dg.AssetSpec(CONNECTORS_KEY, description="GreenFlux connectors per (location, EVSE, connector).", kinds={"duckdb"}, skippable=True),
    ],
)
def greenflux_locations(
    context: dg.AssetExecutionContext, config: GreenFluxSyncConfig, greenflux: GreenFluxResource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """GreenFlux locations with their EVSEs and connectors, from one endpoint and one watermark."""
    client = greenflux.client()
    if not all(key in context.selected_asset_keys for key in LOCATION_OUTPUTS.values()):
        # One endpoint feeds all three tables and shares one watermark: write them all.
        context.log.warning("Locations runs write locations, evses and connectors; reporting only the selected ones")
    outcome = sync_locations(warehouse, client, config, run_id=context.run.run_id, log=context.log)
    for table, key in LOCATION_OUTPUTS.items():
        if key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key, metadata=_metadata(outcome, table, client, config))


@dg.asset(
    key=CHARGE_STATIONS_KEY,
    group_name="greenflux",
    pool=POOL,
    kinds={"duckdb", "python"},
    description="GreenFlux charge stations (deploy state, connectivity, tariffs, hardware), merged into greenflux.charge_stations.",
)
def greenflux_charge_stations(
    context: dg.AssetExecutionContext, config: GreenFluxSyncConfig, greenflux: GreenFluxResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """GreenFlux charge stations with vendor, model and firmware, and the EVSEs they hold."""
    client = greenflux.client()
    since, bootstrap = _since(warehouse, "ChargeStations", config)
    mark = Watermark()
    seen: list[str] = []

    def tables(records: list[dict[str, Any]]) -> tuple[list[TableRows], pd.Series]:
        rows = normalize.charge_stations(records)
        seen.extend(rows.frame["charge_station_id"].dropna().astype(str))
        return [TableRows(CHARGE_STATIONS, rows.frame, schemas.CHARGE_STATIONS, KEYS[CHARGE_STATIONS], rows.raw,
                          STATUS[CHARGE_STATIONS])], rows.frame["last_updated"]

    def finish(writer: Writer) -> None:
        if config.mode == "full" and not bootstrap and mark.first_page_at is not None:
            writer.flag_missing(CHARGE_STATIONS, KEYS[CHARGE_STATIONS], pd.DataFrame({"charge_station_id": seen}), mark.first_page_at)

    outcome = _sync(warehouse, client, run_id=context.run.run_id, log=context.log, stream="ChargeStations",
                    pages=client.charge_stations(since), since=since, tables=tables, mark=mark, before_commit=finish)
    return dg.MaterializeResult(metadata=_metadata(outcome, CHARGE_STATIONS, client, config))


def sync_tariffs(warehouse: WarehouseResource, client: GreenFluxClient, config: GreenFluxSyncConfig, *, path: str,
                 run_id: str | None, log: Logger) -> SyncOutcome:
    """Tariffs since the watermark (or all): a changed tariff is an ad-hoc price change (AFIR dynamic data)."""
    since, bootstrap = _since(warehouse, "tariffs", config)
    mark = Watermark()
    seen: list[str] = []

    def tables(records: list[dict[str, Any]]) -> tuple[list[TableRows], pd.Series]:
        rows = normalize.tariffs(records)
        seen.extend(rows.frame["tariff_id"].dropna().astype(str))
        return [TableRows(TARIFFS, rows.frame, schemas.TARIFFS, KEYS[TARIFFS], rows.raw)], rows.frame["last_updated"]

    def finish(writer: Writer) -> None:
        if config.mode == "full" and not bootstrap and mark.first_page_at is not None:  # a deleted tariff just vanishes
            writer.flag_missing(TARIFFS, KEYS[TARIFFS], pd.DataFrame({"tariff_id": seen}), mark.first_page_at)

    return _sync(warehouse, client, run_id=run_id, log=log, stream="tariffs", pages=client.tariffs(since, path=path),
                 since=since, tables=tables, mark=mark, before_commit=finish)


@dg.asset(
    key=TARIFFS_KEY,
    group_name="greenflux",
    pool=POOL,
    kinds={"duckdb", "python"},
    description="GreenFlux tariffs (OCPI 2.1.1 shape) that connectors' tariff_id point at, merged into greenflux.tariffs.",
)
def greenflux_tariffs(
    context: dg.AssetExecutionContext, config: GreenFluxSyncConfig, greenflux: GreenFluxResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """GreenFlux tariffs, so the NDW export has real tariffs to deliver."""
    client = greenflux.client()
    outcome = sync_tariffs(warehouse, client, config, path=greenflux.tariffs_path, run_id=context.run.run_id, log=context.log)
    return dg.MaterializeResult(metadata=_metadata(outcome, TARIFFS, client, config))


GREENFLUX_ASSETS = [LOCATIONS_KEY, EVSES_KEY, CONNECTORS_KEY, CHARGE_STATIONS_KEY, TARIFFS_KEY]
greenflux_checks = quarantine_checks(
    [(LOCATIONS_KEY, LOCATIONS), (EVSES_KEY, EVSES), (CONNECTORS_KEY, CONNECTORS),
     (CHARGE_STATIONS_KEY, CHARGE_STATIONS), (TARIFFS_KEY, TARIFFS)]
)
greenflux_sync_job = dg.define_asset_job(
    "greenflux_sync",
    selection=dg.AssetSelection.assets(*GREENFLUX_ASSETS),
    description="Delta sync of every GreenFlux table by date_from (bootstraps on the first run).",
)
greenflux_full_job = dg.define_asset_job(
    "greenflux_full",
    selection=dg.AssetSelection.assets(*GREENFLUX_ASSETS),
    config={"ops": {op: {"config": {"mode": "full"}} for op in ("greenflux_locations", "greenflux__charge_stations", "greenflux__tariffs")}},
    description="Full pull of GreenFlux: heals what deltas cannot see and flags objects that vanished.",
)
greenflux_delta_schedule = dg.ScheduleDefinition(
    name="greenflux_delta",
    job=greenflux_sync_job,
    cron_schedule=settings.get("GREENFLUX_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="GreenFlux delta sync (date_from) every 15 minutes by default (GREENFLUX_CRON).",
)
greenflux_full_schedule = dg.ScheduleDefinition(
    name="greenflux_daily_full",
    job=greenflux_full_job,
    cron_schedule=settings.get("GREENFLUX_FULL_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily full GreenFlux pull (GREENFLUX_FULL_CRON).",
)
