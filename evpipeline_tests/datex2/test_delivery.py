"""DATEX II delivery end to end over real HTTP: our pushes (`evpipeline.datex2.delivery`) against the
receiver simulator, which judges every delivery against the AFIR profile as an access point would.

The mart is a small clean fleet written through the shared merge (`mart_fixture`); the receiver is
one server per module, reset for every test. Expected values are literals (read off the fleet below
and the profile's code lists), never computed by the code under test."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from evpipeline.datex2 import delivery
from evpipeline.datex2.client import Datex2AuthError, Datex2PushResource
from evpipeline.datex2.delivery import (
    Datex2Lane,
    Delivery,
    StatusPushBusy,
    push_static,
    push_statuses,
    status_lock,
)
from evpipeline.locks import exclusive
from evpipeline.ndw.push_sync import mart_newest
from evpipeline.serving import free_port
from evpipeline.simulators.datex2 import Datex2Simulator
from evpipeline.simulators.datex2 import Delivery as Received
from evpipeline.simulators.toolkit import SimClock
from evpipeline.warehouse import WarehouseResource, read_sync_state
from evpipeline_tests.conftest import query
from evpipeline_tests.datex2.fleet import point_statuses, reference_problems, status_publication
from evpipeline_tests.mart_fixture import MartRows, later
from evpipeline_tests.typed import present, running

TOKEN = "test-datex2-delivery-token"
COUNTRIES = ["NLD"]
# The table's idG is `<creator>:table:<country>`; every object's first version is "1".
TABLE_ID = "NL:delivery-test:table:NLD"
# Charging points are `<country>:<party>:<location>:<evse_uid>`, sites `<country>:<party>:<location>`.
L1E1, L1E2 = "NL:ALF:LOC-0001:LOC-0001-E1", "NL:ALF:LOC-0001:LOC-0001-E2"
L2E1, L2E2 = "NL:ALF:LOC-0002:LOC-0002-E1", "NL:ALF:LOC-0002:LOC-0002-E2"
FAST_RATE = "NL:ALF:rate:T-FAST"


def small_fleet() -> MartRows:
    """Two locations of two EVSEs (one connector each), every one publishable: LOC-0001-E2 alone is
    on the ad hoc tariff T-FAST, the other three on T-STD (0,35 EUR/kWh excl. VAT, both)."""
    m = MartRows()
    m.operator("ALF")
    m.tariff("T-STD")
    m.tariff("T-FAST")
    for n in (1, 2):
        loc = m.location(n)
        for e in (1, 2):
            evse = m.evse(loc, e, status="CHARGING" if (n, e) == (1, 2) else "AVAILABLE")
            m.connector(evse, 1, tariffs=["T-FAST"] if (n, e) == (1, 2) else ["T-STD"])
    return m


@pytest.fixture(scope="module")
def _receiver() -> Iterator[Datex2Simulator]:
    # One server per module (stopping one costs the toolkit's poll interval); reset for every test.
    with running(Datex2Simulator(clock=SimClock(), token=TOKEN)) as sim:
        yield sim


@pytest.fixture
def nap(_receiver: Datex2Simulator, clock: SimClock) -> Datex2Simulator:
    _receiver.reset(clock)
    return _receiver


@pytest.fixture
def datex2(nap: Datex2Simulator) -> Datex2PushResource:
    # Short backoffs: a test of a failing receiver must not wait out production's.
    return Datex2PushResource(
        push_url=nap.base_url,
        token=TOKEN,
        publication_creator="NL:delivery-test",
        backoff_base=0.01,
        backoff_max=0.05,
        read_timeout=5.0,
    )


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    """The status pushes' lock file, one per test (as one per data directory in a deployment)."""
    return status_lock(tmp_path)


@pytest.fixture
def fleet() -> MartRows:
    return small_fleet()


@pytest.fixture
def mart(warehouse: WarehouseResource, fleet: MartRows) -> WarehouseResource:
    fleet.write(warehouse)
    return warehouse


