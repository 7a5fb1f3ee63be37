"""TomTom assets: location mapping and live availability in schema `tomtom`.

`tomtom/location_mapping` links the charging locations already in the canonical model (from the
other sources) to TomTom availability ids by searching near each one and matching on distance and
connector types (rules in `matching.py`); it re-searches only locations that are new, moved,
changed their connectors, or are still unmatched after `retry_unmatched_after_minutes`.
`tomtom_availability` polls every mapped id concurrently within the key's QPS and writes an
append-only time series, the latest state per id x connector type x power level, and a poll log
with each request's Tracking-ID.
"""

import json
from datetime import datetime, timedelta
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline.sources.kit import Run, SyncReport, Table, key, sync_asset
from evpipeline.sources.tomtom import normalize, schemas
from evpipeline.sources.tomtom.client import PollBatch, TomTomResource
from evpipeline.sources.tomtom.matching import Location, MatchRules, decide, distance_m, tomtom_type
from evpipeline.sources.tomtom.tables import KEYS, LATEST, MAPPING, POLLS, SNAPSHOTS, STATUS
from evpipeline.sync import TableRows, markdown_preview, write_sync
from evpipeline.warehouse import WarehouseResource, Writer
from evpipeline.watermarks import Clock, WatermarkRule

SOURCE = "tomtom"
# The mapping is a search, not a delta: its watermark is our clock. Availability follows the polls.
MAPPING_WATERMARK = WatermarkRule(Clock.LOCAL)
AVAILABILITY_WATERMARK = WatermarkRule(Clock.OBSERVED)
MAPPING_TABLE = Table(
    MAPPING,
    "Canonical charging locations linked to TomTom availability ids (unmatched ones reported, "
    "never guessed).",
    ["location_id", "match_status", "availability_id", "distance_m", "connector_overlap", "reason"],
)
AVAILABILITY_TABLES = [
    Table(
        SNAPSHOTS,
        "Append-only TomTom availability: one row per id x connector type x power level x poll.",
        [
            "availability_id",
            "connector_type",
            "power_kw",
            "polled_at",
            "available",
            "occupied",
            "tracking_id",
        ],
    ),
    Table(
        LATEST,
        "Latest TomTom availability per id x connector type x power level; changes in ops.status_history.",
        ["availability_id", "connector_type", "power_kw", "status", "available", "total"],
    ),
    Table(
        POLLS,
        "One row per availability request: outcome (data, no_data, error) and its Tracking-ID.",
        ["availability_id", "polled_at", "outcome", "http_status", "tracking_id"],
    ),
]
MAPPING_KEY = MAPPING_TABLE.key
SNAPSHOTS_KEY, LATEST_KEY, POLLS_KEY = (t.key for t in AVAILABILITY_TABLES)
# The mart tables TomTom's matching reads (`evpipeline.model.tables` LOCATIONS and CONNECTORS, held equal by
# evpipeline_tests/sources/tomtom/test_tomtom_mapping.py): named here, not imported, because the model sits
# above the sources that feed it; the asset's `deps` tell Dagster the order.
MART_LOCATIONS = "mart.locations"
MART_CONNECTORS = "mart.connectors"
MART_LOCATIONS_KEY, MART_CONNECTORS_KEY = key(MART_LOCATIONS), key(MART_CONNECTORS)
KEPT_STATUSES = ("matched", "no_live_data")


# -- mapping ---------------------------------------------------------------------------------


class TomTomMappingConfig(dg.Config):
    """Matching thresholds and when to search again."""

    max_distance_m: float = Field(default=100.0, description="A POI further than this is never a match")
    min_overlap: float = Field(default=0.5, description="Minimum Jaccard overlap of connector types")
    min_score: float = Field(
        default=0.3, description="Minimum score overlap * (1 - distance / max_distance_m)"
    )
    min_margin: float = Field(default=0.25, description="Score lead the best POI needs over the runner-up")
    moved_threshold_m: float = Field(
        default=25.0, description="A location that moved further is searched again"
    )
    retry_unmatched_after_minutes: int = Field(
        default=24 * 60,
        description="Search ambiguous/unmatched locations again after this long (0: every run)",
    )


