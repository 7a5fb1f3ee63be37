"""Zaptec assets in schema `zaptec`: installations, circuits and chargers (static), charger states (live).

Static data is the local cache that state polling works from: the hourly `zaptec_static` job
lists installations and chargers (100 per page) and reads each installation's hierarchy for its
circuits, all at low limiter priority. Charger states arrive as Service Bus messages, which the
real-time lane stores and merges (`live.py`); every 15 minutes the `zaptec_states` job polls each
cached charger's /state as the fallback. Observations are merged as of their own
timestamps, so late or replayed messages never overwrite newer values, and every operation-mode
transition lands in `ops.status_history`.
"""

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd

from evpipeline.sources.kit import Run, SyncReport, Table, sync_asset
from evpipeline.sources.zaptec import normalize, schemas
from evpipeline.sources.zaptec.client import ZaptecResource
from evpipeline.sources.zaptec.tables import CHARGERS, CIRCUITS, INSTALLATIONS, KEYS, STATES, STATUS
from evpipeline.sync import SyncOutcome, TableRows, write_snapshot, write_sync
from evpipeline.warehouse import WarehouseResource, Writer
from evpipeline.watermarks import Clock, WatermarkRule

SOURCE = "zaptec"
# Zaptec has no delta API: every list is complete, stamped with the server time of its first page.
WATERMARK = WatermarkRule(Clock.SERVER)
INSTALLATIONS_TABLE = Table(
    INSTALLATIONS,
    "Zaptec installations (NO, NL) with an explicit public/private flag; refreshed hourly.",
    ["installation_id", "name", "city", "country", "country_source", "is_public", "visibility_reason"],
)
CIRCUITS_TABLE = Table(
    CIRCUITS,
    "Circuits of each cached Zaptec installation, from its hierarchy (204 = no access: skipped).",
    ["circuit_id", "installation_id", "name", "max_current", "is_active"],
)
CHARGERS_TABLE = Table(
    CHARGERS,
    "Zaptec chargers (static data; live state is in zaptec/charger_states); refreshed hourly.",
    ["charger_id", "installation_id", "device_id", "name", "model", "active"],
)
STATES_TABLE = Table(
    STATES,
    "Latest value of every Zaptec charger observation (charger x StateId), typed; "
    "operation-mode transitions in ops.status_history.",
    ["charger_id", "state_name", "value_as_string", "operation_mode", "last_updated"],
)
INSTALLATIONS_KEY, CIRCUITS_KEY, CHARGERS_KEY, STATES_KEY = (
    t.key for t in (INSTALLATIONS_TABLE, CIRCUITS_TABLE, CHARGERS_TABLE, STATES_TABLE)
)


def _ids(warehouse: WarehouseResource, sql: str) -> list[str]:
    with warehouse.get_connection() as con:
        return [row[0] for row in con.execute(sql).fetchall()]


def _watermark(warehouse: WarehouseResource, stream: str, server_time: datetime) -> datetime | None:
    mark = WATERMARK.tracker(warehouse.sync_state(SOURCE, stream)[0])
    mark.page(server_time)
    return mark.value()


