"""GreenFlux on the real-time lane: a `date_from` delta of Locations every `live_poll_seconds` (5 s) and of
tariffs every `live_tariff_poll_seconds` (60 s).

GreenFlux has no push channel we can use, so the lane polls: Locations (with their EVSEs, whose
status changes count as location modifications in Locations v2) and tariffs (a changed tariff is
an ad-hoc price change), each with the same sync functions and watermarks as the scheduled jobs.
A change becomes visible to us when a poll returns it; the lane pushes it in the same cycle.

Request budget when quiet: one request a poll, 12 Locations and 1 tariffs request a minute (one page
each, re-reading the overlap), plus a page per `limit` changed locations. Statuses are what must be
fast (AFIR: a minute; our goal 10 s p95 from the change itself): they ride on the Locations poll.
A source that was never bootstrapped is left to its job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from evpipeline.sources.feeds import FeedReport
from evpipeline.sources.greenflux.assets import (
    CONNECTORS_KEY,
    EVSES_KEY,
    LOCATIONS_KEY,
    SOURCE,
    TARIFFS_KEY,
    GreenFluxSyncConfig,
    sync_locations,
    sync_tariffs,
)
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.sources.greenflux.tables import CONNECTORS, EVSES, LOCATIONS, TARIFFS
from evpipeline.warehouse import WarehouseResource

RESOURCES = ("greenflux", "warehouse")


class GreenFluxFeed:
    """A poll of what changed every `live_poll_seconds` (Locations with EVSEs and connectors, tariffs)."""

    name = SOURCE
    assets = {LOCATIONS: LOCATIONS_KEY, EVSES: EVSES_KEY, CONNECTORS: CONNECTORS_KEY, TARIFFS: TARIFFS_KEY}

    def __init__(
        self,
        greenflux: GreenFluxResource,
        warehouse: WarehouseResource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resource, self.warehouse, self.clock = greenflux, warehouse, clock
        self.next_poll = 0.0
        self.next_tariff_poll = 0.0

    def start(self, wake: threading.Event) -> None:
        """Polling only: nothing to listen to."""

    def stop(self) -> None:
        """Nothing to stop."""

    def due(self, now: float) -> bool:
        return self.resource.live_poll_seconds > 0 and now >= self.next_poll

    def collect(self, run_id: str | None, log: Any) -> FeedReport:
        report = FeedReport(self.name)
        now = self.clock()
        self.next_poll = now + self.resource.live_poll_seconds
        streams: list[tuple[str, Callable[..., Any]]] = [("Locations", sync_locations)]
        if now >= self.next_tariff_poll:
            self.next_tariff_poll = now + self.resource.live_tariff_poll_seconds
            streams.append(("tariffs", sync_tariffs))
        client = self.resource.client()
        config = GreenFluxSyncConfig()
        for stream, sync in streams:
            watermark, _ = self.warehouse.sync_state(SOURCE, stream)
            if watermark is None:  # never bootstrapped: a full pull is the scheduled job's work
                continue
            report.seen_at = time.time()  # what this poll returns is visible to us from now on
            report.outcomes.append(sync(self.warehouse, client, config, run_id=run_id, log=log))
        report.requests = client.api.stats.requests
        return report


def feed(resources: Mapping[str, Any]) -> GreenFluxFeed:
    return GreenFluxFeed(resources["greenflux"], resources["warehouse"])
