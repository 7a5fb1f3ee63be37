"""The GreenFlux simulator over real HTTP: the shapes, paging, filters and quirks the pipeline relies on."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from evpipeline.simulators.greenflux import CPOS, GreenFluxSimulator
from evpipeline.simulators.toolkit import SimClock
from evpipeline_tests.typed import running

START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "sim-test-token"
AUTH = {"Authorization": f"Token {TOKEN}"}
LOCATION_FIELDS = {
    "id",
    "type",
    "publish",
    "access_type",
    "name",
    "address",
    "address_line_2",
    "city",
    "postal_code",
    "country",
    "coordinates",
    "evses",
    "directions",
    "facilities",
    "operator",
    "suboperator",
    "owner",
    "auth_rules",
    "time_zone",
    "opening_times",
    "charging_when_closed",
    "energy_mix",
    "custom_groups",
    "maintenance_info",
    "remarks",
    "payment_provider",
    "wallet_id",
    "cpo_id",
    "cpo_customer_external_id",
    "etag",
    "created_by",
    "modified_by",
    "customised_fields",
    "created",
    "modified",
    "last_updated",
}
EVSE_FIELDS = {
    "uid",
    "evse_id",
    "status",
    "status_schedule",
    "capabilities",
    "connectors",
    "floor_level",
    "coordinates",
    "physical_reference",
    "directions",
    "parking_restrictions",
    "images",
    "last_updated",
    "evse_sequence_number",
}
CONNECTOR_FIELDS = {
    "id",
    "standard",
    "format",
    "power_type",
    "voltage",
    "amperage",
    "max_electric_power",
    "tariff_id",
    "terms_and_conditions",
    "last_updated",
    "reimbursement_tariff_id",
}
STATION_FIELDS = {
    "charge_station_id",
    "location_id",
    "name",
    "deploy_state",
    "installation_date",
    "default_charge_station_reimbursement_tariff_id",
    "default_charge_station_tariff_id",
    "default_charge_station_directions",
    "default_charge_station_floor_level",
    "driver_id",
    "customer_id",
    "evses",
    "maintenance_info",
    "remarks",
    "contactless_terminal_serial_number",
    "contactless_terminal_auth_amount",
    "status_schedule",
    "auth_rules",
    "contactless_type",
    "tap_to_stop",
    "stop_on_parking",
    "grid_connection_id",
    "dynamic_time_based_tariffs",
    "time_of_use_tariffs",
    "exclude_vat",
    "charger_type",
    "charge_station_template_id",
    "etag",
    "created_by",
    "modified_by",
    "status",
    "charging_speed",
    "created",
    "modified",
    "heartbeat_interval",
    "charge_point_model",
    "charge_point_vendor",
    "charge_point_serial_number",
    "charge_box_serial_number",
    "client_ip_address",
    "firmware_version",
    "iccid",
    "imsi",
    "meter_serial_number",
    "meter_type",
    "remote_manageable",
    "connectivity_status",
    "protocol_version",
    "endpoint",
}


@pytest.fixture
def sim() -> Iterator[GreenFluxSimulator]:
    with running(GreenFluxSimulator(scale=1, clock=SimClock(START), token=TOKEN, seed=3)) as server:
        yield server


def get(
    sim: GreenFluxSimulator, path: str, headers: dict[str, str] | None = None, **params: Any
) -> requests.Response:
    return requests.get(
        f"{sim.url}{path}", params=params, headers=AUTH if headers is None else headers, timeout=10
    )


def everything(sim: GreenFluxSimulator, path: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = get(sim, path, offset=len(out), limit=1000, **params).json()["data"]
        out.extend(page)
        if len(page) < 1000:
            return out


def test_objects_have_the_documented_shapes(sim: GreenFluxSimulator) -> None:
    response = get(sim, "/api/2.0/Locations", limit=5)
    body = response.json()
    assert set(body) == {"data", "status_code", "status_message", "timestamp"} and body["status_code"] == 1000
    assert response.headers["X-Total-Count"] == str(sim.n_locations) and response.headers["X-Limit"] == "5"
    assert 'rel="next"' in response.headers["Link"] and "offset=5" in response.headers["Link"]
    locations = everything(sim, "/api/2.0/Locations")
    assert all(set(loc) == LOCATION_FIELDS for loc in locations)
    evses = [e for loc in locations for e in loc["evses"]]
    assert evses and all(set(e) == EVSE_FIELDS for e in evses)
    assert all(set(c) == CONNECTOR_FIELDS for e in evses for c in e["connectors"])
    stations = everything(sim, "/api/2.0/ChargeStations")
    assert len(stations) == sim.n_charge_stations and all(set(cs) == STATION_FIELDS for cs in stations)
    assert {e["uid"] for cs in stations for e in cs["evses"]} == {e["uid"] for e in evses}
    assert all(
        re.fullmatch(r"-?\d{1,3}\.\d{6}", loc["coordinates"][axis])
        for loc in locations
        for axis in ("latitude", "longitude")
    )
    one = get(sim, f"/api/2.0/Locations/{locations[7]['id']}").json()["data"]
    assert one == locations[7]
    assert get(sim, "/api/2.0/Locations/not-a-location").status_code == 404


def test_fleet_is_dutch_and_belgian_cpos_with_realistic_gaps(sim: GreenFluxSimulator) -> None:
    locations = everything(sim, "/api/2.0/Locations")
    countries = [loc["country"] for loc in locations]
    assert countries.count("NLD") > 0.7 * len(countries) and countries.count("BEL") > 0.05 * len(countries)
    assert {loc["cpo_id"] for loc in locations} == {c.cpo_id for c in CPOS}
    for loc in locations:
        for evse in loc["evses"]:
            assert re.fullmatch(rf"{loc['cpo_id'][:2]}\*{loc['cpo_id'][2:]}\*E\d{{7}}", evse["evse_id"])
    evses = [e for loc in locations for e in loc["evses"]]
    connectors = [c for e in evses for c in e["connectors"]]

    def share(items: list[Any], missing: Any) -> float:
        return sum(1 for item in items if missing(item)) / len(items)

    # Most carry what NDW needs; a realistic share lacks one of them.
    for gap in (
        share(locations, lambda loc: loc["opening_times"] is None),
        share(locations, lambda loc: loc["energy_mix"] is None),
        share(evses, lambda e: not e["parking_restrictions"]),
        share(connectors, lambda c: c["tariff_id"] is None),
    ):
        assert 0.01 < gap < 0.2
    tariffs = {t["id"]: t for t in get(sim, "/api/1.0/tariffs", limit=100).json()["data"]}
    assert {c["tariff_id"] for c in connectors if c["tariff_id"]} <= set(
        tariffs
    )  # every referenced tariff exists
    assert all(t["elements"] and t["currency"] == "EUR" for t in tariffs.values())
    assert any(e["status"] == "REMOVED" for e in evses)  # deprecated stations share their EVSEs as REMOVED
    assert any(not loc["publish"] for loc in locations)  # private (home) locations exist, unpublished


def test_auth_401_without_token_403_with_a_wrong_one(sim: GreenFluxSimulator) -> None:
    assert get(sim, "/api/2.0/Locations", headers={}).status_code == 401
    wrong = get(sim, "/api/2.0/Locations", headers={"Authorization": "Token nope"})
    assert wrong.status_code == 403 and wrong.json()["status_code"] == 2000
    encoded = base64.b64encode(TOKEN.encode()).decode()
    assert get(sim, "/api/2.0/Locations", headers={"Authorization": f"Token {encoded}"}).status_code == 200


def test_date_filters_and_exclude_evses_modified(sim: GreenFluxSimulator) -> None:
    locations = everything(sim, "/api/2.0/Locations")
    sim.clock.advance(60)
    moment = sim.clock.now()
    sim.edit_location(locations[0]["id"], remarks="edited")
    evse = next(e for loc in locations[1:] for e in loc["evses"] if e["status"] != "REMOVED")
    sim.set_evse_status(evse["uid"], "BLOCKED")
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = [loc["id"] for loc in everything(sim, "/api/2.0/Locations", date_from=stamp)]
    assert locations[0]["id"] in changed and len(changed) == 2  # date_from inclusive; an EVSE change counts
    assert everything(sim, "/api/2.0/Locations", date_to=stamp) == [
        loc for loc in everything(sim, "/api/2.0/Locations") if loc["id"] not in changed
    ]  # date_to exclusive
    own = [
        loc["id"]
        for loc in everything(sim, "/api/2.0/Locations", date_from=stamp, exclude_evses_modified="true")
    ]
    assert own == [locations[0]["id"]]  # only the Location object's own edits
    # A charge station's `modified` ignores EVSE status changes (the Charge Stations page).
    assert everything(sim, "/api/2.0/ChargeStations", date_from=stamp) == []
    bad = get(sim, "/api/2.0/Locations", date_from="yesterday")
    assert bad.status_code == 200 and bad.json()["status_code"] == 2001  # OCPI: an error inside HTTP 200


def test_moved_station_leaves_removed_copies_without_timestamp_change(sim: GreenFluxSimulator) -> None:
    station = everything(sim, "/api/2.0/ChargeStations")[0]
    origin = sim.location(station["location_id"])
    target = next(
        loc
        for loc in everything(sim, "/api/2.0/Locations")
        if loc["cpo_id"] == origin["cpo_id"] and loc["id"] != origin["id"]
    )
    sim.clock.advance(300)
    sim.move_charge_station(station["charge_station_id"], target["id"])
    uids = {e["uid"] for e in station["evses"]}
    left = [e for e in sim.location(origin["id"])["evses"] if e["uid"] in uids]
    arrived = [e for e in sim.location(target["id"])["evses"] if e["uid"] in uids]
    assert {e["status"] for e in left} == {"REMOVED"}
    assert {e["last_updated"] for e in left} == {
        e["last_updated"] for e in station["evses"]
    }  # timestamps untouched
    assert sim.location(origin["id"])["last_updated"] == origin["last_updated"]
    assert len(arrived) == len(uids) and all(e["status"] != "REMOVED" for e in arrived)
    assert sim.location(target["id"])["last_updated"] == sim.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sim.charge_station(station["charge_station_id"])["location_id"] == target["id"]
    live = [
        e
        for loc in everything(sim, "/api/2.0/Locations")
        for e in loc["evses"]
        if e["uid"] in uids and e["status"] != "REMOVED"
    ]
    assert len(live) == len(uids)  # only one copy of each is ever live


def test_rate_limits_answer_in_the_body_or_as_http_429(sim: GreenFluxSimulator) -> None:
    sim.faults.retry_after = 2
    sim.rate_limit_style = "alternate"
    sim.faults.inject("429", count=2)
    in_body, http = get(sim, "/api/2.0/Locations"), get(sim, "/api/2.0/Locations")
    assert in_body.status_code == 200 and "rate limit" in in_body.json()["status_message"].lower()
    assert in_body.json()["status_code"] == 2000 and "2 seconds" in in_body.json()["status_message"]
    assert http.status_code == 429 and http.headers["Retry-After"] == "2"
    sim.inject_ocpi(3001, "Unable to use the client's API")
    assert get(sim, "/api/2.0/ChargeStations").json()["status_code"] == 3001
    assert get(sim, "/api/2.0/ChargeStations").json()["status_code"] == 1000


def test_bare_lists_and_server_side_limit_cap(sim: GreenFluxSimulator) -> None:
    sim.bare_lists, sim.max_limit = True, 50
    response = get(sim, "/api/2.0/Locations", limit=500)
    assert (
        isinstance(response.json(), list)
        and len(response.json()) == 50
        and response.headers["X-Limit"] == "50"
    )


def test_charging_parks_map_connectors_to_tomtom_types(sim: GreenFluxSimulator) -> None:
    parks = sim.charging_parks()
    public = [
        loc
        for loc in sim.locations()
        if loc["access_type"] == "PUBLIC" and any(e["status"] != "REMOVED" for e in loc["evses"])
    ]
    assert {p.ref for p in parks} == {loc["id"] for loc in public}
    kinds = {kind for park in parks for kind, _, _ in park.connectors}
    assert {"IEC62196Type2Outlet", "IEC62196Type2CCS"} <= kinds
    assert kinds <= {
        "IEC62196Type2Outlet",
        "IEC62196Type2CableAttached",
        "IEC62196Type2CCS",
        "Chademo",
        "IEC62196Type1",
        "IEC62196Type1CCS",
    }
    park, location = parks[0], sim.location(parks[0].ref)
    plugs = sum(len(e["connectors"]) for e in location["evses"] if e["status"] != "REMOVED")
    assert sum(n for _, _, n in park.connectors) == plugs and park.country in ("NLD", "BEL")


def test_evolve_changes_statuses_between_syncs_deterministically(sim: GreenFluxSimulator) -> None:
    before = {(loc["id"], e["uid"]): e["status"] for loc in sim.locations() for e in loc["evses"]}
    sim.advance(1800)
    after = {(loc["id"], e["uid"]): e["status"] for loc in sim.locations() for e in loc["evses"]}
    assert sum(1 for k, v in before.items() if after.get(k) != v) >= 10
    with running(GreenFluxSimulator(scale=1, clock=SimClock(START), token=TOKEN, seed=3)) as twin:
        twin.advance(1800)
        assert twin.locations() == sim.locations()  # same seed, same history


def test_a_million_evses_are_generated_on_demand() -> None:
    big = GreenFluxSimulator(scale=1200, clock=SimClock(START), token=TOKEN)
    assert big.n_evses > 900_000
    with big:
        last = get(big, "/api/2.0/Locations", offset=big.n_locations - 3, limit=10).json()["data"]
        assert len(last) == 3 and all(loc["evses"] for loc in last)
        assert big.location(last[-1]["id"]) == last[-1]
    assert big.mutated() == 0  # nothing was materialized to serve them
