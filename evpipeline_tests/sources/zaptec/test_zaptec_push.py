"""Zaptec push end to end: Service Bus subscription -> inbox -> sensor -> merge, and the failure paths."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from evpipeline import cli
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.zaptec import EMPTY_CHARGER_ID, ZaptecSimulator, dotnet
from evpipeline.sources.zaptec.client import SubscriptionGone, ZaptecResource
from evpipeline.sources.zaptec.push import drain, run_consumer, store, zaptec_push_sensor
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import metadata, query, scalar
from evpipeline_tests.sources.zaptec.conftest import resource_for, run_request, sync_everything


def run_sensor(zaptec: ZaptecResource, inbox: PushInboxResource, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources={"zaptec": zaptec, "inbox": inbox})
    return zaptec_push_sensor(context)


def latest(sim: ZaptecSimulator, charger_id: str, state_id: int) -> str | None:
    return sim.chargers[charger_id].value(state_id)


@pytest.fixture
def bootstrapped(zaptec: ZaptecResource, zaptec_sim: ZaptecSimulator, warehouse: WarehouseResource, inbox: PushInboxResource) -> ZaptecSimulator:
    sync_everything(zaptec, warehouse, inbox)
    return zaptec_sim


def test_pushed_state_changes_land_in_the_warehouse(
    bootstrapped: ZaptecSimulator, zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    sim = bootstrapped
    modes = {cid: c.value(710) for cid, c in sim.chargers.items()}
    sim.advance(600)  # sessions start and stop; every change is published
    sim.publish_raw({"ChargerId": EMPTY_CHARGER_ID, "StateId": 800, "Timestamp": dotnet(sim.clock.now()), "ValueAsString": "x"})
    published = sim.pending_messages()
    assert published > 0
    polls_before = len(sim.requests_to("/state"))

    result = run_sensor(zaptec, inbox)
    [request] = result.run_requests or []
    assert request.tags["zaptec/push"] == "states" and sim.pending_messages() == 0  # drained and completed
    assert inbox.open().count("zaptec") == published - 1  # the all-zero ChargerId was dropped
    merged = run_request(request, zaptec, warehouse, inbox)
    meta = metadata(merged, "zaptec/charger_states")
    assert meta["mode"] == "push" and meta["messages"] == published - 1 and meta["quarantined"] == 0
    assert len(sim.requests_to("/state")) == polls_before  # no polling needed

    # Every observation a message carried now matches the simulator; transitions are in the history.
    stored = {(c, s): v for c, s, v in query(warehouse, "SELECT charger_id, state_id, value_as_string FROM zaptec.charger_states")}
    for (charger_id, state_id), value in stored.items():
        if state_id in (710, 513, 553, -2, 718):
            assert value == latest(sim, charger_id, state_id), (charger_id, state_id)
    changed = {cid for cid, c in sim.chargers.items() if c.value(710) != modes[cid]}
    recorded = {r[0] for r in query(warehouse, "SELECT DISTINCT split_part(entity_key, '|', 1) FROM ops.status_history "
                                               "WHERE old_status IS NOT NULL AND run_id = ?", [merged.run_id])}
    assert changed and recorded == changed
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state WHERE stream = 'push'") == 0  # pushes move no watermark
    assert run_sensor(zaptec, inbox, cursor=result.cursor).run_requests == []  # nothing new: skip


def test_late_and_replayed_messages_change_nothing(
    bootstrapped: ZaptecSimulator, zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    sim = bootstrapped
    charger = next(c for c in sim.chargers.values() if c.value(710) == "3")
    _, since = charger.states[710]
    stale = {"ChargerId": charger.id, "DeviceId": charger.body["DeviceId"], "DeviceType": charger.body["DeviceType"],
             "StateId": 710, "Timestamp": dotnet(since.replace(year=since.year - 1)), "ValueAsString": "1"}
    current = {**stale, "Timestamp": dotnet(since), "ValueAsString": "3"}
    for body in (stale, current, current):  # out of order, then the current value delivered twice
        sim.publish_raw(body)
    [request] = run_sensor(zaptec, inbox).run_requests or []
    meta = metadata(run_request(request, zaptec, warehouse, inbox), "zaptec/charger_states")
    assert meta["messages"] == 3 and meta["updated"] == 0 and meta["inserted"] == 0
    assert scalar(warehouse, "SELECT operation_mode FROM zaptec.charger_states WHERE charger_id = ? AND state_id = 710",
                  [charger.id]) == "Connected_Charging"


def test_a_crash_before_completing_redelivers_and_the_inbox_keeps_one_copy(
    zaptec: ZaptecResource, zaptec_sim: ZaptecSimulator, inbox: PushInboxResource
) -> None:
    charger = next(iter(zaptec_sim.chargers))
    zaptec_sim.set_state(charger, -2, "0")
    client = zaptec.client()
    receiver = client.receiver(client.connection_details())
    message = receiver.peek_lock()
    assert message is not None and message.properties["DeliveryCount"] == 1
    assert store(inbox.open(), message) == "stored"  # ... then the consumer died before completing it
    assert receiver.peek_lock() is None  # still locked for us
    zaptec_sim.clock.advance(zaptec_sim.lock_seconds + 1)  # the lock expires
    result = drain(client, inbox.open())
    assert result.received == 1 and result.duplicates == 1 and result.stored == 0
    assert inbox.open().count("zaptec") == 1 and zaptec_sim.pending_messages() == 0


def test_a_removed_subscription_is_recreated_and_the_gap_polled(
    bootstrapped: ZaptecSimulator, zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    sim = bootstrapped
    sim.subscription_idle_seconds = 3600
    run_sensor(zaptec, inbox)  # consuming keeps it alive ...
    sim.advance(2 * 3600)  # ... until nobody consumed for two hours: Service Bus deletes it
    assert sim.subscription is None and sim.messages_lost > 0

    sim.reset_log()
    result = run_sensor(zaptec, inbox)
    [catch_up] = result.run_requests or []
    assert catch_up.tags["zaptec/push"] == "catch-up-poll"
    assert sim.subscriptions_created == 2 and sim.subscription is not None and sim.subscription.name == "integration-2"
    assert {r.status for r in sim.requests_to("/integration-1/messages/head")} == {404}  # noticed
    assert {r.status for r in sim.requests_to("/integration-2/messages/head")} == {204}  # new one, empty so far
    run_request(catch_up, zaptec, warehouse, inbox)  # what the lost messages said, polled
    stored = {(c, s): v for c, s, v in query(warehouse, "SELECT charger_id, state_id, value_as_string FROM zaptec.charger_states")}
    assert all(v == latest(sim, c, s) for (c, s), v in stored.items() if s in (710, 513, 553))

    sim.advance(120)  # new changes reach the new subscription
    requests = run_sensor(zaptec, inbox, cursor=result.cursor).run_requests or []
    assert [r.tags["zaptec/push"] for r in requests] == ["states"]


def test_when_recreation_is_impossible_polling_carries_on(zaptec_sim: ZaptecSimulator, inbox: PushInboxResource) -> None:
    legacy = resource_for(zaptec_sim, user_group_id="")  # installation-level details; no user group to re-enable
    zaptec_sim.remove_subscription()
    zaptec_sim.set_state(next(iter(zaptec_sim.chargers)), -2, "0")  # published to nobody
    with pytest.raises(SubscriptionGone, match="ask Zaptec support"):
        drain(legacy.client(), inbox.open())
    result = run_sensor(legacy, inbox)  # the sensor logs it and skips; the 15-minute poll remains
    assert result.run_requests == [] and zaptec_sim.subscriptions_created == 1
    assert any("/installation/" in r.path and r.path.endswith("/messagingConnectionDetails") for r in zaptec_sim.requests)


def test_undecodable_bodies_are_kept_and_quarantined(
    bootstrapped: ZaptecSimulator, zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    bootstrapped.publish_raw(b"\x56\x02\x0b\x01\x73\x04not json at all")
    [request] = run_sensor(zaptec, inbox).run_requests or []
    meta = metadata(run_request(request, zaptec, warehouse, inbox), "zaptec/charger_states")
    assert meta["quarantined"] == 1
    assert "not json at all" in scalar(warehouse, "SELECT raw_json FROM ops.quarantine WHERE table_name = 'zaptec.charger_states'")


def test_mc_nbfx_wrapped_bodies_are_decoded(
    bootstrapped: ZaptecSimulator, zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    charger = next(iter(bootstrapped.chargers.values()))
    text = f'{{"ChargerId":"{charger.id}","StateId":-2,"Timestamp":"{dotnet(bootstrapped.clock.now())}","ValueAsString":"0"}}'
    text = text[:-1] + " " * (123 - len(text)) + "}"  # 123 = 0x7B: the length byte reads as "{"
    # As Zaptec sends it: a .NET binary XML <string> element whose Chars8Text record holds the JSON.
    envelope = b"@\x06string\x08\x33http://schemas.microsoft.com/2003/10/Serialization/\x98"
    bootstrapped.publish_raw(envelope + bytes([len(text)]) + text.encode() + b"\x01")
    [request] = run_sensor(zaptec, inbox).run_requests or []
    run_request(request, zaptec, warehouse, inbox)
    assert scalar(warehouse, "SELECT value_bool FROM zaptec.charger_states WHERE charger_id = ? AND state_id = -2", [charger.id]) is False


def test_long_running_consumer_command(zaptec_sim: ZaptecSimulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    zaptec_sim.advance(180)
    pending = zaptec_sim.pending_messages()
    assert pending > 0
    stored = run_consumer(resource_for(zaptec_sim), PushInboxResource(directory=str(tmp_path / "a")).open(), wait_seconds=0, once=True)
    assert stored == pending

    zaptec_sim.advance(180)
    for name, value in {"ZAPTEC_BASE_URL": zaptec_sim.url, "ZAPTEC_USERNAME": zaptec_sim.username,
                        "ZAPTEC_PASSWORD": zaptec_sim.password, "ZAPTEC_USER_GROUP_ID": zaptec_sim.user_group_id,
                        "EVPIPELINE_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["zaptec-consumer", "--once", "--wait", "0"]) == 0
    assert zaptec_sim.pending_messages() == 0
    assert PushInboxResource(directory=str(tmp_path / "data" / "inbox")).open().count("zaptec") > 0