def read_locations(warehouse: WarehouseResource) -> list[Location]:
    """Published, live mart locations with the TomTom types of their live connectors."""
    with warehouse.get_connection() as con:
        rows = con.execute(
            f"""
            SELECT l.country_code, l.party_id, l.location_id, l.source, l.name, l.latitude, l.longitude,
                   list(DISTINCT [c.standard, c.format]) FILTER (WHERE c.connector_id IS NOT NULL
                   AND NOT c.is_deleted)
            FROM {MART_LOCATIONS} l
            LEFT JOIN {MART_CONNECTORS} c USING (country_code, party_id, location_id)
            WHERE l.publish AND NOT l.is_deleted
            GROUP BY ALL
            ORDER BY 1, 2, 3
            """
        ).fetchall()
    locations = []
    for cc, party, lid, source, name, lat, lon, pairs in rows:
        types = {tomtom_type(standard, fmt) for standard, fmt in pairs or []}
        locations.append(Location(cc, party, lid, source, name, lat, lon, frozenset(t for t in types if t)))
    return locations


def read_mapping(warehouse: WarehouseResource) -> dict[tuple[str, str, str], dict[str, Any]]:
    with warehouse.get_connection() as con:
        frame = con.execute(
            "SELECT country_code, party_id, location_id, latitude, longitude, connector_types, match_status, "
            f"searched_at, is_deleted FROM {MAPPING}"
        ).df()
    return {(r["country_code"], r["party_id"], r["location_id"]): r for r in frame.to_dict("records")}


def needs_search(
    location: Location, previous: dict[str, Any] | None, config: TomTomMappingConfig, now: datetime
) -> str | None:
    """Why a location must be (re)matched now, or None when its stored mapping still holds."""
    if previous is None or previous["is_deleted"]:
        return "new"
    if json.dumps(sorted(location.connector_types)) != previous["connector_types"]:
        return "connectors changed"
    if location.has_position != (pd.notna(previous["latitude"]) and pd.notna(previous["longitude"])):
        return "moved"
    position = location.position
    if (
        position is not None
        and distance_m(*position, previous["latitude"], previous["longitude"]) > config.moved_threshold_m
    ):
        return "moved"
    if previous["match_status"] not in KEPT_STATUSES:
        searched = pd.Timestamp(previous["searched_at"]) if pd.notna(previous["searched_at"]) else None
        if searched is None or searched <= pd.Timestamp(now) - timedelta(
            minutes=config.retry_unmatched_after_minutes
        ):
            return "retry unmatched"
    return None


