"""EVRoam push end to end: subscription handshake, webhook receiver, the lane's EVRoam feed, file download,
fallbacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from evpipeline.resources import PushInboxResource
from evpipeline.serving import BackgroundServer
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.live import EVRoamFeed
from evpipeline.sources.evroam.push import create_webhook_app
from evpipeline.sources.evroam.tables import CONNECTORS
from evpipeline.sources.feeds import FeedReport
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, query, scalar

KEY = "hook-key-123"


@pytest.fixture
def inbox(tmp_path: Any) -> PushInboxResource:
    return PushInboxResource(directory=str(tmp_path / "inbox"))


@pytest.fixture
def receiver(inbox: PushInboxResource) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_webhook_app(inbox.open(), KEY)) as server:
        yield server


@pytest.fixture
def subscribed(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, receiver: BackgroundServer
) -> EVRoamSimulator:
    message = evroam.client().subscribe(f"{receiver.url}/api/evroam_listener?code={KEY}")
    assert message.startswith("Subscription created with end point")
    assert evroam_sim.wait_validated(), "the receiver did not answer the Event Grid handshake"
    return evroam_sim


def collect(evroam: EVRoamResource, inbox: PushInboxResource, warehouse: WarehouseResource) -> FeedReport:
    """One lane cycle of the EVRoam feed."""
    return EVRoamFeed(evroam, inbox, warehouse).collect("lane", logging.getLogger("test"))


def statuses(inbox: PushInboxResource) -> list[str]:
    return [m.status for m in inbox.open().after("evroam", 0)]


def test_handshake_answered_and_receiver_requires_its_key(
    subscribed: EVRoamSimulator, receiver: BackgroundServer
) -> None:
    assert subscribed.subscription is not None and subscribed.subscription.validated
    assert requests.post(f"{receiver.url}/api/evroam_listener", json=[]).status_code == 401
    assert requests.post(f"{receiver.url}/api/evroam_listener?code=wrong", json=[]).status_code == 401
    assert (
        requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", data=b"{not json").status_code == 400
    )


def test_push_file_downloaded_and_merged(
    subscribed: EVRoamSimulator,
    evroam: EVRoamResource,
    inbox: PushInboxResource,
    warehouse: WarehouseResource,
) -> None:
    materialize(
        [evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": warehouse}
    )  # local cache first
    station = next(r for r in subscribed.stations.values() if r.body["connectors"])
    connector = station.body["connectors"][0]
    new_status = "Inoperative" if connector["operationStatus"] != "Inoperative" else "Operative"
    subscribed.clock.advance(30)
    subscribed.set_connector_status(station.body["chargingStationId"], connector["connectorId"], new_status)
    events = subscribed.publish()
    assert any(e["eventType"] == "EVRoam.ChargingStationChanges" for e in events)
    assert inbox.open().count("evroam") == len(events)

    report = collect(evroam, inbox, warehouse)
    assert report.messages == len(events) and report.merged().get(CONNECTORS, 0) >= 1
    assert (
        scalar(
            warehouse,
            "SELECT operation_status FROM evroam.connectors WHERE connector_id = ?",
            [connector["connectorId"]],
        )
        == new_status
    )
    assert set(statuses(inbox)) == {"merged"}
    # The pull watermark is not moved by pushes; the inbox cursor is, with the rows.
    assert warehouse.sync_state("evroam", "ChargingStation")[0] is not None
    assert (
        scalar(
            warehouse, "SELECT count(*) FROM ops.sync_state WHERE source = 'evroam' AND stream LIKE 'push%'"
        )
        == 0
    )
    assert scalar(
        warehouse,
        "SELECT CAST(json_extract(cursor, '$.message_id') AS INTEGER) FROM ops.sync_state "
        "WHERE source = 'evroam' AND stream = 'inbox'",
    ) == inbox.open().newest_id("evroam")
    assert collect(evroam, inbox, warehouse).messages == 0  # nothing new


def test_expired_file_falls_back_to_a_delta_sync(
    subscribed: EVRoamSimulator,
    evroam: EVRoamResource,
    inbox: PushInboxResource,
    warehouse: WarehouseResource,
) -> None:
    materialize([evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": warehouse})
    subscribed.clock.advance(60)
    record = next(iter(subscribed.stations.values()))
    subscribed.soft_delete_station(record.body["chargingStationId"])
    subscribed.publish()
    subscribed.clock.advance(2 * 3600)  # the lane was down for two hours: the file expired
    report = collect(evroam, inbox, warehouse)
    assert "delta pull instead" in " ".join(report.notes)
    assert "fallback" in statuses(inbox)
    assert scalar(
        warehouse,
        "SELECT is_deleted FROM evroam.charging_stations WHERE charging_station_id = ?",
        [record.body["chargingStationId"]],
    )


def test_deleted_file_falls_back(
    subscribed: EVRoamSimulator,
    evroam: EVRoamResource,
    inbox: PushInboxResource,
    warehouse: WarehouseResource,
) -> None:
    materialize([evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": warehouse})
    subscribed.clock.advance(60)
    record = next(iter(subscribed.stations.values()))
    subscribed.soft_delete_station(record.body["chargingStationId"])
    subscribed.publish()
    subscribed.expire_files()  # storage deleted it: 404
    collect(evroam, inbox, warehouse)
    assert "fallback" in statuses(inbox)
    assert scalar(
        warehouse,
        "SELECT is_deleted FROM evroam.charging_stations WHERE charging_station_id = ?",
        [record.body["chargingStationId"]],
    )


def test_url_outside_allow_list_is_refused_not_fetched(
    evroam: EVRoamResource,
    evroam_sim: EVRoamSimulator,
    inbox: PushInboxResource,
    receiver: BackgroundServer,
    warehouse: WarehouseResource,
) -> None:
    event = {
        "id": "evil-1",
        "eventType": "EVRoam.ChargingStationChanges",
        "eventTime": "2026-11-01T12:00:00Z",
        "subject": "/blobServices/default/containers/notifications/blobs/chargingstations-x.json",
        "data": {"url": "http://169.254.169.254/latest/meta-data/chargingstations.json"},
    }
    assert requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", json=[event]).json() == {
        "stored": 1
    }
    before = len(evroam_sim.requests)
    report = collect(evroam, inbox, warehouse)
    assert report.outcomes == []
    [message] = inbox.open().after("evroam", 0)
    assert message.status == "refused" and "not an allowed push-file origin" in (message.note or "")
    assert len(evroam_sim.requests) == before
    [(status, reason)] = query(
        warehouse, "SELECT status, reason FROM ops.dead_letters WHERE source = 'evroam'"
    )
    assert status == "refused" and "169.254.169.254" in reason
    assert [d["status"] for d in report.dead_letters] == ["refused"]


def test_a_poison_notification_is_dead_lettered_and_the_rest_go_on(
    subscribed: EVRoamSimulator,
    evroam: EVRoamResource,
    inbox: PushInboxResource,
    receiver: BackgroundServer,
    warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    materialize([evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": warehouse})
    poison = {
        "id": "poison-1",
        "eventType": "EVRoam.ChargingStationChanges",
        "eventTime": "2026-11-01T12:00:00Z",
        "subject": "x",
        "data": {"url": f"{subscribed.url}/notifications/chargingstations-poison.json"},
    }
    requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", json=[poison])
    subscribed.clock.advance(30)
    station = next(r for r in subscribed.stations.values() if r.body["connectors"])
    connector = station.body["connectors"][0]
    new_status = "Inoperative" if connector["operationStatus"] != "Inoperative" else "Operative"
    subscribed.set_connector_status(station.body["chargingStationId"], connector["connectorId"], new_status)
    subscribed.publish()
    from evpipeline.sources.evroam.client import EVRoamClient

    real = EVRoamClient.download

    def download(self: EVRoamClient, url: str) -> list[dict[str, Any]]:
        if "poison" in url:
            raise UnicodeDecodeError(
                "utf-8", b"\xff", 0, 1, "unexpected byte"
            )  # anything the code did not foresee
        return real(self, url)

    monkeypatch.setattr(EVRoamClient, "download", download)
    collect(evroam, inbox, warehouse)
    [dead] = [m for m in inbox.open().after("evroam", 0) if m.dedupe_key == "poison-1"]
    assert dead.status == "failed" and "UnicodeDecodeError" in (dead.note or "")
    assert query(warehouse, "SELECT status FROM ops.dead_letters WHERE message_id = ?", [dead.id]) == [
        ("failed",)
    ]
    assert (
        scalar(
            warehouse,
            "SELECT operation_status FROM evroam.connectors WHERE connector_id = ?",
            [connector["connectorId"]],
        )
        == new_status
    )


@pytest.mark.parametrize("dead_as", ["failed", "refused"])
def test_a_dead_lettered_notifications_records_still_land_through_the_delta_fallback(
    evroam: EVRoamResource,
    evroam_sim: EVRoamSimulator,
    inbox: PushInboxResource,
    receiver: BackgroundServer,
    warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
    dead_as: str,
) -> None:
    """Dead-lettering gives up on the notification, not on its records: they are still upstream, and
    the same cycle's delta pull (from the pull watermark, which pushes never move) brings them. The
    notification is the only one announcing the change, so nothing but the fallback can merge it."""
    materialize([evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": warehouse})
    evroam_sim.clock.advance(30)  # the change is newer than the bootstrap's watermark
    station = next(r for r in evroam_sim.stations.values() if r.body["connectors"])
    connector = station.body["connectors"][0]
    new_status = "Inoperative" if connector["operationStatus"] != "Inoperative" else "Operative"
    evroam_sim.set_connector_status(station.body["chargingStationId"], connector["connectorId"], new_status)
    # failed: a file the code chokes on (anything it did not foresee); refused: a URL outside the allow-list.
    url = (
        f"{evroam_sim.url}/notifications/chargingstations-poison.json"
        if dead_as == "failed"
        else "http://169.254.169.254/latest/meta-data/chargingstations.json"
    )
    notification = {
        "id": "dead-1",
        "eventType": "EVRoam.ChargingStationChanges",
        "eventTime": "2026-11-01T12:00:00Z",
        "subject": "chargingstations-dead.json",
        "data": {"url": url},
    }
    assert requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", json=[notification]).json() == {
        "stored": 1
    }
    from evpipeline.sources.evroam.client import EVRoamClient

    real = EVRoamClient.download

    def download(self: EVRoamClient, url: str) -> list[dict[str, Any]]:
        if "poison" in url:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "unexpected byte")
        return real(self, url)

    monkeypatch.setattr(EVRoamClient, "download", download)
    report = collect(evroam, inbox, warehouse)
    assert (
        scalar(
            warehouse,
            "SELECT operation_status FROM evroam.connectors WHERE connector_id = ?",
            [connector["connectorId"]],
        )
        == new_status
    )
    assert report.notes == ["1 file(s) gone or refused: delta pull instead"]
    # ... and the notification is still dead-lettered, with its status, where operators look.
    assert [d["status"] for d in report.dead_letters] == [dead_as]
    assert statuses(inbox) == [dead_as]
    assert query(warehouse, "SELECT kind, status FROM ops.dead_letters WHERE source = 'evroam'") == [
        ("chargingstations", dead_as)
    ]


def test_duplicate_deliveries_are_stored_once(receiver: BackgroundServer, inbox: PushInboxResource) -> None:
    event = {
        "id": "same-id",
        "eventType": "EVRoam.SiteChanges",
        "eventTime": "2026-11-01T12:00:00Z",
        "subject": "x",
        "data": {"url": "http://127.0.0.1/notifications/sites-1.json"},
    }
    for _ in range(3):
        requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", json=[event])
    assert inbox.open().count("evroam") == 1


def test_scheduled_push_every_five_minutes(subscribed: EVRoamSimulator, inbox: PushInboxResource) -> None:
    before = inbox.open().count("evroam")
    subscribed.advance(300)  # evolve: changes happen, then the 5-minute push fires
    assert inbox.open().count("evroam") > before
