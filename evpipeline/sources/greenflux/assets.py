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
from datetime import datetime, timedelta
from logging import Logger
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline.sources.greenflux import normalize, schemas
from evpipeline.sources.greenflux.client import GreenFluxClient, GreenFluxResource, Page
from evpipeline.sources.greenflux.tables import (
    CHARGE_STATIONS,
    CONNECTORS,
    EVSES,
    KEYS,
    LOCATIONS,
    STATUS,
    TARIFFS,
)
from evpipeline.sources.kit import Run, SyncReport, Table, sync_asset
from evpipeline.sync import Batch, SyncOutcome, TableRows, write_sync_batches
from evpipeline.warehouse import WarehouseResource, Writer, table_columns
from evpipeline.watermarks import Clock, Watermark, WatermarkRule

SOURCE = "greenflux"
# `date_from` follows the records' own `last_updated`, never past the server time of the first page.
WATERMARK = WatermarkRule(Clock.RECORDS, overlap=timedelta(seconds=120))
LOCATIONS_TABLES = [
    Table(
        LOCATIONS,
        "GreenFlux Locations v2 (one row per location, custom fields kept).",
        ["location_id", "cpo_id", "name", "city", "country", "last_updated"],
    ),
    Table(
        EVSES,
        "GreenFlux EVSEs per (location, uid); REMOVED copies kept; see greenflux.current_evses.",
        ["location_id", "evse_uid", "evse_id", "status", "last_updated"],
    ),
    Table(
        CONNECTORS,
        "GreenFlux connectors per (location, EVSE, connector).",
        ["evse_uid", "connector_id", "standard", "power_type", "max_electric_power", "tariff_id"],
    ),
]
CHARGE_STATIONS_TABLE = Table(
    CHARGE_STATIONS,
    "GreenFlux charge stations (deploy state, connectivity, tariffs, hardware).",
    ["charge_station_id", "location_id", "deploy_state", "connectivity_status", "charge_point_vendor"],
)
TARIFFS_TABLE = Table(
    TARIFFS,
    "GreenFlux tariffs (OCPI 2.1.1 shape) that connectors' tariff_id point at.",
    ["tariff_id", "cpo_id", "currency", "last_updated"],
)
LOCATIONS_KEY, EVSES_KEY, CONNECTORS_KEY = (t.key for t in LOCATIONS_TABLES)
CHARGE_STATIONS_KEY, TARIFFS_KEY = CHARGE_STATIONS_TABLE.key, TARIFFS_TABLE.key
SUPERSEDED = (
    "inferred REMOVED: the EVSE is live in a newer location (GreenFlux leaves the old copy's timestamps "
    "unchanged)"
)


class GreenFluxSyncConfig(dg.Config):
    """How a run syncs: `delta` (default; bootstraps when there is no watermark) or `full`."""

    mode: Literal["delta", "full"] = "delta"
    overlap_seconds: int = Field(
        default=int(WATERMARK.overlap.total_seconds()),
        description="Re-read this much before the watermark (clock skew, late writes)",
    )


def _start(
    warehouse: WarehouseResource, stream: str, config: GreenFluxSyncConfig
) -> tuple[datetime | None, bool, Watermark]:
    """(date_from, bootstrap, tracker): date_from is None for a full pull or the first run."""
    stored, _ = warehouse.sync_state(SOURCE, stream)
    since = WATERMARK.since(stored, full=config.mode == "full", overlap_seconds=config.overlap_seconds)
    return since, stored is None, WATERMARK.tracker(stored)


def _lineage(stream: str, page: Page, since: datetime | None) -> str:
    return f"pull:{stream} offset={page.offset} since={since.isoformat() if since else 'all'}"


