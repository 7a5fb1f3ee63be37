"""The TomTom client over real HTTP: filters, unknown ids, errors, retries, XML = JSON, QPS."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import pandas as pd
import pytest

from benchmarks.tomtom_polling import benchmark_polling
from evpipeline.http import AuthError, ClientError, ServerError
from evpipeline.simulators.tomtom import TomTomSimulator, availability_xml
from evpipeline.simulators.toolkit import SimClock
from evpipeline.sources.tomtom import normalize, wire
from evpipeline.sources.tomtom.client import TomTomResource
from evpipeline_tests.sources.tomtom.conftest import KEY, resource
from evpipeline_tests.typed import running


def test_poll_returns_what_the_api_says(tomtom: TomTomResource, tomtom_sim: TomTomSimulator) -> None:
    client = tomtom.client()
    ids = tomtom_sim.availability_ids()[:5]
    batch = client.poll_many(ids)
    assert [p.availability_id for p in batch.polls] == ids
    for poll in batch.polls:
        assert poll.body == tomtom_sim.availability_body(poll.availability_id)
        assert poll.polled_at == tomtom_sim.clock.now()  # the response's Date
        assert uuid.UUID(poll.tracking_id) and poll.outcome == "data"
    assert len({p.tracking_id for p in batch.polls}) == len(ids)  # one Tracking-ID per request
    assert client.api.stats.requests == len(ids)


def test_filters_are_honoured(tomtom: TomTomResource, tomtom_sim: TomTomSimulator) -> None:
    client = tomtom.client()
    poi = next(p for p in tomtom_sim.pois if p.availability_id and len({lv.power_kw for lv in p.levels}) >= 2)
    powers = sorted({lv.power_kw for lv in poi.levels})
    kinds = sorted(poi.connector_types)
    assert poi.availability_id is not None
    cases: list[tuple[dict[str, Any], tuple[set[str] | None, float | None, float | None]]] = [
        ({"connector_set": kinds[:1]}, (set(kinds[:1]), None, None)),
        ({"min_power_kw": powers[-1]}, (None, powers[-1], None)),  # closed: the top level itself is included
        ({"max_power_kw": powers[0]}, (None, None, powers[0])),
        ({"min_power_kw": powers[0], "max_power_kw": powers[0]}, (None, powers[0], powers[0])),
    ]
    for filters, (kind_set, low, high) in cases:
        poll = client.availability(poi.availability_id, **filters)
        assert poll.body == tomtom_sim.availability_body(poi.availability_id, kind_set, low, high)
        levels = [lv["powerKW"] for c in poll.body["connectors"] for lv in c["availability"]["perPowerLevel"]]
        assert levels and all((low is None or kw >= low) and (high is None or kw <= high) for kw in levels)
        if kind_set:
            assert {c["type"] for c in poll.body["connectors"]} == kind_set
    sent = tomtom_sim.requests_to("/chargingAvailability")[-len(cases) :]
    assert (
        sent[0].query["connectorSet"] == [kinds[0]]
        and "minPowerKW" in sent[3].query
        and "maxPowerKW" in sent[3].query
    )


def test_unknown_id_is_an_empty_snapshot_not_an_error(
    tomtom: TomTomResource, tomtom_sim: TomTomSimulator
) -> None:
    known = tomtom_sim.availability_ids()[0]
    batch = tomtom.client().poll_many([known, "00000000-0000-0000-0000-000000000000"])
    assert [p.outcome for p in batch.polls] == ["data", "no_data"] and batch.failures == []
    rows = normalize.snapshots(batch.polls)
    assert set(rows.frame["availability_id"]) == {known}


def test_missing_parameter_is_a_clear_error(tomtom: TomTomResource, tomtom_sim: TomTomSimulator) -> None:
    with pytest.raises(ClientError) as raised:
        tomtom.client().availability("")
    assert raised.value.status == 400 and "Missing parameter 'chargingAvailability'" in str(raised.value)
    assert KEY not in str(raised.value)
    assert len(tomtom_sim.requests_to("/chargingAvailability")) == 1  # a client error is not retried


def test_xml_and_json_produce_identical_frames(tomtom: TomTomResource, tomtom_sim: TomTomSimulator) -> None:
    client = tomtom.client()
    ids = [*tomtom_sim.availability_ids(), "unknown-id"]
    as_json = client.poll_many(ids, wire_format="json")
    as_xml = client.poll_many(ids, wire_format="xml")
    for j, x in zip(as_json.polls, as_xml.polls, strict=True):
        assert x.body == j.body and json.dumps(x.body) == json.dumps(j.body)  # same keys, types and order
    frames = [normalize.snapshots(b.polls).frame.drop(columns="tracking_id") for b in (as_json, as_xml)]
    assert len(frames[0]) > 50
    pd.testing.assert_frame_equal(*frames)
    latest = [normalize.latest(normalize.snapshots(b.polls)).frame for b in (as_json, as_xml)]
    pd.testing.assert_frame_equal(*latest)
    assert {r.path.rsplit(".", 1)[1] for r in tomtom_sim.requests_to("/chargingAvailability")} == {
        "json",
        "xml",
    }


def test_xml_parser_handles_several_levels_per_element_and_empty_lists() -> None:
    body = {
        "connectors": [
            {
                "type": "Chademo",
                "total": 3,
                "availability": {
                    "current": {
                        "available": 1,
                        "occupied": 2,
                        "reserved": 0,
                        "unknown": 0,
                        "outOfService": 0,
                    },
                    "perPowerLevel": [
                        {
                            "powerKW": 50.0,
                            "available": 1,
                            "occupied": 0,
                            "reserved": 0,
                            "unknown": 0,
                            "outOfService": 0,
                        },
                        {
                            "powerKW": 100.0,
                            "available": 0,
                            "occupied": 2,
                            "reserved": 0,
                            "unknown": 0,
                            "outOfService": 0,
                        },
                    ],
                },
            }
        ],
        "chargingAvailability": "abc",
    }
    xml = availability_xml(body)
    assert wire.parse_availability_xml(xml) == body
    merged = re.sub(r"</perPowerLevel><perPowerLevel>", "", xml)  # both <power> inside one <perPowerLevel>
    assert merged != xml and wire.parse_availability_xml(merged) == body
    assert wire.parse_availability_xml(availability_xml({"connectors": [], "chargingAvailability": "1"})) == {
        "connectors": [],
        "chargingAvailability": "1",
    }
    with pytest.raises(ValueError):
        wire.parse_availability_xml(xml[: len(xml) // 2])


def test_403_is_an_auth_error_without_retries(tomtom_sim: TomTomSimulator) -> None:
    client = resource(tomtom_sim, api_key="wrong-key-456", concurrency=2).client()
    with pytest.raises(AuthError) as raised:
        client.poll_many(tomtom_sim.availability_ids())
    assert (
        raised.value.status == 403
        and "wrong-key-456" not in str(raised.value)
        and "key=***" in str(raised.value)
    )
    # Stopped at once: at most one request per worker, none retried.
    assert 1 <= len(tomtom_sim.requests_to("/chargingAvailability")) <= 2


def test_429_backs_off_as_retry_after_says(tomtom: TomTomResource, tomtom_sim: TomTomSimulator) -> None:
    tomtom_sim.faults.retry_after = 1
    tomtom_sim.faults.inject("429", count=1, path="/chargingAvailability")
    client = tomtom.client()
    poll = client.availability(tomtom_sim.availability_ids()[0])
    assert poll.outcome == "data"
    assert [r.status for r in tomtom_sim.requests_to("/chargingAvailability")] == [429, 200]
    assert client.api.stats.throttled == 1 and client.api.stats.retries == 1
    assert (
        client.api.stats.backoff_seconds >= 1.0
    )  # waited what Retry-After asked, not the 10 ms base backoff


def test_over_qps_client_is_throttled_then_recovers(clock: SimClock, parks: list) -> None:
    """A key configured above the server's real limit meets real 429s and still completes, via Retry-After."""
    with running(TomTomSimulator(parks=parks, clock=clock, qps=8, api_key=KEY)) as sim:
        ids = sim.availability_ids()[:20]
        client = resource(sim, qps=200, concurrency=4).client()  # believes it may do 200/s
        batch = client.poll_many(ids)
        assert [p.outcome for p in batch.polls] == ["data"] * len(ids)
        assert client.api.stats.throttled > 0 and client.api.stats.retries >= client.api.stats.throttled
        assert sum(1 for r in sim.requests_to("/chargingAvailability") if r.status == 200) == len(ids)


