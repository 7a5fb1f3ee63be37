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

from evpipeline import settings
from evpipeline.checks import quarantine_checks
from evpipeline.sources.zaptec import normalize, schemas
from evpipeline.sources.zaptec.client import ZaptecResource
from evpipeline.sources.zaptec.tables import CHARGERS, CIRCUITS, INSTALLATIONS, KEYS, STATES, STATUS
from evpipeline.sync import SyncOutcome, TableRows, table_metadata, write_sync
from evpipeline.warehouse import WarehouseResource, Writer

SOURCE = "zaptec"
POOL = "duckdb_writer"
INSTALLATIONS_KEY = dg.AssetKey(["zaptec", "installations"])
CIRCUITS_KEY = dg.AssetKey(["zaptec", "circuits"])
CHARGERS_KEY = dg.AssetKey(["zaptec", "chargers"])
STATES_KEY = dg.AssetKey(["zaptec", "charger_states"])
STATIC_ASSETS = [INSTALLATIONS_KEY, CIRCUITS_KEY, CHARGERS_KEY]
STATE_PREVIEW = ["charger_id", "state_name", "value_as_string", "operation_mode", "last_updated"]


def _ids(warehouse: WarehouseResource, sql: str) -> list[str]:
    with warehouse.get_connection() as con:
        return [row[0] for row in con.execute(sql).fetchall()]


def _sweep_snapshot(table: str, present: pd.DataFrame, as_of: datetime, context: dg.AssetExecutionContext) -> Any:
    """A complete list: whatever the table holds that it no longer contains was removed upstream."""

    def sweep(writer: Writer, valid: dict[str, pd.DataFrame]) -> None:
        if present.empty:  # an empty list is far likelier an access problem than every site removed
            context.log.warning("Zaptec returned no rows for %s; not flagging anything deleted", table)
            return
        writer.flag_missing(table, KEYS[table], present, as_of)

    return sweep


@dg.asset(
    key=INSTALLATIONS_KEY,
    group_name="zaptec",
    pool=POOL,
    kinds={"duckdb", "python"},
    description="Zaptec installations (NO, NL) with an explicit public/private flag; refreshed hourly.",
)
def zaptec_installations(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Zaptec installations: business sites and private homes, the latter never to be published."""
    client = zaptec.client()
    pull = client.installations()
    rows = normalize.installations(pull.records, pull.server_time, client.countries())
    present = rows.frame[["installation_id"]].dropna()
    outcome = write_sync(
        warehouse, source=SOURCE, stream="installations", run_id=context.run.run_id,
        tables=[TableRows(INSTALLATIONS, rows.frame, schemas.INSTALLATIONS, KEYS[INSTALLATIONS], rows.raw)],
        watermark=pull.server_time, requests=client.api.stats.requests, lineage=f"pull:api/installation pages={pull.pages}",
        before_commit=_sweep_snapshot(INSTALLATIONS, present, pull.server_time, context),
    )
    public = int(rows.frame["is_public"].sum()) if len(rows.frame) else 0
    return dg.MaterializeResult(
        metadata=table_metadata(
            outcome[INSTALLATIONS], requests=client.api.stats.requests, watermark=pull.server_time,
            preview_columns=["installation_id", "name", "city", "country", "country_source", "is_public",
                             "visibility_reason"],
            extra={"pages": pull.pages, "public": public, "private": len(rows.frame) - public},
        )
    )


@dg.asset(
    key=CIRCUITS_KEY,
    deps=[INSTALLATIONS_KEY],
    group_name="zaptec",
    pool=POOL,
    kinds={"duckdb", "python"},
    description="Circuits of each cached Zaptec installation, from its hierarchy (204 = no access: skipped).",
)
def zaptec_circuits(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
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
        context.log.info("no hierarchy access (204) for %d installation(s); their circuits stay as they were", len(no_access))
    as_of = as_of or pd.Timestamp.now(tz="UTC").to_pydatetime()
    rows = normalize.circuits(trees, as_of)
    # Sweep only installations whose tree we read, plus installations that are gone altogether.
    gone = _ids(warehouse, f"SELECT DISTINCT installation_id FROM {CIRCUITS} WHERE NOT is_deleted AND installation_id NOT IN "
                           f"(SELECT installation_id FROM {INSTALLATIONS} WHERE NOT is_deleted)")
    scope = pd.DataFrame({"installation_id": [i for i, _ in trees] + gone})

    def sweep(writer: Writer, valid: dict[str, pd.DataFrame]) -> None:
        if not scope.empty:
            writer.flag_missing(CIRCUITS, KEYS[CIRCUITS], rows.frame[["circuit_id"]].dropna(), as_of, scope_keys=scope)

    outcome = write_sync(
        warehouse, source=SOURCE, stream="circuits", run_id=context.run.run_id,
        tables=[TableRows(CIRCUITS, rows.frame, schemas.CIRCUITS, KEYS[CIRCUITS], rows.raw)],
        watermark=as_of, requests=client.api.stats.requests, lineage=f"pull:hierarchy of {len(trees)} installations",
        before_commit=sweep,
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            outcome[CIRCUITS], requests=client.api.stats.requests, watermark=as_of,
            preview_columns=["circuit_id", "installation_id", "name", "max_current", "is_active"],
            extra={"hierarchies": len(trees), "no_access": len(no_access), "no_access_ids": dg.MetadataValue.json(no_access[:50])},
        )
    )


@dg.asset(
    key=CHARGERS_KEY,
    deps=[INSTALLATIONS_KEY],
    group_name="zaptec",
    pool=POOL,
    kinds={"duckdb", "python"},
    description="Zaptec chargers (static data; live state is in zaptec/charger_states); refreshed hourly.",
)
def zaptec_chargers(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Every charger the account can see: the list state polling works from."""
    client = zaptec.client()
    pull = client.chargers()
    rows = normalize.chargers(pull.records, pull.server_time)
    present = rows.frame[["charger_id"]].dropna()
    outcome = write_sync(
        warehouse, source=SOURCE, stream="chargers", run_id=context.run.run_id,
        tables=[TableRows(CHARGERS, rows.frame, schemas.CHARGERS, KEYS[CHARGERS], rows.raw)],
        watermark=pull.server_time, requests=client.api.stats.requests, lineage=f"pull:api/chargers pages={pull.pages}",
        before_commit=_sweep_snapshot(CHARGERS, present, pull.server_time, context),
    )
    return dg.MaterializeResult(
        metadata=table_metadata(
            outcome[CHARGERS], requests=client.api.stats.requests, watermark=pull.server_time,
            preview_columns=["charger_id", "installation_id", "device_id", "name", "model", "active"],
            extra={"pages": pull.pages},
        )
    )


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
        warehouse, source=SOURCE, stream=stream, run_id=run_id,
        tables=[TableRows(STATES, rows.frame, schemas.STATES, KEYS[STATES], rows.raw, STATUS[STATES])],
        watermark=watermark, requests=requests, lineage=lineage, before_commit=before_commit,
    )


