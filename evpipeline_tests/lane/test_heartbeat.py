"""A quiet lane still says, every report window, that NDW is in sync: `ndw/live`'s heartbeat.

The catalog gives `ndw/live` a one-minute freshness policy; the lane only pushes when rows change,
so without the heartbeat a quiet fleet would look stale. A window that ends with a failed step or
pushes waiting for a retry records no heartbeat (the asset goes stale, honestly) but an observation
saying why."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import dagster as dg

from evpipeline.lane.assets import LIVE_KEY, _live_events
from evpipeline.lane.cycle import CycleReport
from evpipeline.lane.service import Window
from evpipeline_tests.lane.conftest import Deployment


def test_a_quiet_lane_records_a_heartbeat_every_window(deployment: Deployment) -> None:
    instance = dg.DagsterInstance.ephemeral()
    # Twelve 0.5 s windows; at least three heartbeats even when a loaded machine stretches the cycles
    # (3 s gave two of six under load 8). A lane that stops reporting after one window still fails.
    run = deployment.run_lane(instance, seconds=6.0, report_every_seconds=0.5)
    assert run.success
    live = [e.materialization for e in run.get_asset_materialization_events() if e.asset_key == LIVE_KEY]
    assert len(live) >= 3, "one heartbeat per 0.5 s window over 6 s"
    for materialization in live:
        meta: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
        assert meta["heartbeat"] is True and meta["in_sync"] is True and meta["status_patches"] == 0
        assert time.time() - float(meta["in_sync_as_of"]) < 60
    # Dagster sees ndw/live as just materialized: what its freshness evaluation reads.
    record = instance.get_latest_materialization_event(LIVE_KEY)
    assert record is not None and time.time() - record.timestamp < 10


def test_a_window_left_out_of_sync_records_no_heartbeat() -> None:
    window = Window()
    failed = CycleReport(started=time.time(), errors=[("model/push", "TransportError: NDW unreachable")])
    window.add(failed)  # in_sync stays False
    events = list(_live_events(window, {"via": "realtime_lane"}))
    assert [type(e) for e in events] == [dg.AssetObservation]
    assert events[0].metadata["in_sync"].value is False and "NDW unreachable" in str(
        events[0].metadata["reason"].value
    )

    recovered = CycleReport(started=time.time(), in_sync=True)
    window.add(recovered)
    [heartbeat] = list(_live_events(window, {"via": "realtime_lane"}))
    assert isinstance(heartbeat, dg.AssetMaterialization) and heartbeat.metadata["in_sync"].value is True


class _Feed:
    """A feed with nothing to merge, failing while `broken` says so (the lane's Feed protocol)."""

    def __init__(self, name: str, broken: bool = False) -> None:
        self.name, self.broken = name, broken
        self.assets: Mapping[str, dg.AssetKey] = {}

    def start(self, wake: Any) -> None:
        """No listener."""

    def stop(self) -> None:
        """No listener."""

    def due(self, now: float) -> bool:
        return True

    def collect(self, run_id: str | None, log: Any) -> Any:
        from evpipeline.sources.feeds import FeedReport

        if self.broken:
            raise ConnectionError("origin unreachable (injected)")
        return FeedReport(self.name)


def _lane(tmp_path: Any, feeds: list[Any]) -> Any:
    """A lane over `feeds` on a fresh warehouse, its NDW unreachable (nothing here pushes)."""
    from evpipeline.lane.cycle import Lane
    from evpipeline.ndw.push import NdwPushResource
    from evpipeline.warehouse import WarehouseResource

    return Lane(
        WarehouseResource(database=str(tmp_path / "warehouse.duckdb")),
        NdwPushResource(
            push_base_url="http://127.0.0.1:9/ocpi",
            token_url="http://127.0.0.1:9/t",
            client_id="c",
            client_secret="s",
        ),
        feeds,
    )


def test_the_heartbeat_names_the_failing_feed_and_not_the_others(tmp_path: Any) -> None:
    """The heartbeat used to say only that the loop was alive: fresh while one feed (or the backend)
    failed every cycle. Now it carries each feed's and step's latest outcome."""
    from evpipeline.lane.service import run_lane
    from evpipeline.warehouse.resource import read_heartbeat

    broken, fine = _Feed("evroam", broken=True), _Feed("zaptec")
    lane = _lane(tmp_path, [broken, fine])
    windows: list[Window] = []

    def run(cycles: int) -> dict[str, Any]:
        run_lane(
            lane,
            data_dir=tmp_path,
            run_id="r",
            report=windows.append,
            logger=logging.getLogger("t"),
            max_cycles=cycles,
            interval=0.0,
        )
        beat = read_heartbeat(tmp_path / "lane" / "heartbeat.json")
        assert beat is not None
        return beat

    beat = run(3)
    health = beat["health"]
    assert health["evroam"]["healthy"] is False and health["evroam"]["failures"] == 3
    assert "origin unreachable" in health["evroam"]["error"]
    assert health["zaptec"]["healthy"] is True and health["zaptec"]["last_ok_seconds_ago"] is not None
    assert health["model/push"]["healthy"] is True
    assert beat["unhealthy"] == ["evroam"] and windows[-1].unhealthy == ["evroam"]
    events = list(_live_events(windows[-1], {"via": "realtime_lane"}))  # what the Dagster UI shows
    assert [e.metadata["unhealthy"].value for e in events] == ["evroam"]

    broken.broken = False  # the origin is back: one good run makes the feed healthy again
    beat = run(1)
    assert beat["unhealthy"] == [] and beat["health"]["evroam"]["healthy"] is True


def test_a_failure_streak_is_logged_on_doubling_and_once_a_minute_and_its_end_once() -> None:
    from evpipeline.lane.cycle import StepHealth

    health = StepHealth()
    told = [n for n in range(1, 41) if health.failed(1000.0 + n * 0.1, "PostgreSQL down")]
    assert told == [1, 2, 4, 8, 16, 32]  # 40 failures in 4 s: six lines, not forty
    assert health.failed(1000.0 + 3.2 + 59.0, "still down") is False  # 41st: 59 s after the 32nd
    assert health.failed(1000.0 + 3.2 + 60.0, "still down") is True  # a minute after it: one line
    assert health.succeeded(2000.0) is True and health.failures == 0  # the end of the streak: one line
    assert health.succeeded(2001.0) is False  # success after success: nothing to say
    assert health.failed(2002.0, "down again") is True  # a new streak starts with a line


def test_a_feed_failing_every_cycle_writes_a_few_lines_and_one_when_it_recovers(
    tmp_path: Any, caplog: Any
) -> None:
    """A backend or origin down made the lane log every failure, about seven lines a second."""
    from evpipeline.lane.service import run_lane

    broken = _Feed("evroam", broken=True)
    lane = _lane(tmp_path, [broken, _Feed("zaptec")])
    logger = logging.getLogger("evpipeline.test_lane_log_rate")

    def run(cycles: int) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=logger.name):
            run_lane(
                lane,
                data_dir=tmp_path,
                run_id="r",
                report=lambda _: None,
                logger=logger,
                max_cycles=cycles,
                interval=0.0,
            )
        return [
            r.getMessage() for r in caplog.records if r.name == logger.name and "evroam" in r.getMessage()
        ]

    lines = run(20)
    assert [line.split(" (")[1].split(" in a row")[0] for line in lines] == ["1", "2", "4", "8", "16"], lines
    assert all("origin unreachable" in line for line in lines)
    broken.broken = False
    assert run(3) == ["lane: evroam recovered after 20 failed runs"]


def test_the_lane_backs_off_only_while_its_warehouse_step_keeps_failing() -> None:
    from evpipeline.lane.service import ERROR_WAIT_SECONDS, pause

    assert ERROR_WAIT_SECONDS == 5.0
    assert [pause(1.0, n) for n in range(6)] == [1.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert [pause(0.0, n) for n in range(3)] == [0.0, 0.0, 0.0]  # tests and a busy lane: no wait
    assert pause(10.0, 4) == 10.0  # never longer than a slow lane's own interval
