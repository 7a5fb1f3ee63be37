"""Dagster side of the real-time lane: the `realtime_lane` job, its supervisor sensor, and `ndw/live`.

Why a long-running run and not a run per change: a Dagster run costs a process launch (seconds of
CPU on a small machine) and a sensor hop costs up to its tick; two hops per change measured 54 s
p50. The lane instead runs inside one run for up to an hour, so a change costs only the cycle that
carries it (about a second), and Dagster still shows every change: the run's log, and
materializations of the source tables, the `mart` tables and `ndw/live` that the lane records every
`report_every` seconds. The `realtime_lane` sensor supervises it: it starts a lane when none is
alive (no fresh heartbeat) and a successor a minute before the current one's deadline.
"""

import contextlib
import signal
import statistics
import threading
from collections.abc import Iterator
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from evpipeline import catalog, settings
from evpipeline.catalog import TABLE_NAME
from evpipeline.datex2.assets import LIVE_KEY as DATEX2_LIVE_KEY
from evpipeline.datex2.delivery import Datex2Lane, status_lock
from evpipeline.lane.cycle import Lane
from evpipeline.lane.feeds import discover, required_resources
from evpipeline.lane.service import Window, lane_dir, run_lane, stop_requested
from evpipeline.model.assets import mart_results
from evpipeline.model.build import MartBuild
from evpipeline.model.keys import MART_KEYS
from evpipeline.ndw.export import nap_countries
from evpipeline.sources.feeds import Feed
from evpipeline.sync import markdown_preview
from evpipeline.warehouse import MergeCounts, WarehouseResource
from evpipeline.warehouse.resource import read_heartbeat

LIVE_KEY = dg.AssetKey(["ndw", "live"])
JOB = "realtime_lane"
STALE_AFTER_SECONDS = 20.0  # a heartbeat older than this: the lane is not running
HANDOVER_SECONDS = 60.0  # start the successor this long before the current lane's deadline
STARTUP_SECONDS = 180.0  # a started lane run beats within this (code load, plus up to its 120 s lock wait)

live_spec = dg.AssetSpec(
    LIVE_KEY,
    group_name="ndw",
    deps=list(MART_KEYS.values()),
    kinds={"python", "ocpi"},
    metadata={
        "dagster/code_references": dg.CodeReferencesMetadataValue(
            code_references=[dg.LocalFileCodeReference(file_path=__file__, label="realtime_lane: lane_loop")]
        )
    },
    description="NDW's copy of our dynamic data, kept within a minute by the real-time lane: "
    "EVSE status PATCHes, changed tariffs (ad-hoc prices) and locations PUT as they change.",
)


class LaneConfig(dg.Config):
    """How long one lane run lives and how it paces itself."""

    max_seconds: float = Field(
        default=3600.0, description="Stop after this long (the supervisor starts the successor)"
    )
    interval_seconds: float = Field(
        default=1.0, description="Wait at most this long between idle cycles (listeners wake it sooner)"
    )
    report_every_seconds: float = Field(
        default=15.0,
        description="Record materializations this often; a quiet window "
        "records an `ndw/live` heartbeat (keep it well under the 1-minute freshness window)",
    )
    max_cycles: int = Field(default=0, description="Stop after this many cycles (0: no limit; tests use it)")
    lock_wait_seconds: float = Field(
        default=120.0, description="Wait this long for the previous lane to hand over"
    )