def sync_installations(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> SyncReport:
    """Zaptec installations: business sites and private homes, the latter never to be published."""
    client = zaptec.client()
    pull = client.installations()
    rows = normalize.installations(pull.records, pull.server_time, client.countries())
    outcome = write_snapshot(
        warehouse,
        TableRows(INSTALLATIONS, rows.frame, schemas.INSTALLATIONS, KEYS[INSTALLATIONS], rows.raw),
        source=SOURCE,
        stream="installations",
        run_id=context.run.run_id,
        as_of=pull.server_time,
        watermark=_watermark(warehouse, "installations", pull.server_time),
        requests=client.api.stats.requests,
        lineage=f"pull:api/installation pages={pull.pages}",
        log=context.log,
    )
    public = int(rows.frame["is_public"].sum()) if len(rows.frame) else 0
    return SyncReport(
        outcome,
        client.api.stats.requests,
        {"pages": pull.pages, "public": public, "private": len(rows.frame) - public},
    )


def sync_circuits(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> SyncReport:
    """Circuits per installation from /hierarchy; installations the account may not see answer 204."""
    client = zaptec.client()
    ids = _ids(warehouse, f"SELECT installation_id FROM {INSTALLATIONS} WHERE NOT is_deleted ORDER BY 1")
    if not ids:  # no cache yet (the installations asset never ran): list them
        ids = [str(r.get("Id")) for r in client.installations().records if r.get("Id")]
    trees: list[tuple[str, dict[str, Any]]] = []
    no_access: list[str] = []
    as_of: datetime | None = None
    for installation_id in ids:
        tree, server_time = client.hierarchy(installation_id)
        as_of = as_of or server_time
        if tree is None:
            no_access.append(installation_id)
        else:
            trees.append((installation_id, tree))
    if no_access:
        context.log.info(
            "no hierarchy access (204) for %d installation(s); their circuits stay as they were",
            len(no_access),
        )
    as_of = as_of or pd.Timestamp.now(tz="UTC").to_pydatetime()
    rows = normalize.circuits(trees, as_of)
    # Sweep only installations whose tree we read, plus installations that are gone altogether.
    gone = _ids(
        warehouse,
        f"SELECT DISTINCT installation_id FROM {CIRCUITS} WHERE NOT is_deleted AND installation_id NOT IN "
        f"(SELECT installation_id FROM {INSTALLATIONS} WHERE NOT is_deleted)",
    )
    scope = pd.DataFrame({"installation_id": [i for i, _ in trees] + gone})

    def sweep(writer: Writer, valid: dict[str, pd.DataFrame]) -> None:
        if not scope.empty:
            writer.flag_missing(
                CIRCUITS, KEYS[CIRCUITS], rows.frame[["circuit_id"]].dropna(), as_of, scope_keys=scope
            )

    outcome = write_sync(
        warehouse,
        source=SOURCE,
        stream="circuits",
        run_id=context.run.run_id,
        tables=[TableRows(CIRCUITS, rows.frame, schemas.CIRCUITS, KEYS[CIRCUITS], rows.raw)],
        watermark=_watermark(warehouse, "circuits", as_of),
        requests=client.api.stats.requests,
        lineage=f"pull:hierarchy of {len(trees)} installations",
        before_commit=sweep,
    )
    return SyncReport(
        outcome,
        client.api.stats.requests,
        {
            "hierarchies": len(trees),
            "no_access": len(no_access),
            "no_access_ids": dg.MetadataValue.json(no_access[:50]),
        },
    )


def sync_chargers(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> SyncReport:
    """Every charger the account can see: the list state polling works from."""
    client = zaptec.client()
    pull = client.chargers()
    rows = normalize.chargers(pull.records, pull.server_time)
    outcome = write_snapshot(
        warehouse,
        TableRows(CHARGERS, rows.frame, schemas.CHARGERS, KEYS[CHARGERS], rows.raw),
        source=SOURCE,
        stream="chargers",
        run_id=context.run.run_id,
        as_of=pull.server_time,
        watermark=_watermark(warehouse, "chargers", pull.server_time),
        requests=client.api.stats.requests,
        lineage=f"pull:api/chargers pages={pull.pages}",
        log=context.log,
    )
    return SyncReport(outcome, client.api.stats.requests, {"pages": pull.pages})


def merge_observations(
    warehouse: WarehouseResource,
    observations: Iterable[Any],
    *,
    run_id: str | None,
    stream: str,
    lineage: str,
    requests: int | None = None,
    watermark: datetime | None = None,
    before_commit: Callable[[Writer, dict[str, pd.DataFrame]], None] | None = None,
) -> SyncOutcome:
    """Validate and merge observations (polled or pushed) as of their own timestamps."""
    rows = normalize.observations(observations)
    return write_sync(
        warehouse,
        source=SOURCE,
        stream=stream,
        run_id=run_id,
        tables=[TableRows(STATES, rows.frame, schemas.STATES, KEYS[STATES], rows.raw, STATUS[STATES])],
        watermark=watermark,
        requests=requests,
        lineage=lineage,
        before_commit=before_commit,
    )


def poll_charger_states(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> SyncReport:
    """Charger states polled from every cached charger (the fallback for missed Service Bus messages)."""
    client = zaptec.client()
    charger_ids = _ids(warehouse, f"SELECT charger_id FROM {CHARGERS} WHERE NOT is_deleted ORDER BY 1")
    if not charger_ids:  # no cache yet: the list itself is needed now, so it goes at poll priority
        charger_ids = [str(r.get("Id")) for r in client.chargers(priority=0).records if r.get("Id")]
    poll = client.poll_states(charger_ids)
    outcome = merge_observations(
        warehouse,
        poll.observations,
        run_id=context.run.run_id,
        stream="state_poll",
        requests=client.api.stats.requests,
        watermark=_watermark(warehouse, "state_poll", poll.server_time) if poll.server_time else None,
        lineage=f"poll:/state of {poll.polled} chargers",
    )
    if poll.missing:
        context.log.warning(
            "%d charger(s) answered 403/404 (removed?); the hourly static refresh will flag them",
            len(poll.missing),
        )
    stats = client.api.stats
    return SyncReport(
        outcome,
        stats.requests,
        {
            "mode": "poll",
            "chargers_polled": poll.polled,
            "chargers_missing": len(poll.missing),
            "chargers_failed": len(poll.failed),
            "http_429": stats.throttled,
            "requests_per_second": round(stats.requests / poll.seconds, 2) if poll.seconds else 0.0,
        },
    )


RESOURCE = ("zaptec", ZaptecResource)
zaptec_installations = sync_asset("zaptec_installations", [INSTALLATIONS_TABLE], RESOURCE, sync_installations)
zaptec_circuits = sync_asset(
    "zaptec_circuits", [CIRCUITS_TABLE], RESOURCE, sync_circuits, deps=[INSTALLATIONS_KEY]
)
zaptec_chargers = sync_asset(
    "zaptec_chargers", [CHARGERS_TABLE], RESOURCE, sync_chargers, deps=[INSTALLATIONS_KEY]
)
zaptec_charger_states = sync_asset(
    "zaptec_charger_states", [STATES_TABLE], RESOURCE, poll_charger_states, deps=[CHARGERS_KEY]
)
STATIC_ASSETS = [zaptec_installations, zaptec_circuits, zaptec_chargers]
ASSETS = [*STATIC_ASSETS, zaptec_charger_states]
RUNS = [
    Run(
        "zaptec_static",
        "zaptec_static_hourly",
        "ZAPTEC_STATIC_CRON",
        "Refresh the cached Zaptec static data: installations, circuits (hierarchies), chargers.",
        assets=STATIC_ASSETS,
    ),
    Run(
        "zaptec_states",
        "zaptec_states_poll",
        "ZAPTEC_STATE_CRON",
        "Poll every cached Zaptec charger's state (the fallback for missed Service Bus messages).",
        assets=[zaptec_charger_states],
    ),
]
