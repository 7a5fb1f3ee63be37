"""The lane's loop: one host at a time (a file lock), a heartbeat the supervisor sensor reads, and
aggregated reports that become Dagster materializations.

A lane host runs cycles back to back while they find work and waits up to `interval` (or until a
feed's listener wakes it) when they do not. It stops at its deadline, so the code it runs is never
older than `max_seconds`; the supervisor starts the successor a minute before, which waits on the
lock and takes over within a cycle of the predecessor's exit.

A stop request (`request_stop`: a `stop` file in the lane directory, written by `evpipeline dev` when
Ctrl-C stops it) ends a lane after its current cycle, makes a lane waiting for the lock give up, and
tells the supervisor to start none until `clear_stop`.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evpipeline.lane.cycle import CycleReport, Lane
from evpipeline.locks import exclusive

SLOW_CYCLE_SECONDS = 5.0  # a cycle this long is logged with its steps (and kept in the heartbeat)
ERROR_WAIT_SECONDS = 5.0  # the longest pause between cycles while the warehouse keeps failing


STOP_FILE = "stop"
STOP_EXPIRES_SECONDS = (
    300.0  # a stop request older than this is stale (whoever wrote it died before clearing it)
)


def lane_dir(data_dir: str | Path) -> Path:
    path = Path(data_dir) / "lane"
    path.mkdir(parents=True, exist_ok=True)
    return path


def request_stop(data_dir: str | Path, reason: str) -> None:
    """Ask every lane of this data directory to stop after its cycle, and the supervisor to start none."""
    partial = lane_dir(data_dir) / f"{STOP_FILE}.part"
    partial.write_text(json.dumps({"reason": reason, "at": time.time(), "pid": os.getpid()}))
    partial.replace(lane_dir(data_dir) / STOP_FILE)


def stop_requested(data_dir: str | Path) -> str | None:
    """The reason of a pending stop request, or None."""
    try:
        body = json.loads((Path(data_dir) / "lane" / STOP_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "stop requested"
    if time.time() - float(body.get("at") or 0) > STOP_EXPIRES_SECONDS:
        return None
    return str(body.get("reason") or "stop requested")


def clear_stop(data_dir: str | Path) -> None:
    (Path(data_dir) / "lane" / STOP_FILE).unlink(missing_ok=True)


def write_heartbeat(path: Path, body: dict[str, Any]) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(body, default=str))
    partial.replace(path)  # atomic: the supervisor never reads half a heartbeat


@dataclass
class Window:
    """Cycles since the last report."""

    cycles: list[CycleReport] = field(default_factory=list)
    opened: float = field(default_factory=time.time)
    seen: int = 0  # cycles run in the window, idle ones included
    synced_at: float | None = None  # end of the latest cycle, when it left NDW in sync (else None)
    unhealthy: list[str] = field(default_factory=list)  # the latest cycle's failing feeds/steps

    def add(self, report: CycleReport) -> None:
        self.seen += 1
        self.unhealthy = report.unhealthy
        self.synced_at = report.started + report.seconds if report.in_sync else None
        if not report.idle or any(f.dead_letters for f in report.feeds):
            self.cycles.append(report)

    @property
    def empty(self) -> bool:
        return not self.cycles

    def lags(self) -> list[float]:
        """Seconds from the warehouse recording a status change to NDW accepting its PATCH."""
        return [
            (o.pushed_at - p.recorded_at).total_seconds()
            for c in self.cycles
            if c.push
            for p, o in c.push.run.results
            if o.ok and p.recorded_at is not None
        ]

    def summary(self) -> dict[str, Any]:
        lags = sorted(self.lags())
        pushes = [o for c in self.cycles if c.push for _, o in c.push.run.results]
        return {
            "cycles": len(self.cycles),
            "pushes": len(pushes),
            "accepted": sum(1 for o in pushes if o.ok),
            "p50_lag_seconds": round(statistics.median(lags), 3) if lags else None,
            "max_lag_seconds": round(lags[-1], 3) if lags else None,
            "errors": sum(len(c.errors) for c in self.cycles),
        }


@dataclass
class LaneRun:
    acquired: bool
    cycles: int = 0
    busy_cycles: int = 0
    reports: int = 0
    stopped_by: str = ""


def pause(interval: float, failing: int) -> float:
    """Seconds between cycles after `failing` cycles in a row whose model/push step failed: `interval`,
    then doubling, up to ERROR_WAIT_SECONDS (or `interval` when that is longer)."""
    return min(interval * 2 ** max(0, failing - 1), max(interval, ERROR_WAIT_SECONDS))


def run_lane(
    lane: Lane,
    *,
    data_dir: str | Path,
    run_id: str | None,
    report: Callable[[Window], None],
    logger: Any,
    max_seconds: float = 3600.0,
    interval: float = 1.0,
    report_every: float = 15.0,
    max_cycles: int = 0,
    lock_wait_seconds: float = 120.0,
    stop: threading.Event | None = None,
) -> LaneRun:
    """Run cycles until the deadline, `max_cycles` or `stop`; report every `report_every` seconds."""
    directory = lane_dir(data_dir)
    stop = stop or threading.Event()

    def stopping() -> str | None:
        return "stop requested" if stop.is_set() else stop_requested(data_dir)

    with exclusive(
        directory / "lane.lock", lock_wait_seconds, give_up=lambda: stopping() is not None
    ) as acquired:
        if not acquired:
            reason = stopping()
            return LaneRun(acquired=False, stopped_by=reason or "another lane holds the lock")
        started = time.time()
        deadline = started + max_seconds
        result = LaneRun(acquired=True)
        wake = threading.Event()
        lane.start(wake)
        window = Window()
        slow: list[dict[str, Any]] = []  # the latest slow cycles and where their time went
        beat = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run_id": run_id,
            "started_at": started,
            "expires_at": deadline,
            "state": "running",
        }
        # Alive from the moment it holds the lock: the supervisor starts no second lane meanwhile.
        write_heartbeat(directory / "heartbeat.json", {**beat, "beat_at": time.time(), "cycles": 0})
        failing = 0  # cycles in a row whose model/push step failed
        try:
            while True:
                cycle = lane.cycle(run_id, logger)
                result.cycles += 1
                result.busy_cycles += 0 if cycle.idle else 1
                window.add(cycle)
                if cycle.seconds >= SLOW_CYCLE_SECONDS:
                    slow = [
                        *slow[-4:],
                        {
                            "at": cycle.started,
                            "seconds": round(cycle.seconds, 2),
                            "steps": {k: round(v, 2) for k, v in cycle.steps.items()},
                        },
                    ]
                    logger.warning("lane: slow cycle %.1f s %s", cycle.seconds, slow[-1]["steps"])
                write_heartbeat(
                    directory / "heartbeat.json",
                    {
                        **beat,
                        "beat_at": time.time(),
                        "cycles": result.cycles,
                        "last_cycle_seconds": round(cycle.seconds, 3),
                        "slow_cycles": slow,
                        # Progress per feed and step, not loop liveness: the loop beats while a
                        # feed (or the backend) fails every cycle.
                        "health": lane.health_report(),
                        "unhealthy": cycle.unhealthy,
                    },
                )
                # Every window is reported, a quiet one too: its report is the heartbeat that says
                # NDW is in sync as of now (what `ndw/live`'s one-minute freshness policy watches).
                if time.time() - window.opened >= report_every:
                    report(window)
                    result.reports += 1
                    window = Window()
                if (reason := stopping()) is not None:
                    result.stopped_by = reason
                    break
                if max_cycles and result.cycles >= max_cycles:
                    result.stopped_by = "max_cycles"
                    break
                if time.time() >= deadline:
                    result.stopped_by = "deadline"
                    break
                # The model/push step failing every cycle means the warehouse (or its catalog) is down:
                # nothing can progress, so retry after 1, 2, 4 intervals, up to ERROR_WAIT_SECONDS (news
                # still wakes the lane at once). A failing feed alone slows nothing: the others go on.
                failing = failing + 1 if any(step == "model/push" for step, _ in cycle.errors) else 0
                if cycle.idle or cycle.errors:
                    wake.wait(timeout=min(pause(interval, failing), max(0.0, deadline - time.time())))
                wake.clear()
        finally:
            lane.stop()
            if not window.empty:
                report(window)
                result.reports += 1
            write_heartbeat(
                directory / "heartbeat.json",
                {
                    **beat,
                    "beat_at": time.time(),
                    "cycles": result.cycles,
                    "state": "stopped",
                    "health": lane.health_report(),
                    "unhealthy": lane.unhealthy(),
                },
            )
        return result