def map_locations(
    context: dg.AssetExecutionContext,
    tomtom: TomTomResource,
    warehouse: WarehouseResource,
    config: TomTomMappingConfig,
) -> SyncReport:
    """Match each published mart location to a TomTom POI by distance and connector types."""
    mark = MAPPING_WATERMARK.tracker(warehouse.sync_state(SOURCE, "location_mapping")[0])
    now = mark.started_at
    client = tomtom.client()
    rules = MatchRules(config.max_distance_m, config.min_overlap, config.min_score, config.min_margin)
    locations = read_locations(warehouse)
    previous = read_mapping(warehouse)
    due = {
        loc.key: why for loc in locations if (why := needs_search(loc, previous.get(loc.key), config, now))
    }
    todo = [loc for loc in locations if loc.key in due]
    # Without a position or a comparable connector type the answer is "unmatched" without asking.
    searchable = {
        loc.key: position for loc in todo if (position := loc.position) is not None and loc.connector_types
    }
    results, errors = client.search_many(searchable)
    matches = [
        decide(loc, results.get(loc.key), rules, client.search_radius_m)
        for loc in todo
        if loc.key not in errors
    ]
    context.log.info(
        "%d locations: %d to match (%s), %d searches, %d kept from earlier runs",
        len(locations),
        len(todo),
        dict(pd.Series(list(due.values())).value_counts()) if due else {},
        len(searchable),
        len(locations) - len(todo),
    )
    rows = normalize.mapping(matches, now)
    active = pd.DataFrame([loc.key for loc in locations], columns=list(KEYS[MAPPING]))

    def sweep(writer: Writer, valid: dict[str, pd.DataFrame]) -> None:
        # Locations deleted or unpublished in the mart: their mapping is flagged, so nobody polls it.
        writer.flag_missing(MAPPING, KEYS[MAPPING], active, now)

    outcome = write_sync(
        warehouse,
        source=SOURCE,
        stream="location_mapping",
        run_id=context.run.run_id,
        tables=[TableRows(MAPPING, rows.frame, schemas.MAPPING, KEYS[MAPPING], rows.raw, STATUS[MAPPING])],
        watermark=mark.value(),
        requests=client.api.stats.requests,
        lineage=f"categorySearch radius={client.search_radius_m:.0f}m",
        before_commit=sweep,
    )
    with warehouse.get_connection() as con:
        statuses = dict(
            con.execute(
                f"SELECT match_status, count(*) FROM {MAPPING} WHERE NOT is_deleted GROUP BY 1"
            ).fetchall()
        )
        unmatched = con.execute(
            "SELECT * FROM tomtom.unmatched_locations ORDER BY match_status, location_id"
        ).df()
    extra = {
        "locations": len(locations),
        "searched": len(searchable),
        "kept": len(locations) - len(todo),
        "search_errors": len(errors),
        **{
            status: int(statuses.get(status, 0))
            for status in ("matched", "no_live_data", "ambiguous", "unmatched")
        },
        "unmatched_locations": dg.MetadataValue.md(
            markdown_preview(
                unmatched, ["country_code", "party_id", "location_id", "match_status", "reason"], rows=20
            )
        ),
    }
    failure = None
    if errors:
        sample = "; ".join(f"{'/'.join(k)}: {e}" for k, e in list(errors.items())[:3])
        failure = f"TomTom search failed for {len(errors)} location(s) (the others were written): {sample}"
    return SyncReport(outcome, client.api.stats.requests, extra, failure=failure)


# -- availability ----------------------------------------------------------------------------


class TomTomAvailabilityConfig(dg.Config):
    """How a poll runs: wire format, and optionally which ids (default: every matched id)."""

    wire_format: Literal["json", "xml"] = Field(
        default="json", description="Response format requested (both parse identically)"
    )
    availability_ids: list[str] = Field(
        default_factory=list, description="Poll exactly these ids instead of the mapped ones"
    )


