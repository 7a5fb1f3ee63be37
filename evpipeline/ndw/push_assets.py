"""Dagster side of the NDW full push: the `ndw/push` asset and its check, a job and its hourly schedule.

Changes reach NDW within seconds on the real-time lane (`evpipeline.lane`, asset `ndw/live`),
which runs the same planner limited to what changed. This hourly full diff is the reconciliation:
it sends what the lane could not (a first push of a whole fleet, withdrawn locations, tariff
DELETEs, anything NDW lost) and keeps NDW's 24 hours for static data whatever happened.
"""

import statistics
from collections import Counter
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline.model.keys import MART_KEYS
from evpipeline.ndw.push import NdwPushResource
from evpipeline.ndw.push_sync import PushPlan, PushRun, execute, plan_pushes, record_full
from evpipeline.run_config import op_config
from evpipeline.sync import markdown_preview
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WarehouseResource

PUSH_KEY = dg.AssetKey(["ndw", "push"])
CHECK_NAME = "pushes_accepted"
# Not `duckdb_writer`: that pool is held for minutes by HTTP-bound sync ops (a TomTom poll, a full
# pull). This asset holds DuckDB only for two short transactions (DuckDB's file lock and
# `connect`'s backoff serialize those); its own pool (limit 1, dagster.yaml's default_limit) keeps
# two push runs from diffing at the same time.
PUSH_POOL = "ndw_push"


class NdwPushConfig(dg.Config):
    """What a push run covers."""

    static: bool = Field(
        default=True,
        description="Also diff the export and PUT/DELETE changed Locations and Tariffs (hourly); false: "
        "EVSE status PATCHes only",
    )


@dg.asset(
    key=PUSH_KEY,
    group_name="ndw",
    deps=list(MART_KEYS.values()),
    pool=PUSH_POOL,
    kinds={"python", "ocpi"},
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=PUSH_KEY,
            description="Every push NDW got was accepted (no OCPI 2xxx, 4xx or persistent failure)",
        )
    ],
)
def ndw_push(
    context: dg.AssetExecutionContext,
    config: NdwPushConfig,
    warehouse: WarehouseResource,
    ndw: NdwPushResource,
) -> dg.MaterializeResult:
    """Push changes to NDW (OCPI 2.2.1): EVSE status PATCHes; with `static`,
    Location/Tariff PUTs and tariff DELETEs."""
    with warehouse.get_connection() as con:
        plan = plan_pushes(con, static=config.static, now=utcnow(), max_static_pushes=ndw.max_static_pushes)
    client = ndw.client()
    try:
        run = execute(
            plan, client, concurrency=ndw.concurrency, max_consecutive_failures=ndw.max_consecutive_failures
        )
        stats = {
            "requests": client.http.stats.requests,
            "retries": client.http.stats.retries,
            "tokens_fetched": client.tokens_fetched,
        }
    finally:
        client.close()
    run_id = context.run.run_id
    with warehouse.writer("ndw", run_id) as writer:  # the log and NDW's new state: one transaction
        record_full(writer, plan, run)
    if run.auth_error is not None:
        context.log.error(
            "NDW refused our credentials; %d push(es) recorded before stopping", len(run.results)
        )
        raise run.auth_error
    metadata, check = summarize(plan, run)
    for _, outcome in run.results:
        if not outcome.ok:
            context.log.warning(
                "%s %s -> %s (HTTP %s, OCPI %s): %s",
                outcome.method,
                outcome.path,
                outcome.outcome,
                outcome.http_status,
                outcome.ocpi_status,
                outcome.message,
            )
    return dg.MaterializeResult(metadata={**metadata, **stats}, check_results=[check])


def summarize(plan: PushPlan, run: PushRun) -> tuple[dict[str, Any], dg.AssetCheckResult]:
    """Materialization metadata (pushes by outcome, lag, rejections) and the check result."""
    by_outcome = Counter(outcome.outcome for _, outcome in run.results)
    lags = [
        (o.pushed_at - p.recorded_at).total_seconds()
        for p, o in run.results
        if o.ok and p.recorded_at is not None
    ]
    problems = pd.DataFrame(
        [
            {
                "method": o.method,
                "key": o.key,
                "outcome": o.outcome,
                "http": o.http_status,
                "ocpi": o.ocpi_status,
                "message": o.message,
            }
            for _, o in run.results
            if not o.ok
        ]
    )
    held = pd.DataFrame(run.held_back)
    metadata: dict[str, Any] = {
        "mode": "static + status" if plan.static else "status",
        "pushes": len(run.results),
        **{
            f"pushes_{name}": by_outcome.get(name, 0)
            for name in ("accepted", "rejected", "failed", "not_found", "invalid_json")
        },
        "status_patches": sum(1 for p, _ in run.results if p.kind == "evse"),
        "location_puts": sum(1 for p, _ in run.results if p.kind == "location"),
        "tariff_puts": sum(1 for p, _ in run.results if p.kind == "tariff" and p.method == "PUT"),
        "tariff_deletes": sum(1 for p, _ in run.results if p.method == "DELETE"),
        "deferred": len(run.deferred),
        "held_back": len(run.held_back),
        "max_lag_seconds": round(max(lags), 3) if lags else None,
        "median_lag_seconds": round(statistics.median(lags), 3) if lags else None,
        "rejected": dg.MetadataValue.md(
            markdown_preview(problems, ["method", "key", "outcome", "http", "ocpi", "message"], rows=20)
        ),
        "held_back_objects": dg.MetadataValue.md(markdown_preview(held, ["kind", "key", "reason"], rows=20)),
    }
    metadata = {k: v for k, v in metadata.items() if v is not None}
    still_rejected = sum(1 for h in run.held_back if "rejected" in h["reason"])
    failed = len(problems) + len(run.deferred)
    check = dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=failed == 0 and still_rejected == 0,
        # A rejection NDW already reported (content unchanged since) warns; new failures are errors.
        severity=dg.AssetCheckSeverity.ERROR if failed else dg.AssetCheckSeverity.WARN,
        metadata={
            "not_accepted": len(problems),
            "deferred": len(run.deferred),
            "still_rejected": still_rejected,
            "by_outcome": dg.MetadataValue.json(dict(by_outcome)),
            "rejected": metadata["rejected"],
        },
    )
    return metadata, check


ndw_push_full_job = dg.define_asset_job(
    "ndw_push_full",
    selection=[PUSH_KEY],
    config=op_config([ndw_push], static=True),
    description="PUT new/changed Locations and Tariffs, DELETE withdrawn Tariffs, PATCH statuses: "
    "NDW in step with the export.",
    tags={"ndw/push": "full"},
)
ndw_push_schedule = dg.ScheduleDefinition(
    name="ndw_push_hourly",
    job=ndw_push_full_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    # Running by default: NDW's 24-hour rule for static changes is a delivery obligation.
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Static changes to NDW every hour (NDW allows 24 h); also re-sends anything a status run "
    "could not.",
)