def received(
    nap: Datex2Simulator,
    protocol: str | None = None,
    *,
    kind: str | None = None,
    accepted: bool | None = None,
) -> list[Received]:
    """The receiver's deliveries, oldest first (`protocol`: snapshotPush or deltaPush as the message
    said; `kind`: static or status, which also covers an injected fault that read no message)."""
    return [
        d
        for d in nap.deliveries()
        if (protocol is None or d.protocol == protocol)
        and (kind is None or d.kind == kind)
        and (accepted is None or d.accepted == accepted)
    ]


def points_in(document: Any) -> dict[str, dict[str, Any]]:
    """The charging point statuses a status publication carries, by point id."""
    return {p["reference"]["idG"]: p for _, _, p in point_statuses(document)}


def newest(warehouse: WarehouseResource) -> datetime:
    """The mart's newest change, as the lane hands it to its DATEX II step."""
    with warehouse.get_connection() as con:
        return present(mart_newest(con))


def updated(row: dict[str, Any], minutes: int, **changes: Any) -> dict[str, Any]:
    """A mart row as its source reports it again `minutes` after the fleet's T0, with `changes`."""
    return {**row, **changes, "last_updated": later(minutes), "source_last_updated": later(minutes)}


def initial_sync(
    warehouse: WarehouseResource, datex2: Datex2PushResource, lock: Path
) -> tuple[Delivery, Delivery]:
    """What a new deployment does first: the static table, then every status (snapshotPush)."""
    static = present(push_static(warehouse, datex2, COUNTRIES, run_id="static-1"))
    snapshot = present(
        push_statuses(warehouse, datex2, COUNTRIES, run_id="snapshot-1", snapshot=True, lock=lock)
    )
    return static, snapshot


# --------------------------------------------------------------------------------------------
# 1. The initial static table and status snapshot


def test_initial_static_and_snapshot_are_accepted_and_the_snapshot_references_the_static_ids_and_versions(
    mart: WarehouseResource, datex2: Datex2PushResource, nap: Datex2Simulator, lock: Path
) -> None:
    static, snapshot = initial_sync(mart, datex2, lock)

    assert (static.outcome.outcome, static.outcome.http_status) == ("accepted", 200), static.outcome.message
    assert (snapshot.outcome.outcome, snapshot.outcome.http_status) == ("accepted", 200), (
        snapshot.outcome.message
    )
    table_push, status_push = received(
        nap
    )  # exactly these two deliveries, both passing the receiver's checks
    assert (table_push.kind, table_push.accepted, table_push.errors) == ("static", True, [])
    assert (status_push.kind, status_push.protocol, status_push.accepted, status_push.errors) == (
        "status",
        "snapshotPush",
        True,
        [],
    )

    held = present(nap.accepted_static())
    assert held["tables"] == {TABLE_ID: {"versionG": "1"}}
    assert set(held["chargingPoints"]) == {L1E1, L1E2, L2E1, L2E2}
    # Every reference of the snapshot (table, site, station, point: id and version) resolves in the
    # static table the receiver accepted, as a consumer joining the two would need.
    document = status_push.document
    assert status_publication(document)["tableReference"] == [
        {"targetClass": "EnergyInfrastructureTable", "idG": TABLE_ID, "versionG": "1"}
    ]
    assert reference_problems(nap.static_document(), document) == []
    assert {p: s["reference"]["versionG"] for p, s in points_in(document).items()} == {
        L1E1: "1",
        L1E2: "1",
        L2E1: "1",
        L2E2: "1",
    }
    # The receiver now holds every point's status (OCPI CHARGING -> charging, AVAILABLE -> available).
    assert {p: s["status"] for p, s in nap.point_statuses().items()} == {
        L1E1: "available",
        L1E2: "charging",
        L2E1: "available",
        L2E2: "available",
    }
    # And our ledger says what the receiver holds: the table version each point's status references.
    assert query(mart, "SELECT point_id, table_version, status FROM ops.datex2_held ORDER BY 1") == [
        (L1E1, "1", "available"),
        (L1E2, "1", "charging"),
        (L2E1, "1", "available"),
        (L2E2, "1", "available"),
    ]