def _events(window: Window, feeds: list[Feed]) -> Iterator[dg.AssetMaterialization | dg.AssetObservation]:
    """What the lane wrote in a window, as materializations of the assets it keeps fresh (and
    observations naming the deliveries it dead-lettered)."""
    via = {"via": "realtime_lane"}
    for feed in feeds:
        dead = [d for c in window.cycles for r in c.feeds if r.feed == feed.name for d in r.dead_letters]
        if dead:
            import pandas as pd

            yield dg.AssetObservation(
                next(iter(feed.assets.values())),
                metadata={
                    **via,
                    "dead_letters": len(dead),
                    "dead_lettered": dg.MetadataValue.md(
                        markdown_preview(
                            pd.DataFrame(dead), ["message_id", "kind", "status", "reason"], rows=20
                        )
                    ),
                    "table": "ops.dead_letters",
                },
            )
        changed: dict[str, int] = {}
        quarantined: dict[str, int] = {}
        for cycle in window.cycles:
            for report in cycle.feeds:
                if report.feed != feed.name:
                    continue
                for outcome in report.outcomes:
                    for table, result in outcome.tables.items():
                        changed[table] = changed.get(table, 0) + result.counts.changed
                        quarantined[table] = quarantined.get(table, 0) + result.quarantined
        for table, count in changed.items():
            if count and table in feed.assets:
                yield dg.AssetMaterialization(
                    feed.assets[table],
                    metadata={
                        **via,
                        "table": table,
                        "dagster/table_name": table,
                        "rows_changed": count,
                        "quarantined": quarantined.get(table, 0),
                    },
                )
    builds = [c.mart for c in window.cycles if c.mart is not None and c.mart.mode != "idle"]
    if builds:
        total = MartBuild(
            mode=",".join(sorted({b.mode for b in builds})),
            sources=builds[-1].sources,
            seconds=sum(b.seconds for b in builds),
        )
        for build in builds:
            for table, counts in build.counts.items():
                total.counts.setdefault(table, MergeCounts(table))
                total.counts[table] += counts
        total.scope = {k: sum(b.scope.get(k, 0) for b in builds) for k in ("locations", "tariffs")}
        for key, metadata, _checks in mart_results(total):
            table = next(t for t, k in MART_KEYS.items() if k == key)
            if table in total.counts and total.counts[table].changed:
                yield dg.AssetMaterialization(
                    key, metadata={**via, "builds": len(builds), "dagster/table_name": table, **metadata}
                )
    yield from _live_events(window, via)
    yield from _datex2_events(window, via)


def _datex2_events(window: Window, via: dict[str, str]) -> Iterator[dg.AssetMaterialization]:
    """`datex2/live` once per window with deltas: what the receiver was sent and how late."""
    deliveries = [
        c.datex2.delivery for c in window.cycles if c.datex2 is not None and c.datex2.delivery is not None
    ]
    if not deliveries:
        return
    lags = sorted(d.lag_seconds for d in deliveries if d.lag_seconds is not None and d.outcome.ok)
    yield dg.AssetMaterialization(
        DATEX2_LIVE_KEY,
        metadata={
            **via,
            "delta_pushes": len(deliveries),
            "accepted": sum(1 for d in deliveries if d.outcome.ok),
            "points": sum(d.stats.points for d in deliveries if d.stats is not None),
            **(
                {"max_lag_seconds": round(lags[-1], 3), "p50_lag_seconds": round(statistics.median(lags), 3)}
                if lags
                else {}
            ),
            "not_accepted": dg.MetadataValue.json(
                [f"{d.outcome.outcome}: {d.outcome.message[:200]}" for d in deliveries if not d.outcome.ok][
                    :5
                ]
            ),
        },
    )


