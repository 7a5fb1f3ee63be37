"""One cycle of the real-time lane: feeds -> incremental mart -> pushes of what changed to NDW.

1. **Feeds** (`feeds.py`): each source that has changes merges them into its tables.
2. **Model**: `build_mart` maps whatever was ingested since the model's watermark, from any path
   (a feed, a scheduled delta, a repair, a manual run), into `mart`.
3. **Push**: the locations and tariffs the mart changed since the lane's push cursor
   (`ops.sync_state` ndw/lane) are diffed against what NDW holds, with the same planner the hourly
   full push uses, limited to that scope: EVSE status PATCHes, PUTs of changed tariffs (ad-hoc
   prices) and of locations whose static content changed (tariff_ids included). The cursor
   advances, in the transaction that records the pushes, only when every push was answered;
   otherwise the same scope is diffed again next cycle (after a backoff), so nothing is skipped.
4. **DATEX II**: the same changes, as one `deltaPush` status publication of the charging points
   whose status or ad hoc price differs from what the DATEX II receiver holds
   (`evpipeline.datex2.delivery.Datex2Lane`, its own cursor datex2/lane, the same guarantees).

When nothing arrived and the warehouse files did not change since the lane last looked, a cycle
opens no DuckDB connection at all: an idle lane costs a few `stat` calls.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from evpipeline.datex2.delivery import Datex2Lane, LaneDelta
from evpipeline.model.build import MartBuild, build_mart
from evpipeline.model.tables import CONNECTORS, EVSES, LOCATIONS, TARIFFS
from evpipeline.ndw.export import SCOPE_LOCATIONS, SCOPE_TARIFFS
from evpipeline.ndw.push import NdwPushResource
from evpipeline.ndw.push_sync import (
    LANE_STREAM,
    PushPlan,
    PushRun,
    execute,
    mart_newest,
    plan_pushes,
    record,
    settled,
)
from evpipeline.ndw.push_sync import SOURCE as NDW_SOURCE
from evpipeline.sources.feeds import Feed, FeedReport
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WarehouseResource, read_sync_state

log = logging.getLogger("evpipeline.lane")
PUSH_SOURCE, PUSH_STREAM = NDW_SOURCE, LANE_STREAM
# Re-diff this much before the cursor: harmless (a diff), and it absorbs a small clock step between
# writers. No write can commit while the lane reads (DuckDB's file lock), so nothing else is needed.
OVERLAP = timedelta(seconds=1)
FAILURE_LOG_SECONDS = 60.0  # a step failing every cycle is logged at least this often (and on doubling)


@dataclass
class PushReport:
    plan: PushPlan
    run: PushRun
    scope: dict[str, int]
    cursor: datetime | None
    advanced: bool
    seconds: float

    def count(self, outcome: str) -> int:
        return sum(1 for _, o in self.run.results if o.outcome == outcome)


@dataclass
class StepHealth:
    """One feed's (or step's) progress as the heartbeat tells it: its last success, not the loop's
    liveness (a loop that fails every cycle is alive and useless)."""

    ok_at: float | None = None  # time.time() of its last successful run
    failures: int = 0  # consecutive failed runs
    error: str | None = None  # the latest failure
    error_at: float | None = None
    logged_at: float | None = None  # when a failure of this streak was last logged

    def succeeded(self, now: float) -> bool:
        """Record a success; True when it ends a streak of failures (worth a log line)."""
        recovered = self.failures > 0
        self.ok_at, self.failures, self.logged_at = now, 0, None
        return recovered

    def failed(self, now: float, error: str) -> bool:
        """Record a failure; True when it is worth a log line. A backend that is down fails every
        cycle (about one a second): its 1st, 2nd, 4th, 8th ... failure in a row is logged, and at
        least one a minute, instead of every one."""
        self.failures, self.error, self.error_at = self.failures + 1, error[:300], now
        power_of_two = self.failures & (self.failures - 1) == 0
        if power_of_two or self.logged_at is None or now - self.logged_at >= FAILURE_LOG_SECONDS:
            self.logged_at = now
            return True
        return False

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "healthy": self.failures == 0,
            "failures": self.failures,
            "last_ok_seconds_ago": None if self.ok_at is None else round(now - self.ok_at, 1),
            **(
                {"error": self.error, "error_seconds_ago": round(now - (self.error_at or now), 1)}
                if self.error
                else {}
            ),
        }


@dataclass
class CycleReport:
    started: float
    feeds: list[FeedReport] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (step, message)
    mart: MartBuild | None = None
    push: PushReport | None = None
    datex2: LaneDelta | None = None
    seconds: float = 0.0
    touched_warehouse: bool = False
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step (feeds by name, mart, push)
    # NDW holds what `mart` holds at the end of this cycle: no step failed and no push waits for a
    # retry (an idle cycle qualifies: the warehouse files did not change since the lane last looked).
    in_sync: bool = False
    unhealthy: list[str] = field(default_factory=list)  # feeds/steps whose latest run failed

    @property
    def idle(self) -> bool:
        return not self.touched_warehouse and not self.errors


class WarehouseWatch:
    """Has any process written the warehouse since we last looked? (the file and its WAL)."""

    def __init__(self, database: str) -> None:
        self.paths = [Path(database), Path(database + ".wal")] if database not in (":memory:",) else []
        self._seen: tuple[Any, ...] | None = None

    def _state(self) -> tuple[Any, ...]:
        state: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                st = path.stat()
                state.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except FileNotFoundError:
                state.append(None)
        return tuple(state)

    def changed(self) -> bool:
        return not self.paths or self._state() != self._seen

    def remember(self) -> None:
        self._seen = self._state()


class Lane:
    """The feeds, the model and the push: what one cycle does, whoever hosts the loop."""

    def __init__(
        self,
        warehouse: WarehouseResource,
        ndw: NdwPushResource,
        feeds: list[Feed],
        *,
        datex2: Datex2Lane | None = None,
        max_pushes_per_cycle: int = 500,
        recheck_seconds: float = 30.0,
        overlap: timedelta = OVERLAP,
    ) -> None:
        self.warehouse, self.ndw, self.feeds, self.overlap, self.datex2 = (
            warehouse,
            ndw,
            feeds,
            overlap,
            datex2,
        )
        self.max_pushes_per_cycle = max_pushes_per_cycle
        self.recheck_seconds = recheck_seconds  # look at DuckDB at least this often even when nothing moved
        # A DuckLake has no local file to watch (its catalog may be PostgreSQL): the lane looks every cycle.
        local = warehouse.backend.local_path if not warehouse.backend.is_lake else None
        self.watch = WarehouseWatch(os.path.abspath(local) if local is not None else ":memory:")
        self._last_look = 0.0
        self._push_retry_at = 0.0
        self._push_failures = 0
        # Per feed, and the model/push and DATEX II steps: what the heartbeat says of each.
        self.health: dict[str, StepHealth] = {f.name: StepHealth() for f in feeds}

    def _health(self, step: str, logger: Any, error: str | None = None) -> None:
        """Record the step's outcome; log a failure streak sparingly (`StepHealth.failed`) and its end."""
        health = self.health.setdefault(step, StepHealth())
        if error is None:
            failures = health.failures
            if health.succeeded(time.time()):
                logger.info("lane: %s recovered after %d failed runs", step, failures)
        elif health.failed(time.time(), error):
            # a feed failing is the feed's trouble; the model, push or DATEX II step failing stops NDW's news
            say = logger.warning if any(f.name == step for f in self.feeds) else logger.error
            say("lane: %s failed (%d in a row): %s", step, health.failures, error)

    def health_report(self) -> dict[str, dict[str, Any]]:
        """Each feed's and step's health, for the heartbeat."""
        now = time.time()
        return {name: health.as_dict(now) for name, health in sorted(self.health.items())}

    def unhealthy(self) -> list[str]:
        return sorted(name for name, health in self.health.items() if health.failures)

    def cycle(self, run_id: str | None, logger: Any = log) -> CycleReport:
        report = CycleReport(started=time.time())
        now = time.time()
        for feed in self.feeds:
            try:
                if not feed.due(now):
                    continue
                started = time.perf_counter()
                collected = feed.collect(run_id, logger)
                report.steps[feed.name] = time.perf_counter() - started
            except Exception as exc:  # one feed's trouble never holds back the others
                report.errors.append((feed.name, f"{type(exc).__name__}: {exc}"))
                self._health(feed.name, logger, f"{type(exc).__name__}: {exc}")
                continue
            self._health(feed.name, logger)
            report.feeds.append(collected)
            report.touched_warehouse = report.touched_warehouse or bool(collected.outcomes)
        retry_due = self._push_failures > 0 and now >= self._push_retry_at
        look = (
            report.touched_warehouse
            or retry_due
            or self.watch.changed()
            or now - self._last_look >= self.recheck_seconds
        )
        if look:
            self._last_look = now
            report.touched_warehouse = True
            try:
                started = time.perf_counter()
                with self.warehouse.get_connection() as con:
                    report.steps["connect"] = time.perf_counter() - started  # waits out other writers
                    report.mart = build_mart(con, run_id=run_id)
                report.steps["mart"] = time.perf_counter() - started - report.steps["connect"]
                started = time.perf_counter()
                report.push = self.push(run_id, logger)
                report.steps["push"] = time.perf_counter() - started
                self._health("model/push", logger)
            except Exception as exc:
                report.errors.append(("model/push", f"{type(exc).__name__}: {exc}"))
                self._health("model/push", logger, f"{type(exc).__name__}: {exc}")
            if self.datex2 is not None:
                try:  # NDW's pushes never wait for the DATEX II receiver, nor the other way round
                    started = time.perf_counter()
                    newest = self._newest()
                    report.datex2 = self.datex2.cycle(run_id, newest)
                    report.steps["datex2"] = time.perf_counter() - started
                    self._health("datex2", logger)
                except Exception as exc:
                    report.errors.append(("datex2", f"{type(exc).__name__}: {exc}"))
                    self._health("datex2", logger, f"{type(exc).__name__}: {exc}")
            self.watch.remember()
        report.seconds = time.time() - report.started
        report.unhealthy = self.unhealthy()
        report.in_sync = not report.errors and self._push_failures == 0
        return report

    def _newest(self) -> datetime | None:
        with self.warehouse.get_connection() as con:
            return mart_newest(con)

    # -- push -------------------------------------------------------------------------------

    def push(self, run_id: str | None, logger: Any = log) -> PushReport | None:
        if time.time() < self._push_retry_at:
            return None
        started = time.perf_counter()
        with self.warehouse.get_connection() as con:
            cursor, _ = read_sync_state(con, PUSH_SOURCE, PUSH_STREAM)
            newest_at = mart_newest(con)
            if newest_at is None or (cursor is not None and newest_at <= cursor):
                return None
            if cursor is not None:
                scope = _fill_scope(con, cursor - self.overlap)
                plan = plan_pushes(
                    con, static=True, now=utcnow(), max_static_pushes=self.max_pushes_per_cycle, scoped=True
                )
        if cursor is None:
            # A new lane starts from now: what NDW lacks from before is the hourly full push's work.
            with self.warehouse.writer(PUSH_SOURCE, run_id) as writer:
                writer.set_sync_state(PUSH_STREAM, newest_at)
            return None
        client = self.ndw.client()
        try:
            run = execute(
                plan,
                client,
                concurrency=self.ndw.concurrency,
                max_consecutive_failures=self.ndw.max_consecutive_failures,
            )
        finally:
            client.close()
        # Answered = accepted, or refused for good (rejected content waits for a change): the cursor
        # may pass it. Failed (NDW down) or deferred: diff the same scope again after a backoff.
        # PUTs beyond this cycle's cap (a burst of new locations) are the hourly full push's work:
        # retrying them here would make every cycle cost the backlog.
        done = settled(plan, run, capped_ok=True)
        with self.warehouse.writer(PUSH_SOURCE, run_id) as writer:
            record(writer, run, None)
            if done:
                writer.set_sync_state(PUSH_STREAM, newest_at)
        if done:
            self._push_failures, self._push_retry_at = 0, 0.0
        else:
            self._push_failures += 1
            self._push_retry_at = time.time() + min(60.0, 2.0**self._push_failures)
            logger.warning(
                "lane: %d push(es) not settled; retrying in %.0f s",
                len(run.deferred) + sum(1 for _, o in run.results if not o.ok),
                self._push_retry_at - time.time(),
            )
        if run.auth_error is not None:
            raise run.auth_error
        return PushReport(plan, run, scope, newest_at, done, time.perf_counter() - started)

    def start(self, wake: Any) -> None:
        for feed in self.feeds:
            feed.start(wake)

    def stop(self) -> None:
        for feed in self.feeds:
            feed.stop()


def _fill_scope(con: Any, since: datetime) -> dict[str, int]:
    """Locations and tariffs the mart changed since `since`. (A location NDW does not hold yet that
    waited for a tariff to become valid is the hourly full push's: finding those means reading every
    connector's tariff_ids, a cost that grows with the fleet.)"""
    changed = " UNION ".join(
        f"SELECT country_code, party_id, location_id FROM {t} WHERE _ingested_at > $since"
        for t in (LOCATIONS, EVSES, CONNECTORS)
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SCOPE_TARIFFS} AS "
        f"SELECT DISTINCT country_code, party_id, tariff_id FROM {TARIFFS} WHERE _ingested_at > $since",
        {"since": since},
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {SCOPE_LOCATIONS} AS SELECT DISTINCT * FROM ({changed})",
        {"since": since},
    )
    return {
        name: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for name, table in (("locations", SCOPE_LOCATIONS), ("tariffs", SCOPE_TARIFFS))
    }
