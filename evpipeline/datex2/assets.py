"""Dagster side of the DATEX II pushes: `datex2/static_push`, `datex2/status_snapshot` and `datex2/live`.

Status and ad hoc price changes reach the receiver within seconds as `deltaPush`es from the
real-time lane (`datex2/live`, recorded by the lane). The static table goes out every 15 minutes
when anything in it changed (AFIR allows 24 hours), and a `snapshotPush` of every status at least
daily (the profile: at least every 24 hours) and on demand (launch `datex2_status_snapshot`).
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from evpipeline import settings
from evpipeline.datex2.client import Datex2PushResource
from evpipeline.datex2.delivery import Delivery, push_static, push_statuses, status_lock
from evpipeline.model.keys import MART_KEYS
from evpipeline.ndw.export import nap_countries
from evpipeline.sync import markdown_preview
from evpipeline.warehouse import WarehouseResource

STATIC_KEY = dg.AssetKey(["datex2", "static_push"])
SNAPSHOT_KEY = dg.AssetKey(["datex2", "status_snapshot"])
LIVE_KEY = dg.AssetKey(["datex2", "live"])
CHECK_NAME = "accepted"
# Own pool (limit 1, dagster.yaml's default): two pushes never diff at the same time; the
# warehouse is held only while the documents are built and for the short transaction after.
PUSH_POOL = "datex2_push"

live_spec = dg.AssetSpec(
    LIVE_KEY,
    group_name="datex2",
    deps=list(MART_KEYS.values()),
    kinds={"python", "json"},
    metadata={
        "dagster/code_references": dg.CodeReferencesMetadataValue(
            code_references=[
                dg.LocalFileCodeReference(
                    file_path=str(Path(__file__).parent / "delivery.py"), label="Datex2Lane.cycle"
                )
            ]
        )
    },
    description="The DATEX II receiver's copy of our dynamic data (status, ad hoc price), "
    "kept within a minute by the real-time lane's deltaPush publications.",
)


def _result(delivery: Delivery | None, what: str) -> dg.MaterializeResult:
    if delivery is None:
        return dg.MaterializeResult(
            metadata={"pushed": False, "reason": what},
            check_results=[dg.AssetCheckResult(check_name=CHECK_NAME, passed=True)],
        )
    o = delivery.outcome
    metadata: dict[str, Any] = {
        "pushed": delivery.pushed,
        "outcome": o.outcome,
        "http_status": o.http_status or 0,
        "attempts": o.attempts,
        "bytes": o.bytes,
        "elapsed_ms": o.elapsed_ms,
        "seconds": round(delivery.seconds, 3),
        "sites": delivery.stats.sites if delivery.stats else 0,
        "points": delivery.stats.points if delivery.stats else 0,
        "table_version": delivery.table_version or "",
        "delivery": o.delivery or "",
    }
    if o.message:
        errors = pd.DataFrame({"error": o.message.split("; ")})
        metadata["errors"] = dg.MetadataValue.md(markdown_preview(errors, ["error"], rows=20))
    check = dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=o.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"outcome": o.outcome, "message": (o.message or "")[:500]},
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


@dg.asset(
    key=STATIC_KEY,
    group_name="datex2",
    deps=list(MART_KEYS.values()),
    pool=PUSH_POOL,
    kinds={"python", "json"},
    check_specs=[
        dg.AssetCheckSpec(CHECK_NAME, asset=STATIC_KEY, description="The receiver accepted the static table")
    ],
)
def datex2_static_push(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, datex2: Datex2PushResource
) -> dg.MaterializeResult:
    """AFIR DATEX II static table to the access point's receiver, when anything in it changed."""
    countries = nap_countries()
    delivery = push_static(warehouse, datex2, countries, run_id=context.run.run_id)
    if delivery is not None and not delivery.outcome.ok:
        context.log.warning(
            "DATEX II static table %s: %s", delivery.outcome.outcome, delivery.outcome.message[:1000]
        )
    result = _result(delivery, "the receiver holds this table already")
    if (
        delivery is not None and delivery.outcome.ok
    ):  # new points get their status at once, not at the next change
        catch_up = push_statuses(
            warehouse,
            datex2,
            countries,
            run_id=context.run.run_id,
            snapshot=False,
            lock=status_lock(settings.data_dir()),
        )
        if catch_up is not None:
            result.metadata["catch_up_points"] = catch_up.stats.points if catch_up.stats else 0  # type: ignore[index]
            result.metadata["catch_up_outcome"] = catch_up.outcome.outcome  # type: ignore[index]
    return result


@dg.asset(
    key=SNAPSHOT_KEY,
    group_name="datex2",
    deps=[STATIC_KEY],
    pool=PUSH_POOL,
    kinds={"python", "json"},
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_NAME, asset=SNAPSHOT_KEY, description="The receiver accepted the status snapshot"
        )
    ],
)
def datex2_status_snapshot(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, datex2: Datex2PushResource
) -> dg.MaterializeResult:
    """Every charging point's status and ad hoc price to the DATEX II receiver (snapshotPush)."""
    delivery = push_statuses(
        warehouse,
        datex2,
        nap_countries(),
        run_id=context.run.run_id,
        snapshot=True,
        lock=status_lock(settings.data_dir()),  # never crosses a lane delta in flight
    )
    return _result(delivery, "the receiver holds no static table yet")


datex2_static_job = dg.define_asset_job(
    "datex2_static_push",
    selection=[STATIC_KEY],
    description="Push the AFIR DATEX II static table when it changed.",
)
datex2_snapshot_job = dg.define_asset_job(
    "datex2_status_snapshot",
    selection=[STATIC_KEY, SNAPSHOT_KEY],
    description="Push the static table if it changed, then every status (snapshotPush).",
)
datex2_static_schedule = dg.ScheduleDefinition(
    name="datex2_static_push_15min",
    job=datex2_static_job,
    cron_schedule=settings.get("DATEX2_STATIC_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Static changes to the DATEX II receiver within 15 minutes (AFIR allows 24 hours).",
)
datex2_snapshot_schedule = dg.ScheduleDefinition(
    name="datex2_status_snapshot_daily",
    job=datex2_snapshot_job,
    cron_schedule=settings.get("DATEX2_SNAPSHOT_CRON"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="A snapshotPush of every status at least every 24 hours (the profile's rule); "
    "deltas come from the lane.",
)
