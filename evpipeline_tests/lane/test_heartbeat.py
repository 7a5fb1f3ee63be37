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


def test_the_heartbeat_names_the_failing_feed_and_not_the_others(tmp_path: Any) -> None:
    """The heartbeat used to say only that the loop was alive: fresh while one feed (or the backend)
    failed every cycle. Now it carries each feed's and step's latest outcome."""
    from evpipeline.lane.cycle import Lane
    from evpipeline.lane.service import run_lane
    from evpipeline.ndw.push import NdwPushResource
    from evpipeline.warehouse import WarehouseResource
    from evpipeline.warehouse.resource import read_heartbeat

    broken, fine = _Feed("evroam", broken=True), _Feed("zaptec")
    lane = Lane(
        WarehouseResource(database=str(tmp_path / "warehouse.duckdb")),
        NdwPushResource(
            push_base_url="http://127.0.0.1:9/ocpi",
            token_url="http://127.0.0.1:9/t",
            client_id="c",
            client_secret="s",
        ),
        [broken, fine],
    )
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
