"""GreenFlux on the real-time lane, over real HTTP: a Locations delta every `live_poll_seconds` (one
request when quiet), tariffs only every `live_tariff_poll_seconds`, and a status flip picked up by the
next Locations poll. The feed's clock is injected: no test waits for a poll interval."""

from __future__ import annotations

import logging

from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.sources.greenflux.live import GreenFluxFeed
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.sources.greenflux.conftest import sync

LOG = logging.getLogger("test")


def test_locations_every_5_s_tariffs_every_minute_and_a_quiet_poll_is_one_request(
    greenflux_sim: GreenFluxSimulator, greenflux: GreenFluxResource, warehouse: WarehouseResource
) -> None:
    assert (greenflux.live_poll_seconds, greenflux.live_tariff_poll_seconds) == (5.0, 60.0)
    sync(greenflux, warehouse)  # the scheduled job's bootstrap: the lane polls deltas from its watermarks
    now = [1_000.0]
    feed = GreenFluxFeed(greenflux, warehouse, clock=lambda: now[0])

    first = feed.collect("lane-1", LOG)
    assert len(first.outcomes) == 2  # Locations and tariffs
    assert first.requests == 2  # quiet: one page each
    now[0] += 4.9
    assert not feed.due(now[0])
    now[0] += 0.1
    assert feed.due(now[0])

    # A status flip at the source is in the next Locations poll, 5 s later at most.
    uid = query(
        warehouse, "SELECT evse_uid FROM greenflux.evses WHERE status = 'AVAILABLE' ORDER BY evse_uid LIMIT 1"
    )[0][0]
    greenflux_sim.set_evse_status(uid, "CHARGING")
    second = feed.collect("lane-2", LOG)
    assert len(second.outcomes) == 1 and second.requests == 1  # Locations only: no tariff request
    assert query(warehouse, "SELECT status FROM greenflux.evses WHERE evse_uid = ?", [uid]) == [("CHARGING",)]

    now[0] += 55.0  # 60 s after the first tariff poll
    third = feed.collect("lane-3", LOG)
    assert len(third.outcomes) == 2 and third.requests == 2