def _live_events(
    window: Window, via: dict[str, str]
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation]:
    """`ndw/live` once per window: what was pushed, and whether NDW holds what `mart` holds as of the
    window's last cycle. A quiet window that ends in sync is a heartbeat (zero pushes), so the asset's
    one-minute freshness policy watches the lane, not the traffic; a window that ends with pushes
    waiting for a retry records no heartbeat (an observation says why), so the asset goes stale."""
    pushes = [c.push for c in window.cycles if c.push is not None and c.push.run.results]
    results = [(p, o) for push in pushes for p, o in push.run.results]
    in_sync = window.synced_at is not None
    sync: dict[str, Any] = {"in_sync": in_sync, "cycles_in_window": window.seen}
    if in_sync:
        sync["in_sync_as_of"] = dg.MetadataValue.timestamp(window.synced_at or 0.0)
    if window.unhealthy:  # which feed (or step) failed its latest run, as the heartbeat says
        sync["unhealthy"] = ", ".join(window.unhealthy)
    if results:
        problems = [
            {"method": o.method, "key": o.key, "outcome": o.outcome, "message": o.message}
            for _, o in results
            if not o.ok
        ]
        import pandas as pd

        yield dg.AssetMaterialization(
            LIVE_KEY,
            metadata={
                **via,
                **{k: v for k, v in window.summary().items() if v is not None},
                **sync,
                "status_patches": sum(1 for p, _ in results if p.kind == "evse"),
                "location_puts": sum(1 for p, _ in results if p.kind == "location"),
                "tariff_puts": sum(1 for p, _ in results if p.kind == "tariff"),
                "not_accepted": len(problems),
                "problems": dg.MetadataValue.md(
                    markdown_preview(pd.DataFrame(problems), ["method", "key", "outcome", "message"], rows=10)
                ),
            },
        )
    elif in_sync:
        yield dg.AssetMaterialization(
            LIVE_KEY,
            description="Heartbeat: nothing to push, NDW in sync",
            metadata={
                **via,
                **sync,
                "heartbeat": True,
                "status_patches": 0,
                "location_puts": 0,
                "tariff_puts": 0,
                "not_accepted": 0,
            },
        )
    elif window.seen:
        errors = [f"{step}: {message}" for c in window.cycles for step, message in c.errors]
        yield dg.AssetObservation(
            LIVE_KEY,
            metadata={**via, **sync, "reason": (errors[-1] if errors else "pushes wait for a retry")[:500]},
        )