@dg.asset(
    key=STATES_KEY,
    deps=[CHARGERS_KEY],
    group_name="zaptec",
    pool=POOL,
    kinds={"duckdb", "python"},
    description="Latest value of every Zaptec charger observation (charger x StateId), typed; "
    "operation-mode transitions in ops.status_history.",
)
def zaptec_charger_states(
    context: dg.AssetExecutionContext, zaptec: ZaptecResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Charger states polled from every cached charger (the fallback for missed Service Bus messages)."""
    client = zaptec.client()
    charger_ids = _ids(warehouse, f"SELECT charger_id FROM {CHARGERS} WHERE NOT is_deleted ORDER BY 1")
    if not charger_ids:  # no cache yet: the list itself is needed now, so it goes at poll priority
        charger_ids = [str(r.get("Id")) for r in client.chargers(priority=0).records if r.get("Id")]
    poll = client.poll_states(charger_ids)
    outcome = merge_observations(
        warehouse, poll.observations, run_id=context.run.run_id, stream="state_poll", requests=client.api.stats.requests,
        watermark=poll.server_time, lineage=f"poll:/state of {poll.polled} chargers",
    )
    if poll.missing:
        context.log.warning("%d charger(s) answered 403/404 (removed?); the hourly static refresh will flag them", len(poll.missing))
    stats = client.api.stats
    return dg.MaterializeResult(
        metadata=table_metadata(
            outcome[STATES], requests=stats.requests, watermark=poll.server_time, preview_columns=STATE_PREVIEW,
            extra={
                "mode": "poll",
                "chargers_polled": poll.polled,
                "chargers_missing": len(poll.missing),
                "chargers_failed": len(poll.failed),
                "http_429": stats.throttled,
                "requests_per_second": round(stats.requests / poll.seconds, 2) if poll.seconds else 0.0,
            },
        )
    )


zaptec_checks = quarantine_checks(
    [(INSTALLATIONS_KEY, INSTALLATIONS), (CIRCUITS_KEY, CIRCUITS), (CHARGERS_KEY, CHARGERS), (STATES_KEY, STATES)]
)
zaptec_static_job = dg.define_asset_job(
    "zaptec_static",
    selection=dg.AssetSelection.assets(*STATIC_ASSETS),
    description="Refresh the cached Zaptec static data: installations, circuits (hierarchies), chargers.",
)
zaptec_states_job = dg.define_asset_job(
    "zaptec_states",
    selection=dg.AssetSelection.assets(STATES_KEY),
    description="Poll every cached Zaptec charger's state (the fallback for missed messages).",
)
zaptec_static_schedule = dg.ScheduleDefinition(
    name="zaptec_static_hourly",
    job=zaptec_static_job,
    cron_schedule=settings.get("ZAPTEC_STATIC_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly refresh of Zaptec installations, circuits and chargers (ZAPTEC_STATIC_CRON).",
)
zaptec_states_schedule = dg.ScheduleDefinition(
    name="zaptec_states_poll",
    job=zaptec_states_job,
    cron_schedule=settings.get("ZAPTEC_STATE_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Zaptec charger-state poll every 15 minutes by default (ZAPTEC_STATE_CRON); messages cover the gaps.",
)
