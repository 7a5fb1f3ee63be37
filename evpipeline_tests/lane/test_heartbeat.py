"""A quiet lane still says, every report window, that NDW is in sync: `ndw/live`'s heartbeat.

The catalog gives `ndw/live` a one-minute freshness policy; the lane only pushes when rows change,
so without the heartbeat a quiet fleet would look stale. A window that ends with a failed step or
pushes waiting for a retry records no heartbeat (the asset goes stale, honestly) but an observation
saying why."""

from __future__ import annotations

import time
from typing import Any

import dagster as dg

from evpipeline.lane.assets import LIVE_KEY, _live_events
from evpipeline.lane.cycle import CycleReport
from evpipeline.lane.service import Window
from evpipeline_tests.lane.conftest import Deployment


def test_a_quiet_lane_records_a_heartbeat_every_window(deployment: Deployment) -> None:
    instance = dg.DagsterInstance.ephemeral()
    run = deployment.run_lane(instance, seconds=3.0, report_every_seconds=0.5)
    assert run.success
    live = [e.materialization for e in run.get_asset_materialization_events() if e.asset_key == LIVE_KEY]
    assert len(live) >= 3, "one heartbeat per 0.5 s window over 3 s"
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
