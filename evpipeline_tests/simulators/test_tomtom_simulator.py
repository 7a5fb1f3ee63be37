"""The TomTom simulator answers like the documented API: shapes, errors, filters, Tracking-ID, QPS, search."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from evpipeline import simulators
from evpipeline.simulators.tomtom import CONNECTOR_TYPES, STATES, TomTomSimulator, distance_m
from evpipeline.simulators.toolkit import ChargingPark, SimClock
from evpipeline_tests.typed import present, running

KEY = "sim-test-key"
PARKS = [
    ChargingPark(
        "p1",
        "Queen Street Carpark",
        -36.8485,
        174.7633,
        "NZL",
        (("IEC62196Type2CCS", 50.0, 2), ("IEC62196Type2CCS", 150.0, 2), ("IEC62196Type2Outlet", 22.0, 3)),
    ),
    ChargingPark(
        "p2",
        "Stationsplein",
        52.0907,
        5.1214,
        "NLD",
        (("Chademo", 50.0, 1), ("IEC62196Type2Outlet", 11.0, 4)),
    ),
]


@pytest.fixture
def sim(clock: SimClock) -> Iterator[TomTomSimulator]:
    with running(TomTomSimulator(parks=PARKS, clock=clock, qps=1000, api_key=KEY, live_share=1.0)) as s:
        yield s


def get(
    sim: TomTomSimulator, ext: str = "json", headers: dict[str, str] | None = None, **params: Any
) -> requests.Response:
    return requests.get(
        f"{sim.url}/search/2/chargingAvailability.{ext}",
        params={"key": KEY, **params},
        headers=headers,
        timeout=5,
    )


def aid(sim: TomTomSimulator, ref: str = "p1") -> str:
    poi = sim.poi_for(ref)
    assert poi is not None and poi.availability_id
    return poi.availability_id


def test_availability_shape_and_counts_add_up(sim: TomTomSimulator) -> None:
    response = get(sim, chargingAvailability=aid(sim))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert (
        response.headers["Access-Control-Allow-Origin"] == "*"
        and response.headers["Cache-Control"] == "no-cache"
    )
    body = response.json()
    assert list(body) == ["connectors", "chargingAvailability"] and body["chargingAvailability"] == aid(sim)
    by_type = {c["type"]: c for c in body["connectors"]}
    assert set(by_type) == {"IEC62196Type2CCS", "IEC62196Type2Outlet"}
    ccs = by_type["IEC62196Type2CCS"]
    assert ccs["total"] == 4 and [lv["powerKW"] for lv in ccs["availability"]["perPowerLevel"]] == [
        50.0,
        150.0,
    ]
    for connector in body["connectors"]:
        current, levels = connector["availability"]["current"], connector["availability"]["perPowerLevel"]
        assert list(current) == list(STATES) and all(isinstance(v, int) for v in current.values())
        assert {s: sum(lv[s] for lv in levels) for s in STATES} == current
        assert sum(current.values()) == connector["total"]


def test_xml_form_is_the_documented_one(sim: TomTomSimulator) -> None:
    response = get(sim, "xml", chargingAvailability=aid(sim))
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/xml")
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(response.content)
    assert root.tag == "response" and [child.tag for child in root] == ["chargingAvailability", "connectors"]
    item = root.find("connectors/item")
    assert item is not None and [c.tag for c in item] == ["type", "total", "availability"]
    levels = item.findall("availability/perPowerLevel")
    assert len(levels) == 2 and all([p.tag for p in lv] == ["power"] for lv in levels)
    assert [c.tag for c in present(levels[0].find("power"))] == ["powerKW", *STATES]


def test_unknown_id_is_200_with_empty_connectors(sim: TomTomSimulator) -> None:
    response = get(sim, chargingAvailability="1")
    assert response.status_code == 200 and response.json() == {"connectors": [], "chargingAvailability": "1"}
    assert "<connectors />" in get(sim, "xml", chargingAvailability="1").text


def test_missing_parameter_gives_the_documented_error_body(sim: TomTomSimulator) -> None:
    response = get(sim)
    assert response.status_code == 400
    assert response.json() == {
        "message": "Missing parameter 'chargingAvailability'",
        "detailedError": {
            "code": "MissingParameter",
            "message": "Missing required parameter 'chargingAvailability'.",
        },
        "httpStatusCode": "400",
    }
    xml = ET.fromstring(get(sim, "xml").content)
    assert xml.tag == "ErrorEvResponse" and xml.findtext("detailedError/code") == "MissingParameter"
    assert xml.findtext("message") == "Missing parameter 'chargingAvailability'"
    # Parameters are case-sensitive.
    assert get(sim, chargingavailability=aid(sim)).status_code == 400


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_wrong_or_missing_key_is_403(sim: TomTomSimulator, key: str | None) -> None:
    params = {"chargingAvailability": aid(sim)} | ({"key": key} if key else {})
    response = requests.get(f"{sim.url}/search/2/chargingAvailability.json", params=params, timeout=5)
    assert response.status_code == 403 and response.json()["detailedError"]["code"] == "Forbidden"
    xml = requests.get(f"{sim.url}/search/2/chargingAvailability.xml", params=params, timeout=5)
    assert xml.status_code == 403 and ET.fromstring(xml.content).tag == "ErrorEvResponse"


def test_bad_parameters_are_400(sim: TomTomSimulator) -> None:
    assert get(sim, "csv", chargingAvailability=aid(sim)).status_code == 400
    assert get(sim, "JSON", chargingAvailability=aid(sim)).status_code == 400  # case-sensitive
    bad_set = get(sim, chargingAvailability=aid(sim), connectorSet="IEC62196Type2CCS,Type2")
    assert bad_set.status_code == 400 and "Type2" in bad_set.json()["detailedError"]["message"]
    assert (
        get(sim, chargingAvailability=aid(sim), minPowerKW="fast").json()["detailedError"]["code"]
        == "InvalidParameter"
    )


def test_filters_connector_set_and_closed_power_interval(sim: TomTomSimulator) -> None:
    only_outlet = get(sim, chargingAvailability=aid(sim), connectorSet="IEC62196Type2Outlet,Chademo").json()
    assert [c["type"] for c in only_outlet["connectors"]] == ["IEC62196Type2Outlet"]
    exact = get(
        sim, chargingAvailability=aid(sim), minPowerKW="50", maxPowerKW="50"
    ).json()  # closed at both ends
    assert [
        (c["type"], [lv["powerKW"] for lv in c["availability"]["perPowerLevel"]]) for c in exact["connectors"]
    ] == [("IEC62196Type2CCS", [50.0])]
    assert exact["connectors"][0]["total"] == 2  # counts describe the filtered set
    fast = get(sim, chargingAvailability=aid(sim), minPowerKW="50.1").json()
    assert [lv["powerKW"] for c in fast["connectors"] for lv in c["availability"]["perPowerLevel"]] == [150.0]
    slow = get(sim, chargingAvailability=aid(sim), maxPowerKW="22").json()
    assert [c["type"] for c in slow["connectors"]] == ["IEC62196Type2Outlet"]
    assert get(sim, chargingAvailability=aid(sim), minPowerKW="400").json()["connectors"] == []


def test_tracking_id_echoed_generated_and_validated(sim: TomTomSimulator) -> None:
    mine = "9ac68072-c7a4-11e8-a8d5-f2801f1b9fd1"
    assert (
        get(sim, headers={"Tracking-ID": mine}, chargingAvailability=aid(sim)).headers["Tracking-ID"] == mine
    )
    generated = get(sim, chargingAvailability=aid(sim)).headers["Tracking-ID"]
    assert re.fullmatch(r"[a-zA-Z0-9-]{1,100}", generated)
    bad = get(sim, headers={"Tracking-ID": "not valid!"}, chargingAvailability=aid(sim))
    assert bad.status_code == 400 and bad.json()["detailedError"]["code"] == "InvalidHeader"
    assert get(sim, headers={"Tracking-ID": "x" * 101}, chargingAvailability=aid(sim)).status_code == 400
    # Echoed on errors too, so a failed call can be traced.
    assert get(sim, headers={"Tracking-ID": mine}).headers["Tracking-ID"] == mine


def test_other_methods_are_405(sim: TomTomSimulator) -> None:
    for method in ("POST", "PUT", "DELETE"):
        response = requests.request(
            method, f"{sim.url}/search/2/chargingAvailability.json", params={"key": KEY}, timeout=5
        )
        assert response.status_code == 405 and response.headers["Allow"] == "GET"


def test_gzip_when_asked(sim: TomTomSimulator) -> None:
    response = get(sim, headers={"Accept-Encoding": "gzip"}, chargingAvailability=aid(sim))
    assert response.headers.get("Content-Encoding") == "gzip" and response.json()[
        "chargingAvailability"
    ] == aid(sim)


def test_counts_change_over_time_and_still_add_up(sim: TomTomSimulator) -> None:
    ids = sim.availability_ids()
    before = {i: sim.availability_body(i) for i in ids}
    assert before == {i: sim.availability_body(i) for i in ids}  # a frozen clock changes nothing
    sim.advance(3600)
    after = {i: sim.availability_body(i) for i in ids}
    assert after != before
    for body in after.values():
        for connector in body["connectors"]:
            levels = connector["availability"]["perPowerLevel"]
            assert {s: sum(lv[s] for lv in levels) for s in STATES} == connector["availability"]["current"]


def test_a_client_above_qps_gets_429(clock: SimClock) -> None:
    with running(TomTomSimulator(parks=PARKS, clock=clock, qps=10, api_key=KEY)) as sim:
        target = aid(sim)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: get(sim, chargingAvailability=target).status_code, range(60)))
        elapsed = time.monotonic() - started
        throttled = get(sim, chargingAvailability=target)
    assert statuses.count(429) > 0
    # What got through is what the bucket allows: a full second's burst plus the refill, no more.
    assert statuses.count(200) <= 10 + 10 * elapsed + 1
    if throttled.status_code == 429:
        assert int(throttled.headers["Retry-After"]) >= 1 and throttled.json()["httpStatusCode"] == "429"
    # Another key has its own budget.
    assert present(sim.rate_limit()).allow("another-key") == (True, 0.0)


def test_pois_sit_a_few_metres_from_their_parks_among_decoys(sim: TomTomSimulator) -> None:
    for park in PARKS:
        poi = sim.poi_for(park.ref)
        assert poi is not None and poi.name != park.name
        assert distance_m(park.latitude, park.longitude, poi.latitude, poi.longitude) <= 12.5
        assert {(lv.connector_type, lv.power_kw, len(lv.states)) for lv in poi.levels} == set(park.connectors)
    synthetic = TomTomSimulator(scale=0.5)
    kinds = {p.kind for p in synthetic.pois}
    assert {"park", "decoy", "other"} <= kinds
    live = [p for p in synthetic.pois if p.kind == "park" and p.availability_id]
    assert (
        0.7 < len(live) / sum(p.kind == "park" for p in synthetic.pois) < 1
    )  # most, not all, have live data
    assert all(lv.connector_type in CONNECTOR_TYPES for p in synthetic.pois for lv in p.levels)
    # Deterministic: the same seed builds the same fleet and ids.
    assert TomTomSimulator(scale=0.5).availability_ids() == synthetic.availability_ids()


def test_category_search_shape(sim: TomTomSimulator) -> None:
    park = PARKS[0]
    decoy = sim.add_charging_poi(park.latitude + 0.0009, park.longitude, [("Tesla", 250.0, 4)], live=False)
    url = f"{sim.url}/search/2/categorySearch/electric%20vehicle%20station.json"
    params: dict[str, str | float] = {
        "key": KEY,
        "lat": park.latitude,
        "lon": park.longitude,
        "radius": 150,
        "categorySet": 7309,
    }
    body = requests.get(url, params=params, timeout=5).json()
    assert body["summary"]["query"] == "electric vehicle station"
    assert body["summary"]["numResults"] == len(body["results"]) == body["summary"]["totalResults"]
    results = body["results"]
    assert [r["dist"] for r in results] == sorted(r["dist"] for r in results) and all(
        r["dist"] <= 150 for r in results
    )
    first = results[0]
    assert first["id"] == present(sim.poi_for("p1")).id
    assert set(first) >= {
        "type",
        "id",
        "score",
        "dist",
        "poi",
        "address",
        "position",
        "chargingPark",
        "dataSources",
    }
    assert "chargingPark" not in first["poi"]  # beside poi, not inside it
    assert first["poi"]["categorySet"] == [{"id": 7309}]
    assert first["dataSources"]["chargingAvailability"]["id"] == aid(sim)
    assert {c["connectorType"] for c in first["chargingPark"]["connectors"]} == {
        "IEC62196Type2CCS",
        "IEC62196Type2Outlet",
    }
    assert {c["currentType"] for c in first["chargingPark"]["connectors"]} <= {"AC1", "AC3", "DC"}
    assert first["address"]["countryCode"] == "NZ" and first["address"]["countryCodeISO3"] == "NZL"
    found_decoy = next(r for r in results if r["id"] == decoy.id)
    assert "dataSources" not in found_decoy  # no live data: no availability id
    # Every result is a charging POI with categorySet=7309; without it, shops and fuel stations appear too.
    everything = requests.get(url, params={**params, "categorySet": ""}, timeout=5).json()["results"]
    assert all(r["poi"]["categorySet"] == [{"id": 7309}] for r in results)
    assert len(everything) >= len(results)
    assert requests.get(url, params={**params, "key": "nope"}, timeout=5).status_code == 403
    assert (
        requests.get(url, params={k: v for k, v in params.items() if k != "lat"}, timeout=5).status_code
        == 400
    )


def test_start_all_starts_tomtom_last_with_every_other_simulators_parks() -> None:
    sims = simulators.start_all(scale=0.2)
    try:
        assert list(sims)[-1] == "tomtom"
        tomtom = sims["tomtom"]
        assert isinstance(tomtom, TomTomSimulator)
        parks = [p for name, s in sims.items() if name != "tomtom" for p in s.charging_parks()]
        assert parks and all(tomtom.poi_for(p.ref) is not None for p in parks if p.connectors)
        assert simulators.env_for(sims)["TOMTOM_BASE_URL"] == tomtom.url
    finally:
        for s in sims.values():
            s.stop()