def mapped_ids(warehouse: WarehouseResource) -> list[str]:
    """Every availability id a live location is matched to (several locations may share one)."""
    with warehouse.get_connection() as con:
        rows = con.execute(
            f"SELECT DISTINCT availability_id FROM {MAPPING} "
            "WHERE NOT is_deleted AND match_status = 'matched' AND availability_id IS NOT NULL ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _poll_metadata(batch: PollBatch, requests: int, http_429: int, qps: float) -> dict[str, Any]:
    achieved = len(batch.polls) / batch.seconds if batch.seconds > 0 else 0.0
    return {
        "ids": len(batch.polls),
        "with_data": batch.count("data"),
        "no_data": batch.count("no_data"),
        "errors": batch.count("error"),
        "http_429": http_429,
        "poll_seconds": round(batch.seconds, 2),
        "achieved_qps": round(achieved, 2),
        "qps_limit": qps,
        "requests": requests,
    }


def poll_availability(
    context: dg.AssetExecutionContext,
    tomtom: TomTomResource,
    warehouse: WarehouseResource,
    config: TomTomAvailabilityConfig,
) -> SyncReport:
    """Poll live availability of every mapped TomTom id, concurrently and within QPS."""
    ids = list(config.availability_ids) or mapped_ids(warehouse)
    client = tomtom.client()
    batch = client.poll_many(
        ids, wire_format=config.wire_format
    )  # a 403 raises AuthError here: nothing is written
    answered = [p for p in batch.polls if p.body is not None]
    snapshot_rows = normalize.snapshots(answered)
    latest_rows = normalize.latest(snapshot_rows)
    poll_rows = normalize.poll_log(batch.polls)
    as_of = max((p.polled_at for p in answered), default=None)
    mark = AVAILABILITY_WATERMARK.tracker(warehouse.sync_state(SOURCE, "availability")[0])
    mark.seen(as_of)
    context.log.info(
        "polled %d ids in %.1fs (%d with data, %d without, %d failed), %d requests, %d throttled",
        len(batch.polls),
        batch.seconds,
        batch.count("data"),
        batch.count("no_data"),
        len(batch.failures),
        client.api.stats.requests,
        client.api.stats.throttled,
    )

    def sweep(writer: Writer, valid: dict[str, pd.DataFrame]) -> None:
        if as_of is None:
            return
        # Each answer is complete for its id: a type or power level it no longer lists is gone.
        scope = pd.DataFrame({"availability_id": [p.availability_id for p in answered]})
        writer.flag_missing(LATEST, KEYS[LATEST], latest_rows.frame, as_of, scope_keys=scope)

    outcome = write_sync(
        warehouse,
        source=SOURCE,
        stream="availability",
        run_id=context.run.run_id,
        tables=[
            TableRows(SNAPSHOTS, snapshot_rows.frame, schemas.SNAPSHOTS, KEYS[SNAPSHOTS], snapshot_rows.raw),
            TableRows(
                LATEST, latest_rows.frame, schemas.LATEST, KEYS[LATEST], latest_rows.raw, STATUS[LATEST]
            ),
            TableRows(POLLS, poll_rows.frame, schemas.POLLS, KEYS[POLLS], poll_rows.raw),
        ],
        watermark=mark.value(),
        requests=client.api.stats.requests,
        lineage=f"chargingAvailability.{config.wire_format} x{len(ids)}",
        before_commit=sweep,
    )
    extra = _poll_metadata(batch, client.api.stats.requests, client.api.stats.throttled, tomtom.qps)
    failure = None
    if batch.failures:
        # What was answered is committed above; the failed ids make the run fail, naming their Tracking-IDs.
        sample = "; ".join(
            f"{p.availability_id} (Tracking-ID {p.tracking_id}): {p.error}" for p in batch.failures[:3]
        )
        failure = f"{len(batch.failures)} of {len(batch.polls)} TomTom availability requests failed: {sample}"
    return SyncReport(outcome, client.api.stats.requests, extra, failure=failure)


RESOURCE = ("tomtom", TomTomResource)
tomtom_location_mapping = sync_asset(
    "tomtom_location_mapping",
    [MAPPING_TABLE],
    RESOURCE,
    map_locations,
    config=TomTomMappingConfig,
    deps=[MART_LOCATIONS_KEY, MART_CONNECTORS_KEY],
    description="Match each published mart location to a TomTom POI by distance and connector types.",
)
tomtom_availability = sync_asset(
    "tomtom_availability",
    AVAILABILITY_TABLES,
    RESOURCE,
    poll_availability,
    config=TomTomAvailabilityConfig,
    deps=[MAPPING_KEY],
    description="Poll live availability of every mapped TomTom id, concurrently and within QPS.",
)
ASSETS = [tomtom_location_mapping, tomtom_availability]
RUNS = [
    Run(
        "tomtom_sync",
        "tomtom_availability",
        "TOMTOM_CRON",
        "Map new/moved/unmatched locations to TomTom ids, then poll live availability of every mapped id.",
    ),
]
