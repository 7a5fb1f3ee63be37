"""Issue 25: one bad input never stalls the EVRoam feed, on DuckDB and on DuckLake alike.

Each test sends the bad input over real HTTP to the webhook receiver, puts a good change behind it
(the simulator publishes it), runs the lane's EVRoam feed and checks that the good change landed,
the inbox cursor passed both, and the bad input sits in the dead letters with its reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from evpipeline.inbox import Inbox
from evpipeline.resources import PushInboxResource
from evpipeline.serving import BackgroundServer
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.live import EVRoamFeed
from evpipeline.sources.evroam.push import create_webhook_app
from evpipeline.sources.feeds import FeedReport
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


# -- poison containment: bounded nesting at the receiver, one row at a time in the lane -----------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[BackgroundServer, Inbox]]:
    inbox = Inbox(tmp_path / "inbox" / "push.sqlite")
    with BackgroundServer(create_webhook_app(inbox, KEY)) as server:
        yield server, inbox


def nested(depth: int) -> bytes:
    """One notification whose `data` holds a list nested `depth` levels deep."""
    return (
        b'[{"id": "deep", "eventType": "EVRoam.ChargingStationChanges", "subject": '
        b'"chargingstations-d.json", "data": {"url": "http://127.0.0.1/chargingstations.json", "x": '
        + b"[" * depth
        + b"]" * depth
        + b"}}]"
    )


@pytest.mark.parametrize("depth", [62, 950, 988, 5000])
def test_json_nested_too_deep_is_400_with_the_reason_and_never_stored(
    receiver: tuple[BackgroundServer, Inbox], depth: int
) -> None:
    """950 levels were stored (then broke every lane cycle); 988 answered 500."""
    server, inbox = receiver
    response = requests.post(
        f"{server.url}/api/evroam_listener?code={KEY}",
        data=nested(depth),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400 and "nests" in response.json()["error"], response.text
    assert inbox.count("evroam") == 0
    # The bound leaves a real notification's room: 64 levels deep in all are accepted.
    ok = requests.post(
        f"{server.url}/api/evroam_listener?code={KEY}",
        data=nested(60),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert ok.json() == {"stored": 1}


def store_unreadable(push: Push, depth: int = 3000) -> int:
    """A row as the receiver stored it before nesting was bounded: json.loads cannot read it."""
    import sqlite3

    with sqlite3.connect(push.store.path) as con:
        cursor = con.execute(
            "INSERT INTO messages (source, kind, dedupe_key, payload, received_at) VALUES (?, ?, ?, ?, ?)",
            ("evroam", "chargingstations", "deep-1", nested(depth).decode(), "2026-11-01T12:00:00+00:00"),
        )
        return int(cursor.lastrowid or 0)


def cli(push: Push, *args: str) -> Any:
    import os
    import subprocess
    import sys

    from evpipeline_tests.test_settings import clean_env

    extra = {"EVPIPELINE_WAREHOUSE": push.warehouse.database}
    if os.environ.get("EVPIPELINE_LAKE_DATA"):
        extra["EVPIPELINE_LAKE_DATA"] = os.environ["EVPIPELINE_LAKE_DATA"]
    data_dir = Path(push.inbox.directory).parent
    return subprocess.run(
        [sys.executable, "-m", "evpipeline.cli", "dead-letters", *args, "--data-dir", str(data_dir)],
        env=clean_env(data_dir, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_an_unreadable_inbox_row_is_dead_lettered_alone_and_an_operator_releases_it(push: Push) -> None:
    """The lane read its batch with one json.loads per row inside one list: one row too deep for it
    failed every cycle, and the good change behind it waited forever."""
    deep = store_unreadable(push)
    connector, status = push.good_change()

    report = collect(push)

    assert push.status_of(connector) == status
    assert push.cursor() == push.store.newest_id("evroam")
    assert [(d["message_id"], d["status"]) for d in report.dead_letters] == [(deep, "failed")]
    listed = cli(push, "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:4] for line in listed.stdout.splitlines()] == [
        [str(deep), "evroam", "chargingstations", "failed"]
    ]
    assert "nests too deeply" in listed.stdout
    released = cli(push, "release", str(deep))
    assert released.returncode == 0 and "released 1" in released.stdout, released.stderr
    assert cli(push, "list").stdout == ""
    [message] = push.store.get([deep])
    assert message.status == "released"
    unknown = cli(push, "release", str(deep))  # no longer a dead letter: said so, exit 2
    assert unknown.returncode == 2 and f"not dead letters: {deep}" in unknown.stderr


def test_a_merge_fault_is_retried_and_a_lasting_one_dead_lettered_after_max_attempts(
    push: Push, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge that fails once (the backend restarting) is tried again, not dead-lettered at once;
    one that fails every time holds the changes behind it for MAX_ATTEMPTS cycles at most."""
    import duckdb

    from evpipeline.sources.evroam import live
    from evpipeline.sources.feeds import MAX_ATTEMPTS

    connector, status = push.good_change()
    [first] = push.store.after("evroam", 0)
    faults = {"left": 1}
    real = live.merge_records

    def merge_records(*args: Any, **kwargs: Any) -> Any:
        if kwargs["lineage"].startswith(f"push:{first.id}-") and faults["left"]:
            faults["left"] -= 1
            raise duckdb.IOException("IO Error: Could not connect to the catalog (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(live, "merge_records", merge_records)
    feed = EVRoamFeed(push.evroam, push.inbox, push.warehouse)
    collect(push, feed)  # the fault: not merged, not dead
    assert push.cursor() < first.id and push.store.get([first.id])[0].attempts == 1
    report = collect(push, feed)  # the next cycle merges it
    assert report.dead_letters == [] and push.status_of(connector) == status
    assert push.store.get([first.id])[0].status == "merged"

    # A lasting fault: dead-lettered on its MAX_ATTEMPTS-th try, and the change behind it lands.
    connector, status = push.good_change()
    [second] = push.store.after("evroam", first.id)
    first = second
    faults["left"] = 10**6
    reports = [collect(push, feed) for _ in range(MAX_ATTEMPTS)]
    assert [len(r.dead_letters) for r in reports] == [0] * (MAX_ATTEMPTS - 1) + [1]
    [(reason,)] = query(
        push.warehouse, "SELECT reason FROM ops.dead_letters WHERE message_id = ?", [second.id]
    )
    assert reason.startswith(f"{MAX_ATTEMPTS} attempts, the last: IOException")
    assert push.status_of(connector) == status  # by the delta pull that covers the dead letter
    assert push.cursor() == push.store.newest_id("evroam")


@pytest.mark.slow
def test_an_operator_retries_a_dead_letter_and_the_lane_merges_it(
    push: Push, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evpipeline.sources.evroam.client import EVRoamClient

    connector, status = push.good_change()
    real = EVRoamClient.download
    poisoned = {"on": True}

    def download(self: EVRoamClient, url: object) -> list[dict[str, Any]]:
        if poisoned["on"]:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "unexpected byte")  # a file it chokes on
        return real(self, url)

    monkeypatch.setattr(EVRoamClient, "download", download)
    [dead] = collect(push).dead_letters
    poisoned["on"] = False  # the cause fixed (a new release), the operator retries
    retried = cli(push, "retry", "--all")
    assert retried.returncode == 0 and "retried 1" in retried.stdout, retried.stderr
    assert cli(push, "list").stdout == ""
    report = collect(push)
    assert report.dead_letters == [] and len(report.outcomes) == 1
    statuses = [
        (m.dedupe_key.split("#")[1][:5] if "#" in m.dedupe_key else "", m.status)
        for m in push.store.after("evroam", 0)
    ]
    assert statuses == [("", "retried"), ("retry", "merged")]
    assert push.status_of(connector) == status


# -- refusals in bulk are cheap ------------------------------------------------------------------


def test_5000_refused_notifications_in_one_delivery_cost_one_cycle_and_one_delta_pull(push: Push) -> None:
    """Each refusal was its own warehouse commit, and a cycle judged 50 notifications and pulled a
    delta each time: 5,000 refusals took 100 cycles and 100 delta pulls before the good change."""
    flood = [
        {"id": f"r{n}", "eventType": "E", "subject": "chargingstations", "data": {"url": "http://10.0.0.1/c"}}
        for n in range(5000)
    ]
    assert push.post(flood).json() == {"stored": 5000}
    connector, status = push.good_change()
    pulled = len(push.sim.requests_to("/consumer/api/", "GET"))

    report = collect(push)

    assert push.status_of(connector) == status
    assert push.cursor() == push.store.newest_id("evroam")
    assert len(report.dead_letters) == 5000 and push.store.count("evroam", "refused") == 5000
    assert scalar(push.warehouse, "SELECT count(*) FROM ops.dead_letters WHERE status = 'refused'") == 5000
    # One delta pull covers them all: one request per stream (the change is one page).
    delta = [r.path.rsplit("/", 1)[-1] for r in push.sim.requests_to("/consumer/api/", "GET")[pulled:]]
    assert sorted(delta) == ["ChargingStation", "Site"]


# -- deadlines: a slow push-file origin costs one deadline, then the delta pull -----------------


def test_a_push_file_that_trickles_misses_its_deadline_and_the_delta_pull_brings_the_change(
    push: Push,
) -> None:
    """Each byte came within the 30 s per-read timeout, so one slow file held the lane's cycle for
    as long as the origin liked (82 s measured). Now: one deadline, then the fallback path."""
    evroam = EVRoamResource(
        base_url=f"{push.sim.url}/consumer/api",
        subscription_key="test-key",
        allowed_push_hosts=push.sim.url,
        requests_per_second=500,
        backoff_base=0.01,
        read_timeout=1.0,
        push_file_deadline=0.5,
    )
    push.sim.faults.trickle_seconds = 0.05  # a file of ~1 KB takes a minute; each byte comes at once
    push.sim.faults.inject("trickle", count=100, path="/notifications/")
    push.good_change()  # its file(s) trickle ...
    connector, status = push.good_change()  # ... and a second delivery's: not waited for in this cycle
    files = len(push.sim.requests_to("/notifications/"))
    started = time.monotonic()

    report = EVRoamFeed(evroam, push.inbox, push.warehouse).collect("lane", logging.getLogger("test.lane"))

    assert time.monotonic() - started < 15.0  # one 0.5 s deadline and a delta pull; not minutes
    assert len(push.sim.requests_to("/notifications/")) - files == 1
    assert push.status_of(connector) == status  # by the delta pull
    assert push.cursor() == push.store.newest_id("evroam")
    notes = [m.note or "" for m in push.store.after("evroam", 0)]
    assert {m.status for m in push.store.after("evroam", 0)} == {"fallback"}
    assert "deadline" in notes[0] and all(n.startswith("not downloaded:") for n in notes[1:])
    assert report.dead_letters == [] and "delta pull instead" in " ".join(report.notes)