def supersede_moved_evses(writer: Writer) -> int:
    """Where an EVSE uid is live in several locations, keep the newest; the older copies become REMOVED.

    GreenFlux marks a moved EVSE REMOVED in its old location without changing any timestamp, so a
    `date_from` delta returns only the new location. Until a full pull confirms it, the old copy
    would look live twice; this records what the API would answer, through the same merge (so
    `ops.status_history` gets the transition). Returns how many copies were marked.
    """
    columns = [
        c
        for c in table_columns(writer.con, EVSES)
        if c
        not in {
            "status",
            "deleted_at",
            "_observed_at",
            "_observed_seq",
            "_row_hash",
            "_ingested_at",
            "_run_id",
            "_lineage",
            "_change",
            "_prev_status",
        }
    ]
    stale = writer.con.execute(
        f"""
        WITH live AS (
            SELECT location_id, evse_uid,
                   row_number() OVER (PARTITION BY evse_uid ORDER BY last_updated DESC, _observed_at DESC,
                   location_id) AS rank,
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
    stale["_observed_seq"] = (
        time.time_ns()
    )  # an inference made now, as of the newest fetch that showed the move
    return writer.merge(stale, EVSES, KEYS[EVSES], status_column=STATUS[EVSES], lineage=SUPERSEDED).updated


Tables = Callable[[list[dict[str, Any]]], tuple[list[TableRows], pd.Series]]


def _sync(
    warehouse: WarehouseResource,
    client: GreenFluxClient,
    *,
    run_id: str | None,
    log: Logger,
    stream: str,
    pages: Iterator[Page],
    since: datetime | None,
    tables: Tables,
    mark: Watermark,
    after_batch: Callable[[Writer, Batch, dict[str, pd.DataFrame], dict[str, pd.DataFrame]], None]
    | None = None,
    before_commit: Callable[[Writer], None] | None = None,
) -> SyncOutcome:
    """Pages -> normalized, validated batches -> one transaction; `tables` turns a page into rows
    and the change times the watermark follows."""

    def batches() -> Iterator[Batch]:
        for page in pages:
            mark.page(page.server_time)
            rows, stamps = tables(page.records)
            mark.seen(stamps)
            yield Batch(rows, as_of=page.server_time, lineage=_lineage(stream, page, since))

    # GreenFlux keeps `last_updated` across some content changes (moved EVSEs), so versions are
    # ordered by when the server answered (and our fetch sequence within a second), not by it.
    outcome = write_sync_batches(
        warehouse,
        source=SOURCE,
        stream=stream,
        run_id=run_id,
        batches=batches(),
        watermark=mark.value,
        requests=lambda: client.api.stats.requests,
        after_batch=after_batch,
        before_commit=before_commit,
        version_by_fetch=True,
    )
    log.info(
        "%s: %d request(s), since %s, watermark %s",
        stream,
        client.api.stats.requests,
        since,
        outcome.watermark,
    )
    return outcome


def sync_locations(
    warehouse: WarehouseResource,
    client: GreenFluxClient,
    config: GreenFluxSyncConfig,
    *,
    run_id: str | None,
    log: Logger,
) -> SyncOutcome:
    """Locations with their EVSEs and connectors since the watermark (or all), in one transaction.
    Used by the asset and by the real-time lane's poll (every `live_poll_seconds`, 30 s)."""
    since, bootstrap, mark = _start(warehouse, "Locations", config)
    seen_locations: list[str] = []

    def tables(records: list[dict[str, Any]]) -> tuple[list[TableRows], pd.Series]:
        rows = normalize.locations(records)
        if config.mode == "full":
            seen_locations.extend(rows.locations.frame["location_id"].dropna().astype(str))
        return [
            TableRows(
                LOCATIONS, rows.locations.frame, schemas.LOCATIONS, KEYS[LOCATIONS], rows.locations.raw
            ),
            TableRows(EVSES, rows.evses.frame, schemas.EVSES, KEYS[EVSES], rows.evses.raw, STATUS[EVSES]),
            TableRows(
                CONNECTORS, rows.connectors.frame, schemas.CONNECTORS, KEYS[CONNECTORS], rows.connectors.raw
            ),
        ], rows.locations.frame["last_updated"]

    def sweep(
        writer: Writer, batch: Batch, valid: dict[str, pd.DataFrame], seen: dict[str, pd.DataFrame]
    ) -> None:
        # A location lists all its EVSEs and an EVSE all its connectors: what left a list is gone.
        # (Nothing can be gone yet on a bootstrap.)
        if bootstrap or batch.as_of is None:
            return
        if len(seen[LOCATIONS]):
            writer.flag_missing(EVSES, KEYS[EVSES], seen[EVSES], batch.as_of, scope_keys=seen[LOCATIONS])
        if len(seen[EVSES]):
            writer.flag_missing(
                CONNECTORS, KEYS[CONNECTORS], seen[CONNECTORS], batch.as_of, scope_keys=seen[EVSES]
            )

    def finish(writer: Writer) -> None:
        supersede_moved_evses(writer)
        if config.mode == "full" and not bootstrap and mark.first_page_at is not None:  # a complete snapshot
            writer.flag_missing(
                LOCATIONS, KEYS[LOCATIONS], pd.DataFrame({"location_id": seen_locations}), mark.first_page_at
            )

    return _sync(
        warehouse,
        client,
        run_id=run_id,
        log=log,
        stream="Locations",
        pages=client.locations(since),
        since=since,
        tables=tables,
        mark=mark,
        after_batch=sweep,
        before_commit=finish,
    )


def _sync_list(
    warehouse: WarehouseResource,
    client: GreenFluxClient,
    config: GreenFluxSyncConfig,
    *,
    stream: str,
    table: str,
    rows_of: Callable[[list[dict[str, Any]]], Any],
    schema: Any,
    pages: Callable[[datetime | None], Iterator[Page]],
    run_id: str | None,
    log: Logger,
) -> SyncOutcome:
    """One list endpoint into one table: a `date_from` delta, or (full) a complete list after which
    whatever is no longer listed is flagged deleted (a deleted tariff or station just vanishes)."""
    since, bootstrap, mark = _start(warehouse, stream, config)
    seen: list[pd.DataFrame] = []

    def tables(records: list[dict[str, Any]]) -> tuple[list[TableRows], pd.Series]:
        rows = rows_of(records)
        seen.append(rows.frame[list(KEYS[table])].dropna())
        return [TableRows(table, rows.frame, schema, KEYS[table], rows.raw, STATUS.get(table))], rows.frame[
            "last_updated"
        ]

    def finish(writer: Writer) -> None:
        if config.mode == "full" and not bootstrap and mark.first_page_at is not None:
            listed = pd.concat(seen) if seen else pd.DataFrame(columns=list(KEYS[table]))
            writer.flag_missing(table, KEYS[table], listed, mark.first_page_at)

    return _sync(
        warehouse,
        client,
        run_id=run_id,
        log=log,
        stream=stream,
        pages=pages(since),
        since=since,
        tables=tables,
        mark=mark,
        before_commit=finish,
    )


def sync_charge_stations(
    warehouse: WarehouseResource,
    client: GreenFluxClient,
    config: GreenFluxSyncConfig,
    *,
    run_id: str | None,
    log: Logger,
) -> SyncOutcome:
    """Charge stations since the watermark (or all), in one transaction."""
    return _sync_list(
        warehouse,
        client,
        config,
        stream="ChargeStations",
        table=CHARGE_STATIONS,
        rows_of=normalize.charge_stations,
        schema=schemas.CHARGE_STATIONS,
        pages=client.charge_stations,
        run_id=run_id,
        log=log,
    )


def sync_tariffs(
    warehouse: WarehouseResource,
    client: GreenFluxClient,
    config: GreenFluxSyncConfig,
    *,
    run_id: str | None,
    log: Logger,
) -> SyncOutcome:
    """Tariffs since the watermark (or all): a changed tariff is an ad-hoc price change
    (AFIR dynamic data)."""
    return _sync_list(
        warehouse,
        client,
        config,
        stream="tariffs",
        table=TARIFFS,
        rows_of=normalize.tariffs,
        schema=schemas.TARIFFS,
        pages=client.tariffs,
        run_id=run_id,
        log=log,
    )


def _report(sync: Callable[..., SyncOutcome]) -> Callable[..., SyncReport]:
    """An asset body around one of the syncs above (the real-time lane calls those directly)."""

    def run(
        context: dg.AssetExecutionContext,
        greenflux: GreenFluxResource,
        warehouse: WarehouseResource,
        config: GreenFluxSyncConfig,
    ) -> SyncReport:
        client = greenflux.client()
        outcome = sync(warehouse, client, config, run_id=context.run.run_id, log=context.log)
        return SyncReport(outcome, client.api.stats.requests, {"mode": config.mode})

    run.__doc__ = sync.__doc__
    return run


RESOURCE = ("greenflux", GreenFluxResource)
greenflux_locations = sync_asset(
    "greenflux_locations",
    LOCATIONS_TABLES,
    RESOURCE,
    _report(sync_locations),
    config=GreenFluxSyncConfig,
    description="GreenFlux locations with their EVSEs and connectors, from one endpoint and one watermark.",
)
greenflux_charge_stations = sync_asset(
    "greenflux_charge_stations",
    [CHARGE_STATIONS_TABLE],
    RESOURCE,
    _report(sync_charge_stations),
    config=GreenFluxSyncConfig,
    description="GreenFlux charge stations with vendor, model and firmware, and the EVSEs they hold.",
)
greenflux_tariffs = sync_asset(
    "greenflux_tariffs",
    [TARIFFS_TABLE],
    RESOURCE,
    _report(sync_tariffs),
    config=GreenFluxSyncConfig,
    description="GreenFlux tariffs, so NDW gets real tariffs (a changed one is an ad-hoc price change).",
)
ASSETS = [greenflux_locations, greenflux_charge_stations, greenflux_tariffs]
RUNS = [
    Run(
        "greenflux_sync",
        "greenflux_delta",
        "GREENFLUX_CRON",
        "Delta sync of every GreenFlux table by date_from (bootstraps on the first run).",
    ),
    Run(
        "greenflux_full",
        "greenflux_daily_full",
        "GREENFLUX_FULL_CRON",
        "Full pull of GreenFlux: heals what deltas cannot see and flags objects that vanished.",
        config={"mode": "full"},
        full=True,
    ),
]
