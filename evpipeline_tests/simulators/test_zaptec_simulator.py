"""The Zaptec simulator speaks the real API's shapes: raw HTTP, no pipeline code in between."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests

from evpipeline.simulators.toolkit import SimClock, _QuietServer
from evpipeline.simulators.zaptec import COUNTRY_IDS, EMPTY_CHARGER_ID, PULSE, ZaptecSimulator
from evpipeline_tests.typed import running

USER, PASSWORD = "owner@example.com", "hunter2-but-longer"
ZONELESS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?$")


@pytest.fixture
def sim() -> Iterator[ZaptecSimulator]:
    clock = SimClock(start=datetime(2026, 11, 1, 12, tzinfo=UTC))
    zaptec = ZaptecSimulator(
        chargers=40,
        clock=clock,
        username=USER,
        password=PASSWORD,
        rate=1000.0,
        burst=1000.0,
        token_rate=1000.0,
        token_burst=1000.0,
    )  # shapes, not limits, here
    with running(zaptec) as s:
        yield s


def login(sim: ZaptecSimulator, password: str = PASSWORD, **form: str) -> requests.Response:
    return requests.post(
        f"{sim.url}/oauth/token",
        data={"grant_type": "password", "username": USER, "password": password, **form},
    )


def api(sim: ZaptecSimulator, path: str, token: str, **params: Any) -> requests.Response:
    return requests.get(f"{sim.url}/api/{path}", params=params, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def token(sim: ZaptecSimulator) -> str:
    return str(login(sim).json()["access_token"])


def test_password_grant_and_its_failures(sim: ZaptecSimulator) -> None:
    granted = login(sim)
    assert granted.status_code == 200
    body = granted.json()
    assert (
        body["token_type"] == "Bearer"
        and body["expires_in"] == 86400
        and body["access_token"].startswith("eyJ")
    )
    assert login(sim, password="wrong").json() == {
        "error": "invalid_grant",
        "error_description": "The user name or password is incorrect.",
    }
    assert login(sim, password="wrong").status_code == 400
    as_json = requests.post(
        f"{sim.url}/oauth/token", json={"grant_type": "password", "username": USER, "password": PASSWORD}
    )
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"  # form-encoded only
    assert login(sim, grant_type="client_credentials").json()["error"] == "unsupported_grant_type"

    assert requests.get(f"{sim.url}/api/chargers").status_code == 401
    assert api(sim, "chargers", body["access_token"]).status_code == 200
    sim.clock.advance(86400)  # the token's lifetime passes
    expired = api(sim, "chargers", body["access_token"])
    assert expired.status_code == 401 and "expired" in expired.headers["WWW-Authenticate"]


def test_paged_lists_are_pascal_case_zero_based_and_capped_at_100(sim: ZaptecSimulator, token: str) -> None:
    first = api(sim, "chargers", token, PageIndex=0, PageSize=15).json()
    assert set(first) == {"Pages", "Data", "Message"} and first["Message"] is None
    assert first["Pages"] == math.ceil(40 / 15) and len(first["Data"]) == 15
    last = api(sim, "chargers", token, PageIndex=first["Pages"] - 1, PageSize=15).json()
    assert len(last["Data"]) == 40 - 15 * (first["Pages"] - 1)
    assert api(sim, "chargers", token, PageIndex=first["Pages"], PageSize=15).json()["Data"] == []
    capped = api(sim, "chargers", token, PageIndex=0, PageSize=500).json()
    assert capped["Pages"] == 1 and len(capped["Data"]) == 40  # 500 is served as 100 per page
    charger = first["Data"][0]
    assert {
        "Id",
        "DeviceId",
        "MID",
        "Name",
        "CircuitId",
        "InstallationId",
        "OperatingMode",
        "IsOnline",
        "DeviceType",
        "Active",
    } <= set(charger)
    installation = api(sim, "installation", token, PageIndex=0, PageSize=100).json()["Data"][0]
    assert {
        "Id",
        "Active",
        "AuthenticationType",
        "CurrentUserRoles",
        "InstallationType",
        "NetworkType",
        "IsRequiredAuthentication",
        "TimeZoneIanaName",
        "CountryId",
    } <= set(installation)
    assert ZONELESS.match(installation["CreatedOnDate"]) and ZONELESS.match(charger["CreatedOnDate"])
    assert api(sim, "chargers", token, PageIndex="x").status_code == 400


def test_state_observations_are_strings_with_zoneless_timestamps(sim: ZaptecSimulator, token: str) -> None:
    charger = next(c for c in sim.chargers.values() if c.value(710) == "3")
    observations = api(sim, f"chargers/{charger.id}/state", token).json()
    by_id = {o["StateId"]: o for o in observations}
    assert all(
        set(o) <= {"ChargerId", "StateId", "Timestamp", "ValueAsString"} and o["ChargerId"] == charger.id
        for o in observations
    )
    assert all(ZONELESS.match(o["Timestamp"]) for o in observations)
    assert all(isinstance(o["ValueAsString"], str) for o in observations if o["StateId"] != PULSE)
    assert "ValueAsString" not in by_id[PULSE]
    assert by_id[710]["ValueAsString"] == "3" and re.match(r"^\d+\.\d{3}$", by_id[513]["ValueAsString"])
    assert by_id[-2]["ValueAsString"] in ("0", "1") and by_id[554]["ValueAsString"].startswith("OCMF|{")
    assert api(sim, "chargers/not-a-charger/state", token).status_code == 404


def test_hierarchy_and_204_without_access(sim: ZaptecSimulator, token: str) -> None:
    visible = next(i for i in sim.installations.values() if i.body["CurrentUserRoles"] & 2)
    tree = api(sim, f"installation/{visible.body['Id']}/hierarchy", token).json()
    assert set(tree) == {"Id", "Name", "NetworkType", "Circuits"}
    assert {c["Id"] for circuit in tree["Circuits"] for c in circuit["Chargers"]} == set(visible.charger_ids)
    hidden = [i for i in sim.installations.values() if i.body["CurrentUserRoles"] == 1]
    assert hidden, "the fleet includes installations where the account is only a User"
    response = api(sim, f"installation/{hidden[0].body['Id']}/hierarchy", token)
    assert response.status_code == 204 and response.content == b""
    detail = api(sim, f"installation/{visible.body['Id']}", token).json()
    assert len(detail["SupportGroup"]["LogoBase64"]) > 4000  # the single-installation model is large


def test_fleet_mixes_private_homes_and_public_sites_in_two_countries(sim: ZaptecSimulator) -> None:
    kinds = {(i.country, i.public) for i in sim.installations.values()}
    assert kinds == {("NOR", True), ("NOR", False), ("NLD", True), ("NLD", False)}
    homes = [i.body for i in sim.installations.values() if not i.public]
    assert all(not h["IsRequiredAuthentication"] for h in homes)
    assert {h["Name"] for h in homes} <= {"Hjemme", "Hytta", "Hjem", "Thuis", "Huis", "Woning"}
    parks = sim.charging_parks()
    public = {i.body["Id"] for i in sim.installations.values() if i.public}
    assert {p.ref for p in parks} == public  # homes are never on a map
    # 16 or 32 A on 3 phases of a TN grid (11, 22 kW), of an IT grid (230 V between lines: 6, 13 kW),
    # or on one (4, 7 kW)
    assert all(
        kind == "IEC62196Type2Outlet" and kw in (11.0, 22.0, 6.0, 13.0, 4.0, 7.0)
        for p in parks
        for kind, kw, _ in p.connectors
    )
    assert sum(n for p in parks for *_, n in p.connectors) == sum(
        len(sim.installations[r].charger_ids) for r in public
    )


def test_constants_are_served_without_a_token_and_list_every_country_id(sim: ZaptecSimulator) -> None:
    response = requests.get(f"{sim.url}/api/constants")  # no Authorization header at all
    assert response.status_code == 200
    constants = response.json()
    countries = {c["Code"]: c for c in constants["Countries"]}
    assert {"NOR", "NLD", "SWE", "DNK", "DEU", "BEL", "GBR"} <= set(countries)
    assert all(re.fullmatch(r"[A-Z]{3}", code) and c["Name"] for code, c in countries.items())
    assert {code: c["Id"] for code, c in countries.items()} == COUNTRY_IDS
    assert len({c["Id"] for c in constants["Countries"]}) == len(constants["Countries"])  # distinct GUIDs
    assert {i.body["CountryId"] for i in sim.installations.values()} <= set(COUNTRY_IDS.values())
    assert constants["ChargerOperationModes"]["Connected_Charging"] == 3
    assert constants["ObservationIds"]["Pulse"] == PULSE
    go = constants["Schema"]["Apollo"]
    assert go["DeviceType"] == 4 and go["ObservationIds"]["ChargerOperationMode"] == 710


def test_added_installations_can_disagree_with_their_country(sim: ZaptecSimulator, token: str) -> None:
    before = {iid: json.dumps(i.body) for iid, i in sim.installations.items()}
    dutch = sim.add_installation("NLD", time_zone="Europe/Brussels", chargers=2)
    unknown_id = "5f1d0c2b-3a4e-4b6c-9d8e-7f6a5b4c3d2e"
    unlisted = sim.add_installation("NOR", public=False, country_id=unknown_id)
    assert {iid: json.dumps(sim.installations[iid].body) for iid in before} == before  # fleet untouched
    body = api(sim, f"installation/{dutch}", token).json()
    assert (body["CountryId"], body["TimeZoneIanaName"]) == (COUNTRY_IDS["NLD"], "Europe/Brussels")
    assert "Brussels" in body["TimeZoneName"] and len(sim.installations[dutch].charger_ids) == 2
    body = api(sim, f"installation/{unlisted}", token).json()
    assert (body["CountryId"], body["TimeZoneIanaName"]) == (unknown_id, "Europe/Oslo")
    assert body["IsRequiredAuthentication"] is False


def test_rate_limits_are_enforced_per_account_and_on_the_token_endpoint() -> None:
    with running(ZaptecSimulator(chargers=4, username=USER, password=PASSWORD)) as sim:  # the real limits
        first, second = login(sim), login(sim)
        assert first.status_code == 200 and second.status_code == 429  # about 1/s on the token endpoint
        assert int(second.headers["Retry-After"]) >= 1
        token = first.json()["access_token"]
        statuses = [api(sim, "chargers", token).status_code for _ in range(30)]
    assert statuses[:5] == [200] * 5 and statuses.count(429) >= 15


def sas(resource: str, key_name: str, key: str, expiry: int) -> str:
    encoded = quote_plus(resource)
    signature = base64.b64encode(
        hmac.new(key.encode(), f"{encoded}\n{expiry}".encode(), hashlib.sha256).digest()
    ).decode()
    return f"SharedAccessSignature sr={encoded}&sig={quote(signature, safe='')}&se={expiry}&skn={key_name}"


def test_messages_over_the_service_bus_rest_protocol(sim: ZaptecSimulator, token: str) -> None:
    details = api(sim, f"userGroups/{sim.user_group_id}/messagingConnectionDetails", token).json()
    assert set(details) == {"Type", "Host", "Port", "UseSSL", "Username", "Password", "Topic", "Subscription"}
    legacy = api(
        sim, f"installation/{next(iter(sim.installations))}/messagingConnectionDetails", token
    ).json()
    assert legacy == details
    base = f"http://{details['Host']}:{details['Port']}/{details['Topic']}"
    head = f"{base}/subscriptions/{details['Subscription']}/messages/head"
    auth = {"Authorization": sas(base, details["Username"], details["Password"], int(time.time()) + 600)}
    forged = {"Authorization": sas(base, details["Username"], "not-the-key", int(time.time()) + 600)}

    sim.advance(300)  # charging sessions change: every change is published
    assert sim.pending_messages() > 0
    assert requests.post(head, params={"timeout": 0}).status_code == 401
    assert requests.post(head, params={"timeout": 0}, headers=forged).status_code == 401
    locked = requests.post(head, params={"timeout": 0}, headers=auth)
    assert locked.status_code == 201
    message = json.loads(locked.content)
    assert set(message) == {"ChargerId", "DeviceId", "DeviceType", "StateId", "Timestamp", "ValueAsString"}
    assert ZONELESS.match(message["Timestamp"]) and isinstance(message["ValueAsString"], str)
    properties = json.loads(locked.headers["BrokerProperties"])
    assert properties["DeliveryCount"] == 1 and properties["LockToken"] and properties["SequenceNumber"] == 1
    assert requests.delete(locked.headers["Location"], headers=auth).status_code == 200  # complete
    assert requests.delete(locked.headers["Location"], headers=auth).status_code == 404  # gone

    destructive = requests.delete(head, params={"timeout": 0}, headers=auth)  # receive-and-delete
    assert (
        destructive.status_code == 200
        and json.loads(destructive.headers["BrokerProperties"])["SequenceNumber"] == 2
    )
    while requests.delete(head, params={"timeout": 0}, headers=auth).status_code == 200:
        pass
    assert requests.post(head, params={"timeout": 0}, headers=auth).status_code == 204  # empty

    sim.publish_raw(
        {
            "ChargerId": EMPTY_CHARGER_ID,
            "StateId": 1,
            "Timestamp": "2026-11-01T12:00:00",
            "ValueAsString": "0",
        }
    )
    sim.subscription_idle_seconds = 60
    sim.clock.advance(120)  # unused for longer than the idle limit: Service Bus deletes it
    assert requests.post(head, params={"timeout": 0}, headers=auth).status_code == 404
    assert sim.messages_lost == 1
    recreated = requests.post(
        f"{sim.url}/api/userGroups/{sim.user_group_id}/messagingSubscription",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert recreated.status_code == 201 and recreated.json()["Subscription"] != details["Subscription"]


def test_long_poll_returns_as_soon_as_a_message_is_published(sim: ZaptecSimulator, token: str) -> None:
    details = api(sim, f"userGroups/{sim.user_group_id}/messagingConnectionDetails", token).json()
    base = f"http://{details['Host']}:{details['Port']}/{details['Topic']}"
    auth = {"Authorization": sas(base, details["Username"], details["Password"], int(time.time()) + 600)}
    charger = next(iter(sim.chargers))
    threading.Timer(0.2, lambda: sim.set_state(charger, -2, "0")).start()
    received = requests.post(
        f"{base}/subscriptions/{details['Subscription']}/messages/head", params={"timeout": 30}, headers=auth
    )
    assert received.status_code == 201 and json.loads(received.content)["StateId"] == -2


def test_toolkit_server_sends_without_nagle_delay() -> None:
    """Shared toolkit fix: accepted sockets have TCP_NODELAY (headers and body are two writes)."""
    seen: list[int] = []

    class Probe(_QuietServer):
        def process_request(self, request: Any, client_address: Any) -> None:
            seen.append(request.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.shutdown_request(request)

    server = Probe(
        ("127.0.0.1", 0), socketserver.BaseRequestHandler
    )  # never used: process_request is replaced
    with socket.create_connection(("127.0.0.1", server.server_address[1])):
        server.handle_request()
    server.server_close()
    assert seen == [1]


def test_chargers_never_use_more_phases_or_power_than_their_grid_brings(sim: ZaptecSimulator) -> None:
    grid_phases = {1: 1, 2: 3, 3: 1, 4: 3}  # NetworkType: IT 1-phase, IT 3-phase, TN 1-phase, TN 3-phase
    networks = set()
    for charger in sim.chargers.values():
        network = sim.installations[charger.installation_id].body["NetworkType"]
        networks.add(network)
        phases = int(charger.value(520) or 0)
        assert 1 <= phases <= grid_phases[network]
        # Line to neutral: 230 V on TN; an IT grid has 230 V between lines,
        # so its 3 phases give sqrt(3) x 230 V x I.
        volts = 230 / 3**0.5 if network == 2 and phases == 3 else 230
        assert float(charger.value(513) or 0) <= phases * volts * float(charger.value(510) or 0) + 0.01
    assert {2, 3, 4} <= networks  # the fleet has IT and TN, 1- and 3-phase grids
