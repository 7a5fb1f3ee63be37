"""`make demo` then `make dev`: deliveries the demo left behind name its stopped simulators' ports.

The demo discards what its lane did not reach (`settle_inbox`); a leftover that still reaches a
lane whose EVROAM_PUSH_ALLOWED_HOSTS does not list its origin is dead-lettered once, with one
reason, never fetched and never retried."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from evpipeline.demo import settle_inbox
from evpipeline.resources import PushInboxResource
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.live import EVRoamFeed
from evpipeline.sources.feeds import InboxFeed
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.rows import scalar

DEMO_PORT = 39111  # the demo's simulator, stopped: nothing listens here


def _notification(n: int) -> tuple[str, str, dict[str, object]]:
    url = f"http://127.0.0.1:{DEMO_PORT}/files/ChargingStation-{n}.json?sig=x"
    return (
        "ChargingStation",
        f"evt-{n}",
        {"id": f"evt-{n}", "eventTime": "2026-01-01T00:00:00Z", "data": {"url": url}},
    )


@pytest.fixture
def parts(tmp_path: Path) -> tuple[PushInboxResource, WarehouseResource]:
    return PushInboxResource(directory=str(tmp_path / "inbox")), WarehouseResource(
        database=str(tmp_path / "wh.duckdb")
    )


def test_the_demo_discards_what_its_lane_did_not_reach(
    parts: tuple[PushInboxResource, WarehouseResource],
) -> None:
    inbox_resource, warehouse = parts
    inbox = inbox_resource.open()
    inbox.put_many("evroam", [_notification(n) for n in range(3)])
    inbox.put_many("zaptec", [("state", "m-1", {"ChargerId": "x"})])
    assert settle_inbox(inbox, warehouse) == 4
    assert inbox.count("evroam", "discarded") == 3 and inbox.count("zaptec", "discarded") == 1
    for source in ("evroam", "zaptec"):
        assert not InboxFeed(source, inbox, warehouse).pending()  # a new lane starts past them
    assert settle_inbox(inbox, warehouse) == 0


def test_a_leftover_for_a_dead_port_is_dead_lettered_once(
    parts: tuple[PushInboxResource, WarehouseResource], caplog: pytest.LogCaptureFixture
) -> None:
    inbox_resource, warehouse = parts
    inbox = inbox_resource.open()
    inbox.put_many("evroam", [_notification(n) for n in range(5)])
    evroam = EVRoamResource(
        base_url="http://127.0.0.1:8701/consumer/api",
        subscription_key="k",
        allowed_push_hosts="http://127.0.0.1:8701",
        backoff_base=0.01,
    )
    feed = EVRoamFeed(evroam, inbox_resource, warehouse)
    logger = logging.getLogger("test.lane")
    with caplog.at_level(logging.WARNING, logger="test.lane"):
        report = feed.collect("run-1", logger)
    assert [d["status"] for d in report.dead_letters] == ["refused"] * 5
    reasons = {d["reason"] for d in report.dead_letters}
    assert reasons == {f"http://127.0.0.1:{DEMO_PORT} is not an allowed push-file origin"}
    warnings = [r.getMessage() for r in caplog.records if r.name == "test.lane"]
    assert len(warnings) == 1 and "5 notification(s) refused" in warnings[0] and str(DEMO_PORT) in warnings[0]
    assert report.requests == 0  # never fetched; no delta either (the warehouse was never bootstrapped)
    assert inbox.count("evroam", "refused") == 5
    assert not feed.due(0.0)  # nothing to retry
    with warehouse.get_connection() as con:
        assert scalar(con.execute("SELECT count(*) FROM ops.dead_letters WHERE status = 'refused'")) == 5