def test_5xx_retried_then_a_clear_error(tomtom_sim: TomTomSimulator) -> None:
    client = resource(tomtom_sim, concurrency=1, max_attempts=3).client()
    first, second = tomtom_sim.availability_ids()[:2]
    tomtom_sim.faults.inject("503", count=2, path="/chargingAvailability")
    assert client.availability(first).outcome == "data"  # two 503s, then success
    tomtom_sim.faults.inject("500", count=3, path="/chargingAvailability")
    batch = client.poll_many([first, second])
    failed = batch.failures
    assert [p.availability_id for p in failed] == [first] and batch.polls[1].outcome == "data"
    assert failed[0].http_status == 500 and "gave up after retries" in (failed[0].error or "")
    assert [r.status for r in tomtom_sim.requests_to("/chargingAvailability")] == [
        503,
        503,
        200,
        500,
        500,
        500,
        200,
    ]
    with pytest.raises(ServerError):
        tomtom_sim.faults.inject("502", count=3, path="/chargingAvailability")
        client.availability(first)


def test_tracking_ids_are_logged_for_support(
    tomtom: TomTomResource, tomtom_sim: TomTomSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="evpipeline.sources.tomtom"):
        poll = tomtom.client().availability(tomtom_sim.availability_ids()[0])
    assert any(poll.tracking_id in message for message in caplog.messages)
    assert not any(KEY in message for message in caplog.messages)


def test_qps_never_exceeded_and_no_429() -> None:
    """The benchmark helper at the default limit with a few ids: the server saw at most QPS in any second."""
    result = benchmark_polling(n_ids=30, qps=20)
    assert result.requests == result.ids == result.with_data == 30
    assert result.http_429 == 0
    assert result.max_per_second <= 20
