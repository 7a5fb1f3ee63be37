"""Issue 25: one bad input never stalls the EVRoam feed, on DuckDB and on DuckLake alike.

Each test sends the bad input over real HTTP to the webhook receiver, puts a good change behind it
(the simulator publishes it), runs the lane's EVRoam feed and checks that the good change landed,
the inbox cursor passed both, and the bad input sits in the dead letters with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from evpipeline.inbox import Inbox
from evpipeline.lane.feeds import FeedReport
from evpipeline.resources import PushInboxResource
from evpipeline.serving import BackgroundServer
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.live import EVRoamFeed
from evpipeline.sources.evroam.push import create_webhook_app
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, query, scalar

KEY = "poison-hook-key"
REFUSED_URL = "http://169.254.169.254/latest/meta-data/chargingstations.json"


@dataclass
class Push:
    """A bootstrapped warehouse (either backend), the EVRoam simulator subscribed to our receiver."""

    sim: EVRoamSimulator
    evroam: EVRoamResource
    inbox: PushInboxResource
    receiver: BackgroundServer
    warehouse: WarehouseResource

    @property
    def store(self) -> Inbox:
        return self.inbox.open()

    def post(self, events: list[dict[str, Any]] | bytes) -> requests.Response:
        url = f"{self.receiver.url}/api/evroam_listener?code={KEY}"
        if isinstance(events, bytes):
            return requests.post(url, data=events, headers={"Content-Type": "application/json"}, timeout=30)
        return requests.post(url, json=events, timeout=30)

    def good_change(self) -> tuple[str, str]:
        """A connector status change, published to the receiver; (connector id, its new status)."""
        self.sim.clock.advance(30)  # newer than the bootstrap's watermark
        station = next(r for r in self.sim.stations.values() if r.body["connectors"])
        connector = station.body["connectors"][0]
        status = "Inoperative" if connector["operationStatus"] != "Inoperative" else "Operative"
        self.sim.set_connector_status(station.body["chargingStationId"], connector["connectorId"], status)
        assert self.sim.publish(), "the simulator published nothing"
        return connector["connectorId"], status

    def status_of(self, connector_id: str) -> Any:
        return scalar(
            self.warehouse,
            "SELECT operation_status FROM evroam.connectors WHERE connector_id = ?",
            [connector_id],
        )

    def cursor(self) -> int:
        return int(self.warehouse.sync_state("evroam", "inbox")[1].get("message_id", 0))


def refused_event(n: int) -> dict[str, Any]:
    return {
        "id": f"refused-{n}",
        "eventType": "EVRoam.ChargingStationChanges",
        "eventTime": "2026-11-01T12:00:00Z",
        "subject": "chargingstations-x.json",
        "data": {"url": REFUSED_URL},
    }


@pytest.fixture
def push(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, any_warehouse: WarehouseResource, tmp_path: Path
) -> Iterator[Push]:
    inbox = PushInboxResource(directory=str(tmp_path / "inbox"))
    with BackgroundServer(create_webhook_app(inbox.open(), KEY)) as receiver:
        materialize([evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": any_warehouse})
        evroam.client().subscribe(f"{receiver.url}/api/evroam_listener?code={KEY}")
        assert evroam_sim.wait_validated()
        yield Push(evroam_sim, evroam, inbox, receiver, any_warehouse)


def collect(push: Push, feed: EVRoamFeed | None = None) -> FeedReport:
    """One lane cycle of the EVRoam feed."""
    feed = feed or EVRoamFeed(push.evroam, push.inbox, push.warehouse)
    return feed.collect("lane", logging.getLogger("test.lane"))


def test_a_refused_notification_never_stops_the_feed_on_either_backend(push: Push) -> None:
    """DuckLake has no key constraints: `INSERT OR REPLACE` into the dead letters failed there, every
    cycle, and nothing behind the refused notification was ever merged."""
    assert push.post([refused_event(1)]).json() == {"stored": 1}
    connector, status = push.good_change()

    report = collect(push)

    assert push.status_of(connector) == status
    assert push.cursor() == push.store.newest_id("evroam")
    assert [d["status"] for d in report.dead_letters] == ["refused"]
    [(message_id, reason)] = query(
        push.warehouse, "SELECT message_id, reason FROM ops.dead_letters WHERE source = 'evroam'"
    )
    assert "169.254.169.254" in reason
    # Dead-lettered again (a retry that fails the same way): the row is replaced, not doubled.
    [message] = [m for m in push.store.after("evroam", 0) if m.id == message_id]
    feed = EVRoamFeed(push.evroam, push.inbox, push.warehouse)
    feed.inbox.dead_letter(message, "failed", "tried again", "lane", FeedReport("evroam"))
    assert query(
        push.warehouse, "SELECT status, reason FROM ops.dead_letters WHERE message_id = ?", [message_id]
    ) == [("failed", "tried again")]