def test_a_refused_static_table_is_not_rebuilt_or_sent_again_until_its_content_changes(
    mart: WarehouseResource,
    datex2: Datex2PushResource,
    nap: Datex2Simulator,
    fleet: MartRows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 413 is a verdict: sending the same table every 15 minutes would only be refused again."""
    monkeypatch.setattr(nap, "max_body_bytes", 1_000)  # the table of four points is larger
    first = present(push_static(mart, datex2, COUNTRIES, run_id="static-1"))
    assert (first.outcome.outcome, first.outcome.http_status, first.pushed) == ("refused", 413, True)

    again = present(push_static(mart, datex2, COUNTRIES, run_id="static-2"))
    assert (again.outcome.outcome, again.outcome.http_status, again.pushed, again.outcome.ok) == (
        "refused",
        413,
        False,
        False,
    )
    assert again.outcome.message.startswith("not resent: the receiver refused this same table at ")
    assert "this receiver takes at most 1000" in again.outcome.message  # the receiver's own reason, kept
    assert len(received(nap, kind="static")) == 1  # nothing went over the wire the second time

    forced = present(
        push_static(mart, datex2, COUNTRIES, run_id="static-3", force=True)
    )  # on demand: sent anyway
    assert (forced.outcome.outcome, forced.pushed) == ("refused", True) and len(
        received(nap, kind="static")
    ) == 2

    # New content is a new document: sent (and, the receiver fixed, accepted).
    monkeypatch.setattr(nap, "max_body_bytes", 64 * 1024 * 1024)
    [location] = [row for row in fleet.locations if row["location_id"] == "LOC-0002"]
    MartRows(locations=[updated(location, 30, name="Laadplein Noord")]).write(mart, run_id="rename")
    renamed = present(push_static(mart, datex2, COUNTRIES, run_id="static-4"))
    assert (renamed.outcome.outcome, renamed.pushed) == ("accepted", True) and len(
        received(nap, kind="static")
    ) == 3


# --------------------------------------------------------------------------------------------
# 2. A status change -> one deltaPush of that point


def test_a_status_change_goes_out_as_a_delta_of_that_point_alone_and_a_cycle_without_change_sends_nothing(
    mart: WarehouseResource, fleet: MartRows, datex2: Datex2PushResource, nap: Datex2Simulator, lock: Path
) -> None:
    initial_sync(mart, datex2, lock)
    lane = Datex2Lane(mart, datex2, COUNTRIES, lock=lock)
    l2e1, l2e2 = fleet.evses[2], fleet.evses[3]
    assert (l2e1["evse_uid"], l2e2["evse_uid"]) == ("LOC-0002-E1", "LOC-0002-E2")

    MartRows(evses=[updated(l2e1, 5, status="OUTOFORDER")]).write(mart, "feed-1")
    report = present(lane.cycle("lane-1", newest(mart)))

    assert report.advanced and present(report.delivery).outcome.ok, present(report.delivery).outcome.message
    (delta,) = received(nap, "deltaPush")
    assert (delta.accepted, delta.errors) == (True, [])
    carried = points_in(delta.document)
    assert list(carried) == [L2E1]  # not its unchanged neighbour at the same site, nor the other site
    assert carried[L2E1]["status"] == {"value": "outOfOrder"}
    assert carried[L2E1]["lastUpdated"] == "2026-11-01T08:05:00Z"
    assert {p: s["status"] for p, s in nap.point_statuses().items()} == {
        L1E1: "available",
        L1E2: "charging",
        L2E1: "outOfOrder",
        L2E2: "available",
    }

    # The next cycle with the mart where it was: nothing to look at.
    assert lane.cycle("lane-2", newest(mart)) is None
    # The mart moves without a DATEX II change (the source re-reports LOC-0002-E2 as it was): the
    # cycle looks at LOC-0002 again, and the diff against what the receiver holds is empty; the
    # outOfOrder it was sent is not sent again.
    MartRows(evses=[updated(l2e2, 6)]).write(mart, "feed-2")
    quiet = present(lane.cycle("lane-3", newest(mart)))
    assert quiet.scope >= 1 and quiet.delivery is None and quiet.advanced
    assert len(received(nap, "deltaPush")) == 1


# --------------------------------------------------------------------------------------------
# 3. An ad hoc price change -> energyRateUpdate of the points on that tariff


def test_an_ad_hoc_tariff_change_goes_out_as_an_energy_rate_update_of_the_points_on_that_tariff(
    mart: WarehouseResource, fleet: MartRows, datex2: Datex2PushResource, nap: Datex2Simulator, lock: Path
) -> None:
    initial_sync(mart, datex2, lock)
    # No overlap: the cycle's scope is the tariff change alone (no location, EVSE or connector row
    # changed), so the points must be found through the rate the receiver holds for them, not
    # because the overlap happened to re-read the fixture's rows.
    lane = Datex2Lane(mart, datex2, COUNTRIES, lock=lock, overlap=timedelta(0))
    fast = fleet.tariffs[1]
    assert fast["tariff_id"] == "T-FAST"
    elements = [{"price_components": [{"type": "ENERGY", "price": 0.49, "vat": 21.0, "step_size": 1}]}]

    MartRows(tariffs=[updated(fast, 5, elements=json.dumps(elements))]).write(mart, "feed-1")
    report = present(lane.cycle("lane-1", newest(mart)))

    assert report.delivery is not None, (
        f"no deltaPush: the tariff change found no point ({report.scope} locations in scope)"
    )
    assert report.delivery.outcome.ok, report.delivery.outcome.message
    (delta,) = received(nap, "deltaPush")
    assert (delta.accepted, delta.errors) == (True, [])
    carried = points_in(delta.document)
    assert list(carried) == [L1E2]  # the only point on T-FAST; the T-STD points keep their price
    (rate_update,) = carried[L1E2]["energyRateUpdate"]
    assert rate_update["energyRateReference"]["idG"] == FAST_RATE
    assert rate_update["energyPrice"] == [
        {"priceType": {"value": "pricePerKWh"}, "value": 0.49, "taxIncluded": False, "taxRate": 21.0}
    ]
    assert carried[L1E2]["status"] == {"value": "charging"}  # the status it had, repeated
    # The receiver now quotes the new ad hoc price for that point (it had the snapshot's 0,35).
    assert present(nap.energy_rate(FAST_RATE))["updates"] == {
        f"point {L1E2}": {
            "lastUpdated": "2026-11-01T08:05:00Z",
            "energyPrice": [
                {"priceType": {"value": "pricePerKWh"}, "value": 0.49, "taxIncluded": False, "taxRate": 21.0}
            ],
        }
    }


# --------------------------------------------------------------------------------------------
# 4. The receiver fails a delta -> delivered once, later


class LaneTime:
    """`time` as delivery.py reads it, with a wall clock the test moves: the lane's retry backoff
    (`time.time()`) elapses without a sleep; durations stay real."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return time.perf_counter()


def lane_cursor(warehouse: WarehouseResource) -> datetime | None:
    with warehouse.get_connection() as con:
        return read_sync_state(con, "datex2", "lane")[0]


def test_a_delta_the_receiver_fails_is_delivered_once_by_a_later_cycle_and_the_cursor_waits_for_it(
    mart: WarehouseResource,
    fleet: MartRows,
    nap: Datex2Simulator,
    monkeypatch: pytest.MonkeyPatch,
    lock: Path,
) -> None:
    clock = LaneTime()
    monkeypatch.setattr(delivery, "time", clock)
    # Two tries per push (the HTTP layer retries a 500 once), so two injected 500s fail it for good.
    datex2 = Datex2PushResource(
        push_url=nap.base_url,
        token=TOKEN,
        publication_creator="NL:delivery-test",
        max_attempts=2,
        backoff_base=0.01,
        backoff_max=0.05,
        read_timeout=5.0,
    )
    initial_sync(mart, datex2, lock)
    lane = Datex2Lane(mart, datex2, COUNTRIES, lock=lock)
    before = lane_cursor(mart)
    MartRows(evses=[updated(fleet.evses[2], 5, status="OUTOFORDER")]).write(mart, "feed-1")
    nap.fail_next(2, status=500, endpoint="status")

    failed = present(lane.cycle("lane-1", newest(mart)))

    assert failed.delivery is not None and failed.delivery.outcome.outcome == "failed"
    assert failed.delivery.outcome.http_status == 500 and not failed.advanced
    assert [(d.http_status, d.accepted) for d in received(nap, kind="status")[1:]] == [
        (500, False),
        (500, False),
    ]
    # Nothing moved past the undelivered change: the cursor, and what we believe the receiver holds.
    assert lane_cursor(mart) == before
    assert query(mart, "SELECT status FROM ops.datex2_held WHERE point_id = ?", [L2E1]) == [("available",)]
    assert present(nap.point_status(L2E1))["status"] == "available"
    # Within the backoff the lane does not hammer the receiver.
    assert lane.cycle("lane-2", newest(mart)) is None
    assert len(received(nap, kind="status")) == 3

    clock.now += 61  # past the longest backoff (60 s); the mart did not move meanwhile
    retried = present(lane.cycle("lane-3", newest(mart)))

    assert retried.delivery is not None and retried.delivery.outcome.ok, retried.delivery
    assert retried.advanced and lane_cursor(mart) == newest(mart)
    (delta,) = received(nap, "deltaPush", accepted=True)
    assert list(points_in(delta.document)) == [L2E1]
    assert present(nap.point_status(L2E1))["status"] == "outOfOrder"
    # Delivered once: the next cycles send nothing more, and the log has the failure then the delivery.
    assert lane.cycle("lane-4", newest(mart)) is None
    MartRows(evses=[updated(fleet.evses[3], 6)]).write(mart, "feed-2")  # the mart moves, DATEX II unchanged
    assert present(lane.cycle("lane-5", newest(mart))).delivery is None
    assert len(received(nap, "deltaPush")) == 1
    assert query(
        mart,
        "SELECT run_id, protocol, outcome, http_status, attempts, points FROM ops.datex2_pushes "
        "WHERE protocol = 'deltaPush' ORDER BY pushed_at",
    ) == [("lane-1", "deltaPush", "failed", 500, 2, 1), ("lane-3", "deltaPush", "accepted", 200, 1, 1)]


# --------------------------------------------------------------------------------------------
# 5. The daily snapshot and the lane's deltas never cross


def test_a_lane_delta_waits_for_a_snapshot_in_flight_so_the_snapshot_is_not_refused_for_going_backwards(
    mart: WarehouseResource, fleet: MartRows, datex2: Datex2PushResource, nap: Datex2Simulator, lock: Path
) -> None:
    """The snapshot reads every status, then POSTs; a delta of a newer change accepted in between
    would make the snapshot's older lastUpdated go backwards (the receiver refuses it: rule T6)."""
    initial_sync(mart, datex2, lock)
    lane = Datex2Lane(mart, datex2, COUNTRIES, lock=lock)
    gate = nap.hold_next("status")  # the snapshot's POST waits at the receiver, already read
    result: dict[str, Delivery | BaseException | None] = {}

    def snapshot() -> None:
        try:
            result["snapshot"] = push_statuses(
                mart, datex2, COUNTRIES, run_id="snapshot-2", snapshot=True, lock=lock
            )
        except BaseException as exc:  # handed to the test thread
            result["snapshot"] = exc

    thread = threading.Thread(target=snapshot)
    thread.start()
    try:
        assert gate.arrived.wait(10), "the snapshot never reached the receiver"
        # A newer change lands while the snapshot is in flight; the lane's cycle must not overtake it.
        MartRows(evses=[updated(fleet.evses[2], 5, status="OUTOFORDER")]).write(mart, "feed-1")
        busy = present(lane.cycle("lane-1", newest(mart)))
        assert (busy.busy, busy.delivery, busy.advanced) == (True, None, False)
    finally:
        gate.release.set()
        thread.join(30)
    snapshot_delivery = result["snapshot"]
    assert isinstance(snapshot_delivery, Delivery), snapshot_delivery
    assert snapshot_delivery.outcome.ok, snapshot_delivery.outcome.message

    # The next cycle sends the change, on top of the snapshot the receiver now holds.
    report = present(lane.cycle("lane-2", newest(mart)))
    assert report.delivery is not None and report.delivery.outcome.ok, report.delivery
    assert [(d.protocol, d.accepted) for d in received(nap, kind="status")] == [
        ("snapshotPush", True),
        ("snapshotPush", True),
        ("deltaPush", True),
    ]
    assert present(nap.point_status(L2E1))["status"] == "outOfOrder"
    assert present(nap.point_status(L2E1))["lastUpdated"] == "2026-11-01T08:05:00Z"


def test_a_snapshot_gives_up_with_a_specific_error_when_the_status_lock_stays_held(
    mart: WarehouseResource, datex2: Datex2PushResource, nap: Datex2Simulator, lock: Path
) -> None:
    initial_sync(mart, datex2, lock)
    with exclusive(lock, 0.0) as held:  # a stuck holder
        assert held
        with pytest.raises(StatusPushBusy, match=r"another DATEX II status push held status.lock for 0 s"):
            push_statuses(
                mart, datex2, COUNTRIES, run_id="snapshot-2", snapshot=True, lock=lock, lock_wait_seconds=0.0
            )
    assert len(received(nap, kind="status")) == 1  # only the initial snapshot went out


def test_a_static_change_bumps_the_point_version_and_later_deltas_reference_the_new_versions(
    mart: WarehouseResource, fleet: MartRows, datex2: Datex2PushResource, nap: Datex2Simulator, lock: Path
) -> None:
    """A consumer joins statuses to the static table by id and version: once the receiver holds a new
    version of a point, every later status of it must name that version (and the new table's)."""
    initial_sync(mart, datex2, lock)
    lane = Datex2Lane(mart, datex2, COUNTRIES, lock=lock)
    l2e1_connector = fleet.connectors[2]
    assert l2e1_connector["evse_uid"] == "LOC-0002-E1"
    # 16 A instead of 32 A on three phases: 11 kW (230 V x 16 A x 3), a new charging point content.
    MartRows(connectors=[updated(l2e1_connector, 5, max_amperage=16, max_electric_power=11040)]).write(
        mart, "feed-1"
    )
    static = present(push_static(mart, datex2, COUNTRIES, run_id="static-2"))
    assert static.outcome.ok, static.outcome.message
    held = present(nap.accepted_static())
    # The table's own content (its id, its sites by id) did not change: its version did not either.
    assert held["tables"] == {TABLE_ID: {"versionG": "1"}}
    assert {p: v["versionG"] for p, v in held["chargingPoints"].items()} == {
        L1E1: "1",
        L1E2: "1",
        L2E1: "2",
        L2E2: "1",
    }

    MartRows(evses=[updated(fleet.evses[2], 10, status="OUTOFORDER")]).write(mart, "feed-2")
    report = present(lane.cycle("lane-1", newest(mart)))

    assert report.delivery is not None and report.delivery.outcome.ok, report.delivery
    delta = received(nap, "deltaPush")[-1]
    assert (delta.accepted, delta.errors) == (True, [])
    assert status_publication(delta.document)["tableReference"] == [
        {"targetClass": "EnergyInfrastructureTable", "idG": TABLE_ID, "versionG": "1"}
    ]
    assert {p: s["reference"]["versionG"] for p, s in points_in(delta.document).items()} == {L2E1: "2"}
    assert reference_problems(nap.static_document(), delta.document) == []
    assert query(
        mart, "SELECT point_version, table_version, status FROM ops.datex2_held WHERE point_id = ?", [L2E1]
    ) == [("2", "1", "outOfOrder")]


def test_a_receiver_that_is_down_fails_the_push_holds_nothing_new_and_the_next_push_delivers_it(
    mart: WarehouseResource, fleet: MartRows, datex2: Datex2PushResource, nap: Datex2Simulator, lock: Path
) -> None:
    """Connection refused is an outage, not a verdict: logged as failed, retried, never taken as held."""
    down = datex2.model_copy(update={"push_url": f"http://127.0.0.1:{free_port()}/datex2", "max_attempts": 2})

    static = present(push_static(mart, down, COUNTRIES, run_id="static-1"))

    assert (static.outcome.outcome, static.outcome.http_status, static.outcome.ok, static.pushed) == (
        "failed",
        None,
        False,
        True,
    )
    assert static.outcome.attempts == 2  # the connection was tried again before giving up
    assert "connection" in static.outcome.message.lower(), static.outcome.message
    assert query(mart, "SELECT count(*) FROM ops.datex2_held") == [(0,)]
    assert query(mart, "SELECT document, outcome, ok, http_status, attempts FROM ops.datex2_pushes") == [
        ("static", "failed", False, None, 2)
    ]
    # Back up: the same table goes out (nothing recorded it as delivered or refused).
    again = present(push_static(mart, datex2, COUNTRIES, run_id="static-2"))
    assert again.outcome.ok and len(received(nap, kind="static", accepted=True)) == 1

    # The lane's delta to a receiver that is down: failed, cursor kept, nothing taken as held.
    present(push_statuses(mart, datex2, COUNTRIES, run_id="snapshot-1", snapshot=True, lock=lock))
    cursor = lane_cursor(mart)
    MartRows(evses=[updated(fleet.evses[2], 5, status="OUTOFORDER")]).write(mart, "feed-1")
    failed = present(Datex2Lane(mart, down, COUNTRIES, lock=lock).cycle("lane-1", newest(mart)))
    assert failed.delivery is not None and failed.delivery.outcome.outcome == "failed"
    assert not failed.advanced and lane_cursor(mart) == cursor
    assert query(mart, "SELECT status FROM ops.datex2_held WHERE point_id = ?", [L2E1]) == [("available",)]
    # The receiver reachable again, a lane delivers the change.
    delivered = present(Datex2Lane(mart, datex2, COUNTRIES, lock=lock).cycle("lane-2", newest(mart)))
    assert delivered.delivery is not None and delivered.delivery.outcome.ok and delivered.advanced
    assert present(nap.point_status(L2E1))["status"] == "outOfOrder"


# --------------------------------------------------------------------------------------------
# 6. A wrong DATEX2_PUSH_TOKEN


WRONG_TOKEN = "wrong-datex2-token-5f0c9e"


def test_a_wrong_push_token_fails_with_a_specific_error_that_names_the_setting_and_no_secret(
    mart: WarehouseResource,
    fleet: MartRows,
    datex2: Datex2PushResource,
    nap: Datex2Simulator,
    caplog: pytest.LogCaptureFixture,
    lock: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = datex2.model_copy(update={"token": WRONG_TOKEN})

    # The static push (the first thing a deployment sends) fails the run, loudly and specifically.
    with pytest.raises(Datex2AuthError) as static_error:
        push_static(mart, wrong, COUNTRIES, run_id="static-1")
    assert str(static_error.value).startswith(
        "the DATEX II receiver answered HTTP 401: check DATEX2_PUSH_TOKEN"
    )
    assert static_error.value.status == 401
    assert nap.accepted_static() is None and query(mart, "SELECT count(*) FROM ops.datex2_held") == [(0,)]

    # The lane's delta too: it raises (the lane reports it as its DATEX II step's error) and its
    # cursor stays where the change is still ahead of it.
    initial_sync(mart, datex2, lock)
    cursor = lane_cursor(mart)
    MartRows(evses=[updated(fleet.evses[2], 5, status="OUTOFORDER")]).write(mart, "feed-1")
    with pytest.raises(Datex2AuthError) as lane_error:
        Datex2Lane(mart, wrong, COUNTRIES, lock=lock).cycle("lane-1", newest(mart))
    assert "HTTP 401: check DATEX2_PUSH_TOKEN" in str(lane_error.value)
    assert lane_cursor(mart) == cursor
    assert [(d.kind, d.http_status) for d in received(nap, accepted=False)] == [
        ("static", 401),
        ("status", 401),
    ]

    # No secret anywhere we say it: the error (and its chain), its repr, the log.
    for error in (static_error.value, lane_error.value):
        said = f"{error} {error!r} {error.__cause__!r} {error.__context__!r} {error.url}"
        assert WRONG_TOKEN not in said and TOKEN not in said
    assert WRONG_TOKEN not in caplog.text and TOKEN not in caplog.text