def with_tables(
    warehouse: WarehouseResource, events: list[dg.AssetMaterialization | dg.AssetObservation], log: Any
) -> None:
    """Give the window's table materializations what a sync's carry: live row count and column schema
    (`catalog.table_metadata`), read in one connection after the window's cycles committed."""

    def table_of(event: dg.AssetMaterialization | dg.AssetObservation) -> str | None:
        value = event.metadata.get(TABLE_NAME) if isinstance(event, dg.AssetMaterialization) else None
        return str(value.value) if isinstance(value, dg.MetadataValue) else None

    tables = sorted({t for t in map(table_of, events) if t})
    if not tables:
        return
    try:
        with warehouse.get_connection() as con:
            facts = {table: catalog.table_metadata(con, table) for table in tables}
    except duckdb.Error as exc:  # the counts are a nicety: the window's events are recorded anyway
        log.warning("lane: row counts skipped: %s", exc)
        return
    for i, event in enumerate(events):
        if (table := table_of(event)) is not None:
            events[i] = dg.AssetMaterialization(
                event.asset_key, description=event.description, metadata={**event.metadata, **facts[table]}
            )


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, log: Any) -> Iterator[None]:
    """While the lane runs in the main thread, SIGINT and SIGTERM (Ctrl-C on `dagster dev`, a run
    terminated from the UI, a stopping container) ask it to stop after its cycle, as its deadline does:
    the run ends successfully with its last window reported, instead of failing mid-cycle with a trace.
    Dagster's handlers are back in place afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            log.info("lane: %s received, stopping after the current cycle", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dg.op(required_resource_keys={"warehouse", "ndw", "datex2", *required_resources()}, tags={"kind": "python"})
def lane_loop(context: dg.OpExecutionContext, config: LaneConfig) -> dg.Output[dict[str, Any]]:
    """Feeds -> incremental mart -> NDW pushes, cycle after cycle, until the deadline."""
    resources = {
        key: getattr(context.resources, key) for key in ("warehouse", "ndw", "datex2", *required_resources())
    }
    feeds = discover(resources)
    datex2 = Datex2Lane(
        resources["warehouse"], resources["datex2"], nap_countries(), lock=status_lock(settings.data_dir())
    )
    lane = Lane(resources["warehouse"], resources["ndw"], feeds, datex2=datex2)

    def report(window: Window) -> None:
        events = list(_events(window, feeds))
        with_tables(resources["warehouse"], events, context.log)
        for event in events:
            context.log_event(event)
        if not window.empty:  # a quiet window's heartbeat is its materialization: no log line every 15 s
            context.log.info("lane: %s", window.summary())

    stop = threading.Event()
    with stop_on_signals(stop, context.log):
        outcome = run_lane(
            lane,
            data_dir=settings.data_dir(),
            run_id=context.run_id,
            report=report,
            logger=context.log,
            max_seconds=config.max_seconds,
            interval=config.interval_seconds,
            report_every=config.report_every_seconds,
            max_cycles=config.max_cycles,
            lock_wait_seconds=config.lock_wait_seconds,
            stop=stop,
        )
    if not outcome.acquired:
        context.log.info("lane not started: %s", outcome.stopped_by)
    else:
        context.log.info("lane stopped after %d cycles: %s", outcome.cycles, outcome.stopped_by)
    return dg.Output(
        {"cycles": outcome.cycles, "busy_cycles": outcome.busy_cycles, "stopped_by": outcome.stopped_by}
    )


@dg.job(
    name=JOB,
    description="The real-time lane: every status and price change to NDW within seconds (started by its "
    "sensor).",
    tags={"evpipeline/lane": "true"},
)
def realtime_lane_job() -> None:
    lane_loop()


def lane_state(now: float) -> tuple[str, dict[str, Any] | None]:
    """`alive`, `expiring` (start the successor) or `down`, with the heartbeat."""
    beat = read_heartbeat(lane_dir(settings.data_dir()) / "heartbeat.json")
    if (
        beat is None
        or beat.get("state") != "running"
        or now - float(beat.get("beat_at", 0)) > STALE_AFTER_SECONDS
    ):
        return "down", beat
    if float(beat.get("expires_at", 0)) - now < HANDOVER_SECONDS:
        return "expiring", beat
    return "alive", beat


def lane_starting(instance: dg.DagsterInstance, now: float, beating: str | None = None) -> str | None:
    """Why no lane should be started now: a lane run is queued or starting, or started less than
    `STARTUP_SECONDS` ago without having beaten yet (its process loads the code and waits for the lock
    before its first heartbeat; `beating` is the run of the current heartbeat). A run that started longer
    ago without a heartbeat is taken for dead."""
    statuses = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    for record in instance.get_run_records(filters=dg.RunsFilter(job_name=JOB, statuses=statuses)):
        run = record.dagster_run
        if run.run_id == beating:
            continue
        if run.status != dg.DagsterRunStatus.STARTED:
            return f"a lane run is {run.status.value.lower()} ({run.run_id[:8]})"
        since = record.start_time or record.create_timestamp.timestamp()
        if now - since < STARTUP_SECONDS:
            return f"lane run {run.run_id[:8]} started {now - since:.0f} s ago and has not beaten yet"
    return None


@dg.sensor(
    name="realtime_lane",
    job=realtime_lane_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps exactly one real-time lane running: starts one when none is alive, "
    "and its successor before it ends.",
)
def realtime_lane_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Start a lane run when the heartbeat is stale (and none is starting) or the current one is about to
    end."""
    import time

    now = time.time()
    if (reason := stop_requested(settings.data_dir())) is not None:
        return dg.SensorResult(skip_reason=f"lanes are stopping ({reason}): none is started")
    state, beat = lane_state(now)
    if state == "alive":
        return dg.SensorResult(skip_reason=f"lane alive (run {beat.get('run_id') if beat else '?'})")
    if (starting := lane_starting(context.instance, now, beat.get("run_id") if beat else None)) is not None:
        return dg.SensorResult(skip_reason=starting)
    if state == "expiring" and beat is not None:
        # One successor per predecessor: the run key makes a second request a no-op.
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"lane-after-{beat.get('run_id')}-{beat.get('started_at')}")]
        )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"lane-{int(now)}", tags={"evpipeline/lane": "restart"})]
    )
