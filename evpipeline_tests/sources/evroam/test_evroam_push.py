"""EVRoam push end to end: subscription handshake, webhook receiver, sensor, file download, fallbacks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import requests

from evpipeline.inbox import Inbox
from evpipeline.model.assets import mart_model
from evpipeline.resources import PushInboxResource
from evpipeline.serving import BackgroundServer
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.push import create_webhook_app, evroam_push_sensor
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, metadata, scalar

KEY = "hook-key-123"


@pytest.fixture
def inbox(tmp_path: Any) -> PushInboxResource:
    return PushInboxResource(directory=str(tmp_path / "inbox"))


@pytest.fixture
def receiver(inbox: PushInboxResource) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_webhook_app(inbox.open(), KEY)) as server:
        yield server


@pytest.fixture
def subscribed(evroam: EVRoamResource, evroam_sim: EVRoamSimulator, receiver: BackgroundServer) -> EVRoamSimulator:
    message = evroam.client().subscribe(f"{receiver.url}/api/evroam_listener?code={KEY}")
    assert message.startswith("Subscription created with end point")
    assert evroam_sim.wait_validated(), "the receiver did not answer the Event Grid handshake"
    return evroam_sim


def run_sensor(evroam: EVRoamResource, inbox: PushInboxResource, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources={"evroam": evroam, "inbox": inbox})
    return evroam_push_sensor(context)


def execute(request: dg.RunRequest, evroam: EVRoamResource, warehouse: WarehouseResource) -> dg.ExecuteInProcessResult:
    return materialize(
        [evroam_sites, evroam_stations, mart_model], {"evroam": evroam, "warehouse": warehouse},
        run_config=request.run_config, selection=request.asset_selection,
    )


def test_handshake_answered_and_receiver_requires_its_key(subscribed: EVRoamSimulator, receiver: BackgroundServer) -> None:
    assert subscribed.subscription is not None and subscribed.subscription.validated
    assert requests.post(f"{receiver.url}/api/evroam_listener", json=[]).status_code == 401
    assert requests.post(f"{receiver.url}/api/evroam_listener?code=wrong", json=[]).status_code == 401
    assert requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", data=b"{not json").status_code == 400


def test_push_file_downloaded_and_merged(
    subscribed: EVRoamSimulator, evroam: EVRoamResource, inbox: PushInboxResource, warehouse: WarehouseResource
) -> None:
    materialize([evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": warehouse})  # local cache first
    station = next(r for r in subscribed.stations.values() if r.body["connectors"])
    connector = station.body["connectors"][0]
    new_status = "Inoperative" if connector["operationStatus"] != "Inoperative" else "Operative"
    subscribed.clock.advance(30)
    subscribed.set_connector_status(station.body["chargingStationId"], connector["connectorId"], new_status)
    events = subscribed.publish()
    assert any(e["eventType"] == "EVRoam.ChargingStationChanges" for e in events)
    assert inbox.open().count("evroam") == len(events)

    result = run_sensor(evroam, inbox)
    assert result.cursor is not None and result.run_requests
    station_run = next(r for r in result.run_requests if r.tags["evroam/push"] == "chargingstations")
    merged = execute(station_run, evroam, warehouse)
    assert metadata(merged, "evroam/connectors")["updated"] >= 1
    assert scalar(warehouse, "SELECT operation_status FROM evroam.connectors WHERE connector_id = ?", [connector["connectorId"]]) == new_status
    # The pull watermark is not moved by pushes.
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state WHERE stream LIKE 'push%'") == 0
    # Nothing new: the sensor skips.
    assert run_sensor(evroam, inbox, cursor=result.cursor).run_requests == []


def test_expired_file_falls_back_to_a_delta_sync(
    subscribed: EVRoamSimulator, evroam: EVRoamResource, inbox: PushInboxResource, warehouse: WarehouseResource
) -> None:
    materialize([evroam_sites, evroam_stations], {"evroam": evroam, "warehouse": warehouse})
    subscribed.clock.advance(60)
    record = next(iter(subscribed.stations.values()))
    subscribed.soft_delete_station(record.body["chargingStationId"])
    subscribed.publish()
    subscribed.clock.advance(2 * 3600)  # the sensor was down for two hours: the file expired
    result = run_sensor(evroam, inbox)
    [fallback] = result.run_requests
    assert fallback.tags["evroam/push"] == "fallback-delta" and not fallback.run_config
    assert Inbox(inbox.open().path).after("evroam", 0)[0].status == "fallback"
    execute(fallback, evroam, warehouse)
    assert scalar(warehouse, "SELECT is_deleted FROM evroam.charging_stations WHERE charging_station_id = ?", [record.body["chargingStationId"]])


def test_deleted_file_falls_back(subscribed: EVRoamSimulator, evroam: EVRoamResource, inbox: PushInboxResource) -> None:
    subscribed.clock.advance(60)
    subscribed.soft_delete_station(next(iter(subscribed.stations)))
    subscribed.publish()
    subscribed.expire_files()  # storage deleted it: 404
    [fallback] = run_sensor(evroam, inbox).run_requests
    assert fallback.tags["evroam/push"] == "fallback-delta"


def test_url_outside_allow_list_is_refused_not_fetched(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, inbox: PushInboxResource, receiver: BackgroundServer
) -> None:
    event = {
        "id": "evil-1", "eventType": "EVRoam.ChargingStationChanges", "eventTime": "2026-11-01T12:00:00Z",
        "subject": "/blobServices/default/containers/notifications/blobs/chargingstations-x.json",
        "data": {"url": "http://169.254.169.254/latest/meta-data/chargingstations.json"},
    }
    assert requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", json=[event]).json() == {"stored": 1}
    before = len(evroam_sim.requests)
    result = run_sensor(evroam, inbox)
    assert result.run_requests == []
    [message] = inbox.open().after("evroam", 0)
    assert message.status == "refused" and "allow-list" in (message.note or "")
    assert len(evroam_sim.requests) == before


def test_duplicate_deliveries_are_stored_once(receiver: BackgroundServer, inbox: PushInboxResource) -> None:
    event = {"id": "same-id", "eventType": "EVRoam.SiteChanges", "eventTime": "2026-11-01T12:00:00Z",
             "subject": "x", "data": {"url": "http://127.0.0.1/notifications/sites-1.json"}}
    for _ in range(3):
        requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", json=[event])
    assert inbox.open().count("evroam") == 1


def test_scheduled_push_every_five_minutes(subscribed: EVRoamSimulator, inbox: PushInboxResource) -> None:
    before = inbox.open().count("evroam")
    subscribed.advance(300)  # evolve: changes happen, then the 5-minute push fires
    assert inbox.open().count("evroam") > before
