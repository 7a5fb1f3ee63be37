"""Zaptec push end to end: Service Bus subscription -> inbox -> the lane's Zaptec feed -> merge,
and the failure paths."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from evpipeline.normalize import Rows
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.zaptec import EMPTY_CHARGER_ID, ZaptecSimulator, dotnet
from evpipeline.sources.feeds import FeedReport
from evpipeline.sources.zaptec.client import SubscriptionGone, ZaptecResource
from evpipeline.sources.zaptec.live import ZaptecFeed
from evpipeline.sources.zaptec.push import drain, store
from evpipeline.sources.zaptec.tables import STATES
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query, scalar
from evpipeline_tests.sources.zaptec.conftest import resource_for, sync_everything

log = logging.getLogger("test")


def latest(sim: ZaptecSimulator, charger_id: str, state_id: int) -> str | None:
    return sim.chargers[charger_id].value(state_id)


def collect(
    zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource, run_id: str = "lane"
) -> FeedReport:
    """Drain the subscription, then one lane cycle of the Zaptec feed."""
    drain(zaptec.client(), inbox.open())
    return ZaptecFeed(zaptec, inbox, warehouse).collect(run_id, log)


def counts(report: FeedReport) -> dict[str, int]:
    [outcome] = report.outcomes
    c = outcome.tables[STATES].counts
    return {"inserted": c.inserted, "updated": c.updated, "quarantined": outcome.tables[STATES].quarantined}


def wait_for(condition: Callable[[], object], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def bootstrapped(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> ZaptecSimulator:
    sync_everything(zaptec, warehouse, inbox)
    return zaptec_sim


def test_pushed_state_changes_land_in_the_warehouse(
    bootstrapped: ZaptecSimulator,
    zaptec: ZaptecResource,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    sim = bootstrapped
    modes = {cid: c.value(710) for cid, c in sim.chargers.items()}
    sim.advance(600)  # sessions start and stop; every change is published
    sim.publish_raw(
        {
            "ChargerId": EMPTY_CHARGER_ID,
            "StateId": 800,
            "Timestamp": dotnet(sim.clock.now()),
            "ValueAsString": "x",
        }
    )
    published = sim.pending_messages()
    assert published > 0
    polls_before = len(sim.requests_to("/state"))

    report = collect(zaptec, warehouse, inbox, run_id="lane-1")
    assert sim.pending_messages() == 0  # drained and completed
    assert (
        inbox.open().count("zaptec") == published - 1 == report.messages
    )  # the all-zero ChargerId was dropped
    assert counts(report)["quarantined"] == 0
    assert len(sim.requests_to("/state")) == polls_before  # no polling needed

    # Every observation a message carried now matches the simulator; transitions are in the history.
    stored = {
        (c, s): v
        for c, s, v in query(
            warehouse, "SELECT charger_id, state_id, value_as_string FROM zaptec.charger_states"
        )
    }
    for (charger_id, state_id), value in stored.items():
        if state_id in (710, 513, 553, -2, 718):
            assert value == latest(sim, charger_id, state_id), (charger_id, state_id)
    changed = {cid for cid, c in sim.chargers.items() if c.value(710) != modes[cid]}
    recorded = {
        r[0]
        for r in query(
            warehouse,
            "SELECT DISTINCT split_part(entity_key, '|', 1) FROM ops.status_history "
            "WHERE old_status IS NOT NULL AND run_id = 'lane-1'",
        )
    }
    assert changed and recorded == changed
    # The inbox cursor moved in the merge's transaction; no pull watermark moved.
    newest = inbox.open().newest_id("zaptec")
    assert (
        scalar(
            warehouse,
            "SELECT CAST(json_extract(cursor, '$.message_id') AS INTEGER) FROM ops.sync_state "
            "WHERE source = 'zaptec' AND stream = 'inbox'",
        )
        == newest
    )
    assert (
        scalar(warehouse, "SELECT count(*) FROM ops.sync_state WHERE source = 'zaptec' AND stream = 'push'")
        == 0
    )
    assert collect(zaptec, warehouse, inbox).outcomes == []  # nothing new


def test_late_and_replayed_messages_change_nothing(
    bootstrapped: ZaptecSimulator,
    zaptec: ZaptecResource,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    sim = bootstrapped
    charger = next(c for c in sim.chargers.values() if c.value(710) == "3")
    _, since = charger.states[710]
    stale = {
        "ChargerId": charger.id,
        "DeviceId": charger.body["DeviceId"],
        "DeviceType": charger.body["DeviceType"],
        "StateId": 710,
        "Timestamp": dotnet(since.replace(year=since.year - 1)),
        "ValueAsString": "1",
    }
    current = {**stale, "Timestamp": dotnet(since), "ValueAsString": "3"}
    for body in (stale, current, current):  # out of order, then the current value delivered twice
        sim.publish_raw(body)
    report = collect(zaptec, warehouse, inbox)
    assert report.messages == 3 and counts(report)["updated"] == 0 and counts(report)["inserted"] == 0
    assert (
        scalar(
            warehouse,
            "SELECT operation_mode FROM zaptec.charger_states WHERE charger_id = ? AND state_id = 710",
            [charger.id],
        )
        == "Connected_Charging"
    )


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


def test_a_crash_between_merge_and_cursor_is_impossible(
    bootstrapped: ZaptecSimulator,
    zaptec: ZaptecResource,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrapped.advance(300)
    drain(zaptec.client(), inbox.open())
    feed = ZaptecFeed(zaptec, inbox, warehouse)
    monkeypatch.setattr(
        feed.inbox, "advance", lambda writer, last: (_ for _ in ()).throw(RuntimeError("killed"))
    )
    with pytest.raises(RuntimeError, match="killed"):
        feed.collect("crashed", log)
    assert (
        scalar(warehouse, "SELECT count(*) FROM ops.status_history WHERE run_id = 'crashed'") == 0
    )  # rolled back together
    report = ZaptecFeed(zaptec, inbox, warehouse).collect(
        "rerun", log
    )  # a new lane reads the same messages again
    assert report.messages == inbox.open().count("zaptec")


def test_a_removed_subscription_is_recreated_and_the_gap_polled(
    bootstrapped: ZaptecSimulator,
    zaptec: ZaptecResource,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    sim = bootstrapped
    sim.subscription_idle_seconds = 3600
    drain(zaptec.client(), inbox.open())  # consuming keeps it alive ...
    sim.advance(2 * 3600)  # ... until nobody consumed for two hours: Service Bus deletes it
    assert sim.subscription is None and sim.messages_lost > 0

    sim.reset_log()
    feed = ZaptecFeed(zaptec, inbox, warehouse, wait_seconds=1)
    wake = threading.Event()
    feed.start(wake)
    try:
        assert wait_for(lambda: feed.due(time.time()) and sim.subscriptions_created == 2)
        feed.collect("lane", log)  # starts the catch-up poll of every charger
        assert feed.catch_up_thread is not None
        feed.catch_up_thread.join(timeout=30)
        assert any(m.kind == "poll" for m in inbox.open().after("zaptec", 0, limit=100_000))
        assert len(sim.requests_to("/state")) >= len(sim.chargers)
        feed.collect("lane", log)
    finally:
        feed.stop()
    assert sim.subscription is not None and sim.subscription.name == "integration-2"
    assert {r.status for r in sim.requests_to("/integration-1/messages/head")} == {404}  # noticed
    stored = {
        (c, s): v
        for c, s, v in query(
            warehouse, "SELECT charger_id, state_id, value_as_string FROM zaptec.charger_states"
        )
    }
    assert all(
        v == latest(sim, c, s) for (c, s), v in stored.items() if s in (710, 513, 553)
    )  # what the lost messages said


def test_when_recreation_is_impossible_the_listener_backs_off(
    zaptec_sim: ZaptecSimulator, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    legacy = resource_for(
        zaptec_sim, user_group_id=""
    )  # installation-level details; no user group to re-enable
    zaptec_sim.remove_subscription()
    zaptec_sim.set_state(next(iter(zaptec_sim.chargers)), -2, "0")  # published to nobody
    with pytest.raises(SubscriptionGone, match="ask Zaptec support"):
        drain(legacy.client(), inbox.open())
    feed = ZaptecFeed(legacy, inbox, warehouse, wait_seconds=1)
    feed.start(threading.Event())
    try:
        assert wait_for(
            lambda: feed.listener_error is not None and "ask Zaptec support" in feed.listener_error
        )
        before = feed.listener_failures
        time.sleep(3.0)
        assert feed.listener_failures - before <= 2  # backing off (1 s, 2 s, 4 s ...), not hammering
    finally:
        feed.stop()
    assert zaptec_sim.subscriptions_created == 1


def test_the_listener_wakes_the_lane_on_each_message(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    feed = ZaptecFeed(zaptec, inbox, warehouse, wait_seconds=5)
    wake = threading.Event()
    feed.start(wake)
    try:
        time.sleep(0.3)  # the long poll is waiting on an empty subscription
        zaptec_sim.set_state(next(iter(zaptec_sim.chargers)), -2, "0")
        assert wake.wait(timeout=3), "a stored message must wake the lane at once, not after the long poll"
        assert inbox.open().count("zaptec") == 1
    finally:
        feed.stop()


def test_undecodable_bodies_are_kept_and_quarantined(
    bootstrapped: ZaptecSimulator,
    zaptec: ZaptecResource,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    bootstrapped.publish_raw(b"\x56\x02\x0b\x01\x73\x04not json at all")
    assert counts(collect(zaptec, warehouse, inbox))["quarantined"] == 1
    assert "not json at all" in scalar(
        warehouse, "SELECT raw_json FROM ops.quarantine WHERE table_name = 'zaptec.charger_states'"
    )


def test_mc_nbfx_wrapped_bodies_are_decoded(
    bootstrapped: ZaptecSimulator,
    zaptec: ZaptecResource,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    charger = next(iter(bootstrapped.chargers.values()))
    text = (
        f'{{"ChargerId":"{charger.id}","StateId":-2,'
        f'"Timestamp":"{dotnet(bootstrapped.clock.now())}","ValueAsString":"0"}}'
    )
    text = text[:-1] + " " * (123 - len(text)) + "}"  # 123 = 0x7B: the length byte reads as "{"
    # As Zaptec sends it: a .NET binary XML <string> element whose Chars8Text record holds the JSON.
    envelope = b"@\x06string\x08\x33http://schemas.microsoft.com/2003/10/Serialization/\x98"
    bootstrapped.publish_raw(envelope + bytes([len(text)]) + text.encode() + b"\x01")
    collect(zaptec, warehouse, inbox)
    assert (
        scalar(
            warehouse,
            "SELECT value_bool FROM zaptec.charger_states WHERE charger_id = ? AND state_id = -2",
            [charger.id],
        )
        is False
    )


def test_a_poison_message_is_dead_lettered_and_the_rest_merge(
    bootstrapped: ZaptecSimulator,
    zaptec: ZaptecResource,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evpipeline.sources.zaptec import assets

    sim = bootstrapped
    charger = next(iter(sim.chargers.values()))
    good = {
        "ChargerId": charger.id,
        "StateId": -2,
        "Timestamp": dotnet(sim.clock.now()),
        "ValueAsString": "0",
    }
    sim.publish_raw(good)
    sim.publish_raw({**good, "ChargerId": "poison"})
    sim.publish_raw({**good, "StateId": 710, "ValueAsString": "3"})
    real = assets.normalize.observations

    def observations(records: Iterable[Any]) -> Rows:
        records = list(records)
        if any(r.get("ChargerId") == "poison" for r in records if isinstance(r, dict)):
            raise KeyError("something nobody foresaw")
        return real(records)

    monkeypatch.setattr(assets.normalize, "observations", observations)
    report = collect(zaptec, warehouse, inbox)
    assert [d["status"] for d in report.dead_letters] == ["failed"]
    assert query(
        warehouse, "SELECT status, reason LIKE 'KeyError%' FROM ops.dead_letters WHERE source = 'zaptec'"
    ) == [("failed", True)]
    assert (
        scalar(
            warehouse,
            "SELECT value_bool FROM zaptec.charger_states WHERE charger_id = ? AND state_id = -2",
            [charger.id],
        )
        is False
    )
    assert (
        scalar(
            warehouse,
            "SELECT operation_mode FROM zaptec.charger_states WHERE charger_id = ? AND state_id = 710",
            [charger.id],
        )
        == "Connected_Charging"
    )
    assert collect(zaptec, warehouse, inbox).messages == 0  # the cursor passed all three
