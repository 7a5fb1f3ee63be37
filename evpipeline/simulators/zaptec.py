"""Zaptec API simulator (api.zaptec.com) with the Service Bus topic Zaptec publishes state changes to.

Faithful to what production sends (see docs/sources.md, "Zaptec"):
- `POST /oauth/token`: OAuth2 password grant, form-encoded only; 400 `invalid_grant` for wrong
  credentials; bearer tokens expire (`expires_in`, simulated clock); about 1 request/s allowed.
- `GET /api/installation`, `GET /api/chargers`: `PagedData` `{"Pages", "Data", "Message"}`,
  `PageIndex` 0-based, `PageSize` capped at 100. PascalCase keys, zone-less .NET timestamps with
  trimmed fractions (`2024-03-01T08:12:44.92`).
- `GET /api/installation/{id}`, `GET /api/installation/{id}/hierarchy` (204 No Content when the
  account only has the User role there), `GET /api/chargers/{id}/state`: observations with
  `StateId`, `Timestamp` (no zone) and every value a string in `ValueAsString` (none for Pulse, -1).
- `GET /api/constants` (no token needed): enums, ObservationIds per device schema and the
  `Countries` list (`Id` GUID, ISO 3166 alpha-3 `Code`, `Name`). Installations carry only
  `CountryId`, one of those GUIDs; the pipeline resolves it through this list (a deployment whose
  account's constants differ can pin ids with `ZAPTEC_COUNTRY_IDS`).
- 401 once a token expired; 10 requests/s per account (token bucket, small burst) answered with
  429 + `Retry-After` when exceeded.
- Messaging: `GET /api/userGroups/{id}/messagingConnectionDetails` (and the deprecated
  installation-level path) return a ConnectionDescriptor for a topic subscription this server
  also hosts, speaking Azure Service Bus's REST receive protocol (peek-lock, complete, unlock,
  receive-and-delete) with SAS authentication. Message bodies are plain JSON observations; real
  ones are the same JSON wrapped in .NET binary XML (MC-NBFX). Subscriptions unused for
  `subscription_idle_seconds` (real: 14 days) disappear (404). Real Zaptec re-enables them by a
  support request; `POST /api/userGroups/{id}/messagingSubscription` is this simulator's stand-in
  for that (it is not a Zaptec endpoint).

The fleet mixes private home installations ("Hjemme", "Thuis": Zaptec Go, no authentication) and
public business sites (Zaptec Pro, authentication required) in Norway and the Netherlands.
`add_installation()` adds the awkward ones tests need: a time zone that disagrees with the country
(a Dutch site set to Brussels time) or a CountryId that /api/constants does not list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from evpipeline.simulators.toolkit import (
    ChargingPark,
    HttpReply,
    Request,
    Response,
    ServerRateLimit,
    SimClock,
    SimServer,
    det_uuid,
    http_date,
    random_place,
    weighted,
)

EMPTY_CHARGER_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_USER_GROUP_ID = "3c1f7a52-8d4e-4b6a-9f21-6e0d5b7c9a84"
PAGE_SIZE_MAX = 100
PAGE_SIZE_DEFAULT = 20

# Zaptec identifies countries by its own GUIDs, listed with their ISO 3166 alpha-3 code in the
# Countries of /api/constants (simulator values, stable across runs; the fleet uses NOR and NLD).
COUNTRIES: dict[str, tuple[str, str]] = {
    "NOR": ("0f2d6c1e-5b7a-4e0e-9a3c-3b1e2f4a5d60", "Norway"),
    "NLD": ("7a9e3c21-4d5f-4b6a-8c7d-1e2f3a4b5c6d", "Netherlands"),
    "SWE": ("c4b1e8d2-6a3f-4c7e-9b5d-2f8a1e6c3b90", "Sweden"),
    "DNK": ("5e9a2c7f-1b4d-4e8a-a6c3-7d2f9b1e4a58", "Denmark"),
    "DEU": ("a83d5f1b-9c2e-4a6d-8f7b-3e1c5a9d2b46", "Germany"),
    "BEL": ("2d7f4a9c-8e1b-4d3a-b5c6-9a4e2f7d1c83", "Belgium"),
    "GBR": ("e16c9b3a-4f7d-4b2e-8a5c-6d3b9e1f7a24", "United Kingdom"),
}
COUNTRY_IDS = {code: guid for code, (guid, _name) in COUNTRIES.items()}
TIME_ZONES = {
    "NOR": ("(UTC+01:00) Central European Time (Oslo)", "Europe/Oslo"),
    "NLD": ("(UTC+01:00) Central European Time (Amsterdam)", "Europe/Amsterdam"),
}
# Display names of zones an installation may be configured with regardless of its country.
ZONE_NAMES = {
    "Europe/Oslo": TIME_ZONES["NOR"][0],
    "Europe/Amsterdam": TIME_ZONES["NLD"][0],
    "Europe/Brussels": "(UTC+01:00) Brussels, Copenhagen, Madrid, Paris",
    "Europe/Berlin": "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
    "Europe/London": "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
}
HOME_NAMES = {"NOR": ["Hjemme", "Hjemme", "Hjemme", "Hytta", "Hjem"], "NLD": ["Thuis", "Thuis", "Huis", "Woning"]}
HOME_CHARGERS = {"NOR": ["Garasje", "Carport", "Innkjørsel", "Zaptec Go"], "NLD": ["Oprit", "Carport", "Garage", "Zaptec Go"]}
BUSINESSES = {
    "NOR": ["Circle K", "Rema 1000", "Coop Extra", "Europark", "Scandic", "Thon Hotel", "Storsenter"],
    "NLD": ["Albert Heijn", "Q-Park", "Van der Valk", "Jumbo", "Bedrijvenpark", "Gemeente"],
}
CHARGER_LABEL = {"NOR": "Lader", "NLD": "Laadpunt"}

# Observation ids the simulator reports (see the Zaptec state observation reference).
IS_OCPP_CONNECTED, IS_ONLINE, PULSE = -3, -2, -1
TOTAL_CHARGE_POWER, SESSION_ENERGY, OPERATION_MODE, FINAL_STOP_ACTIVE = 513, 553, 710, 718
DISCONNECTED, REQUESTING, CHARGING, FINISHED = 1, 2, 3, 5  # ChargerOperationMode (4 is unused)
LARGE_STATE = 980  # one of the blobs integrations exclude as too large

# A realistic subset of /api/constants besides Countries (the enums the pipeline documents).
OBSERVATION_IDS = {
    "IsOcppConnected": IS_OCPP_CONNECTED, "IsOnline": IS_ONLINE, "Pulse": PULSE, "CommunicationMode": 150,
    "PermanentCableLock": 151, "TemperatureInternal5": 201, "VoltagePhase1": 501, "VoltagePhase2": 502,
    "VoltagePhase3": 503, "CurrentPhase1": 507, "CurrentPhase2": 508, "CurrentPhase3": 509,
    "ChargerMaxCurrent": 510, "ChargerMinCurrent": 511, "TotalChargePower": TOTAL_CHARGE_POWER,
    "MaxPhases": 520, "TotalChargePowerSession": SESSION_ENERGY, "SignedMeterValue": 554,
    "ChargeCurrentSet": 708, "ChargerOperationMode": OPERATION_MODE, "IsEnabled": 711,
    "FinalStopActive": FINAL_STOP_ACTIVE, "InstallationId": 800,
    "SmartComputerSoftwareApplicationVersion": 908,
}
ENUMS: dict[str, Any] = {
    "ChargerOperationModes": {
        "Unknown": 0, "Disconnected": DISCONNECTED, "Connected_Requesting": REQUESTING,
        "Connected_Charging": CHARGING, "Connected_Finished": FINISHED,
    },
    "DeviceTypes": {"Unknown": 0, "Smart": 1, "Apollo": 4},
    "InstallationTypes": {"Pro": {"Id": 0, "Name": "Pro"}, "Smart": {"Id": 1, "Name": "Smart"}},
    "InstallationAuthenticationType": {"Native": 0, "WebHooks": 1, "Ocpp": 2},
    "NetworkTypes": {"Unknown": 0, "IT_1_Phase": 1, "IT_3_Phase": 2, "TN_1_Phase": 3, "TN_3_Phase": 4},
    "UserRoles": {"None": 0, "User": 1, "Owner": 2, "Maintainer": 4, "Administrator": 8},
}

_BAD_CREDENTIALS = {"error": "invalid_grant", "error_description": "The user name or password is incorrect."}
_DENIED = {"Message": "Authorization has been denied for this request."}


def dotnet(when: datetime) -> str:
    """A .NET round-trip time without zone, fraction trimmed: `2023-06-09T13:40:01.12`."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{when.microsecond // 1000:03d}".rstrip("0")
    return f"{text}.{fraction}" if fraction else text


def num(value: float, decimals: int = 3) -> str:
    """Numbers travel as strings with fixed decimals (`"7360.000"`)."""
    return f"{value:.{decimals}f}"


@dataclass
class Installation:
    body: dict[str, Any]
    country: str
    public: bool
    circuits: list[dict[str, Any]] = field(default_factory=list)
    charger_ids: list[str] = field(default_factory=list)


@dataclass
class Charger:
    body: dict[str, Any]
    installation_id: str
    max_current: float
    phases: int
    states: dict[int, tuple[str | None, datetime]] = field(default_factory=dict)
    meter_kwh: float = 0.0
    extra: list[dict[str, Any]] = field(default_factory=list)  # raw observations injected by tests

    @property
    def id(self) -> str:
        return str(self.body["Id"])

    def value(self, state_id: int) -> str | None:
        return self.states.get(state_id, (None, None))[0]


@dataclass
class Token:
    subject: str
    expires_at: datetime


@dataclass
class BusMessage:
    message_id: str
    sequence: int
    body: bytes
    enqueued: datetime
    delivery_count: int = 0
    lock_token: str | None = None
    locked_until: datetime | None = None


@dataclass
class BusSubscription:
    topic: str
    name: str
    key_name: str
    key: str
    last_activity: datetime
    queue: deque[BusMessage] = field(default_factory=deque)
    locked: dict[str, BusMessage] = field(default_factory=dict)

    def descriptor(self, host: str, port: int) -> dict[str, Any]:
        # Real: Host "zapcloud-messaging.servicebus.windows.net", Port 5671 (AMQPS), UseSSL true.
        return {
            "Type": 0, "Host": host, "Port": port, "UseSSL": False, "Username": self.key_name,
            "Password": self.key, "Topic": self.topic, "Subscription": self.name,
        }


LIST_ENDPOINTS = frozenset({"/api/chargers", "/api/installation"})


class _Limits(ServerRateLimit):
    """Zaptec's enforced limits: one bucket per API account (10/s), on top of it the list endpoints'
    own caps (30 a minute, 150 per 30 minutes), and a separate ~1/s bucket for the token endpoint.

    The Service Bus is another service: it is not counted against the API limit.
    """

    def __init__(self, rate: float, burst: float, token_rate: float, token_burst: float,
                 list_limits: list[tuple[int, float]]) -> None:
        super().__init__(rate, burst, windows={"list": list_limits})
        self.token = ServerRateLimit(token_rate, token_burst)

    def allow(self, account: str, endpoint_class: str | None = None) -> tuple[bool, float]:
        if account.startswith("bus:"):
            return True, 0.0
        if account.startswith("oauth:"):
            return self.token.allow(account)
        return super().allow(account, endpoint_class)


class ZaptecSimulator(SimServer):
    """The Zaptec cloud API for one portal account, its fleet and its message subscription."""

    name = "zaptec"

    def __init__(
        self,
        *,
        scale: float = 1.0,
        chargers: int | None = None,
        username: str = "sim-user@example.com",
        password: str = "sim-password",
        user_group_id: str = DEFAULT_USER_GROUP_ID,
        token_lifetime: float = 86400.0,
        rate: float = 10.0,
        burst: float = 5.0,
        token_rate: float = 1.0,
        token_burst: float = 1.0,
        list_limits: tuple[tuple[int, float], ...] = ((30, 60.0), (150, 1800.0)),
        subscription_idle_seconds: float = 14 * 86400.0,
        lock_seconds: float = 30.0,
        messaging: bool = True,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.username, self.password = username, password
        self.user_group_id = user_group_id
        self.token_lifetime = token_lifetime
        # Zaptec documents a burst of 15; the default here is stricter so that a client averaging
        # even slightly over 10/s is answered 429 within a second or two.
        self.limits = _Limits(rate, burst, token_rate, token_burst, list(list_limits))
        self.subscription_idle_seconds = subscription_idle_seconds
        self.lock_seconds = lock_seconds
        self.installations: dict[str, Installation] = {}
        self.chargers: dict[str, Charger] = {}
        self.tokens: dict[str, Token] = {}
        self.subscription: BusSubscription | None = None  # the live one; None once Service Bus removed it
        self._registered: BusSubscription | None = None  # what the connection-details endpoint hands out
        self.subscriptions_created = 0
        self.messages_published = 0
        self.messages_lost = 0  # published while no subscription existed, or deleted with one
        self._expire_countdown: int | None = None
        self.reject_tokens = False  # the account lost API access: logins work, every API call is 401
        self.forbidden: set[str] = set()  # installation/charger ids the account lost access to (403)
        self._sequence = 0
        self._bus_changed = threading.Condition()
        # What /api/constants answers; tests may edit it (e.g. drop a country).
        self.constants: dict[str, Any] = {
            **json.loads(json.dumps(ENUMS)),
            "ObservationIds": dict(OBSERVATION_IDS),
            "Schema": {
                name: {"DeviceType": device_type, "ObservationIds": dict(OBSERVATION_IDS)}
                for name, device_type in (("Smart", 1), ("Apollo", 4))
            },
            "Countries": [
                {"Id": guid, "Code": code, "Name": name} for code, (guid, name) in COUNTRIES.items()
            ],
        }
        self._fleet_rng = random.Random(f"zaptec:{seed}:fleet")
        self._key_rng = random.Random(f"zaptec:{seed}:keys")
        self._build_fleet(int(chargers if chargers is not None else round(40 * scale)), self._fleet_rng)
        if messaging:
            self._create_subscription()

        self.route("POST", r"/oauth/token", self._token)
        self.route("GET", r"/api/constants", self._constants)
        self.route("GET", r"/api/installation", self._list_installations)
        self.route("GET", r"/api/installation/(?P<id>[\w\-]+)", self._installation)
        self.route("GET", r"/api/installation/(?P<id>[\w\-]+)/hierarchy", self._hierarchy)
        self.route("GET", r"/api/installation/(?P<id>[\w\-]+)/messagingConnectionDetails", self._legacy_connection_details)
        self.route("GET", r"/api/chargers", self._list_chargers)
        self.route("GET", r"/api/chargers/(?P<id>[\w\-]+)", self._charger)
        self.route("GET", r"/api/chargers/(?P<id>[\w\-]+)/state", self._state)
        self.route("GET", r"/api/userGroups/(?P<id>[\w\-]+)/messagingConnectionDetails", self._connection_details)
        self.route("POST", r"/api/userGroups/(?P<id>[\w\-]+)/messagingSubscription", self._recreate_subscription)
        bus = r"/(?P<topic>[\w\-]+)/subscriptions/(?P<sub>[\w\-]+)/messages"
        self.route("POST", f"{bus}/head", self._peek_lock)
        self.route("DELETE", f"{bus}/head", self._receive_and_delete)
        self.route("DELETE", f"{bus}/(?P<mid>[\\w\\-]+)/(?P<lock>[\\w\\-]+)", self._complete)
        self.route("PUT", f"{bus}/(?P<mid>[\\w\\-]+)/(?P<lock>[\\w\\-]+)", self._unlock)

    # -- fleet -------------------------------------------------------------------------------
    def _build_fleet(self, target: int, rng: random.Random) -> None:
        # The first four installations cover every (country, public) pair, whatever the size.
        kinds = [("NOR", False), ("NOR", True), ("NLD", False), ("NLD", True)]
        count = 0
        while count < target:
            country, public = kinds.pop(0) if kinds else (rng.choice(["NOR", "NLD"]), rng.random() < 0.35)
            size = rng.randint(2, 10) if public else weighted(rng, [(1, 85), (2, 15)])
            size = max(1, min(size, target - count))
            self._add_installation(rng, country, public, size)
            count += size
        # One charger taken out of service by its owner: listed, but inactive.
        if len(self.chargers) > 3:
            list(self.chargers.values())[3].body["Active"] = False

    def add_installation(
        self,
        country: str = "NLD",
        *,
        public: bool = True,
        chargers: int = 1,
        time_zone: str | None = None,
        country_id: str | None = None,
    ) -> str:
        """Add an installation in `country` (NOR or NLD) now and return its id (tests).

        `time_zone` (IANA) may disagree with the country, as a Dutch site configured with Brussels
        time does; `country_id` replaces the country's GUID, e.g. with one /api/constants does not list.
        """
        with self.lock:
            # Its own random stream: adding one installation leaves the rest of the fleet as it was.
            rng = random.Random(f"zaptec:{self.seed}:added:{len(self.installations)}")
            installation = self._add_installation(rng, country, public, max(1, chargers), time_zone=time_zone)
            if country_id is not None:
                installation.body["CountryId"] = country_id
            return str(installation.body["Id"])

    def _add_installation(
        self, rng: random.Random, country: str, public: bool, size: int, *, time_zone: str | None = None
    ) -> Installation:
        now = self.clock.now()
        place = random_place(rng, country, spread_km=15)
        iid = det_uuid(rng)
        created = now - timedelta(days=rng.randint(30, 1500), seconds=rng.randint(0, 86399), milliseconds=rng.randint(0, 999))
        tz_name, tz_iana = TIME_ZONES[country]
        if time_zone is not None:
            tz_name, tz_iana = ZONE_NAMES.get(time_zone, f"(UTC) {time_zone}"), time_zone
        # Every fleet, however small, has the awkward cases at fixed positions.
        nth = sum(1 for i in self.installations.values() if i.public == public)
        if public:
            name = f"{rng.choice(BUSINESSES[country])} {rng.choice([place.city, place.street])}"
            # The account runs most sites; at every fifth it only has the User role (hierarchy: 204).
            roles = 1 if nth % 5 == 2 else 14
            kind = 0  # Pro
            max_current = rng.choice([63.0, 80.0, 125.0])
        else:
            name = rng.choice(HOME_NAMES[country])
            roles = 1 if nth % 20 == 5 else 3  # a relative's home the account may only charge at
            kind = 0 if nth % 10 == 1 else 1  # a few homes run a Pro charger: still private
            max_current = rng.choice([25.0, 32.0, 40.0])
        network = rng.choice([2, 2, 4]) if country == "NOR" else rng.choice([4, 4, 3])
        body = {
            "Id": iid,
            "Name": name,
            "Address": place.address,
            "ZipCode": place.postal_code,
            "City": place.city,
            "CountryId": COUNTRY_IDS[country],
            "InstallationType": kind,
            "MaxCurrent": max_current,
            "AvailableCurrent": None,
            "AvailableCurrentPhase1": max_current / 2,
            "AvailableCurrentPhase2": max_current / 2,
            "AvailableCurrentPhase3": max_current / 2,
            "AvailableCurrentMode": 0,
            "ThreeToOnePhaseSwitchCurrent": None,
            "UseLoadBalancing": True,
            "IsRequiredAuthentication": public,
            "Latitude": place.latitude,
            "Longitude": place.longitude,
            "Notes": None,
            "Active": True,
            "NetworkType": network,
            "CreatedOnDate": dotnet(created),
            "UpdatedOn": dotnet(created + timedelta(days=rng.randint(0, 20), milliseconds=rng.randint(0, 999))),
            "CurrentUserRoles": roles,
            "AuthenticationType": rng.choice([0, 2]) if public else 0,
            "MessagingEnabled": True,
            "TimeZoneName": tz_name,
            "TimeZoneIanaName": tz_iana,
            "ActiveChargerCount": size,
            "AvailableFeatures": 0,
            "EnabledFeatures": 0,
        }
        installation = Installation(body, country, public)
        circuit_word = "Kurs" if country == "NOR" else "Groep"
        for c in range(1 if not public else min(size, rng.randint(1, 3))):
            installation.circuits.append({
                "Id": det_uuid(rng), "Name": f"{circuit_word} {c + 1}",
                "MaxCurrent": rng.choice([32.0, 40.0, 63.0]) if public else max_current, "IsActive": True,
            })
        self.installations[iid] = installation
        for n in range(size):
            circuit = installation.circuits[n % len(installation.circuits)]
            self._add_charger(rng, installation, circuit, n, created)
        return installation

    def _add_charger(self, rng: random.Random, installation: Installation, circuit: dict[str, Any], n: int, created: datetime) -> Charger:
        public, country = installation.public, installation.country
        if public or installation.body["InstallationType"] == 0:
            device_id, device_type = f"ZPR{rng.randint(100000, 999999)}", 1  # Zaptec Pro
            name = f"{CHARGER_LABEL[country]} {n + 1:02d}"
        else:
            prefix = rng.choice(["ZAP", "ZAP", "GPN"])  # Zaptec Go / Go 2
            device_id, device_type = f"{prefix}{rng.randint(100000, 999999)}", 4
            name = rng.choice(HOME_CHARGERS[country]) if n == 0 else f"{HOME_CHARGERS[country][0]} {n + 1}"
        cid = det_uuid(rng)
        body = {
            "OperatingMode": DISCONNECTED,
            "IsOnline": True,
            "Id": cid,
            "MID": device_id,
            "DeviceId": device_id,
            "SerialNo": name,  # sic: the API echoes the charger's name here
            "Name": name,
            "CreatedOnDate": dotnet(created + timedelta(minutes=rng.randint(5, 600), milliseconds=rng.randint(0, 999))),
            "CircuitId": circuit["Id"],
            "Active": True,
            "CurrentUserRoles": installation.body["CurrentUserRoles"],
            "Pin": None,
            "TemplateId": None,
            "DeviceType": device_type,
            "InstallationName": installation.body["Name"],
            "InstallationId": installation.body["Id"],
            "AuthenticationType": installation.body["AuthenticationType"],
            "IsAuthorizationRequired": public,
            "SignedMeterValueKwh": 0.0,
            "SignedMeterValue": None,
            "Warnings": None,
        }
        max_current = 16.0 if rng.random() < 0.2 else 32.0
        charger = Charger(body, installation.body["Id"], max_current, 3 if rng.random() < 0.85 else 1,
                          meter_kwh=round(rng.uniform(50, 9000), 3))
        installation.charger_ids.append(cid)
        self.chargers[cid] = charger
        self._initial_states(rng, charger, public)
        return charger

    def _initial_states(self, rng: random.Random, charger: Charger, public: bool) -> None:
        now = self.clock.now()

        def at() -> datetime:
            return now - timedelta(seconds=rng.randint(60, 86400), milliseconds=rng.randint(0, 999))

        mode = weighted(rng, [(DISCONNECTED, 50), (REQUESTING, 5), (CHARGING, 25), (FINISHED, 20)])
        volts = [round(rng.uniform(226, 236), 2) for _ in range(3)]
        values: dict[int, str | None] = {
            IS_ONLINE: "1",
            PULSE: None,
            150: rng.choice(["Wifi", "Wifi", "LTE"]) if not public else rng.choice(["LTE", "Ethernet", "Wifi"]),
            151: "0",
            201: num(rng.uniform(8, 30), 1),
            501: num(volts[0]), 502: num(volts[1]), 503: num(volts[2]),
            510: num(charger.max_current),
            511: num(6.0),
            520: str(charger.phases),
            708: num(charger.max_current),
            711: "1",
            FINAL_STOP_ACTIVE: "0",
            800: charger.installation_id,
            908: rng.choice(["4.5.0.2", "4.6.1.0", "5.0.0.4"]),
            LARGE_STATE: "x" * 2048,
        }
        if public:
            values[IS_OCPP_CONNECTED] = "1"
        for state_id, value in values.items():
            charger.states[state_id] = (value, at())
        self._apply_mode(charger, mode, at(), publish=False, rng=rng)
        if mode in (CHARGING, FINISHED):
            charger.states[SESSION_ENERGY] = (num(rng.uniform(0.5, 30)), charger.states[OPERATION_MODE][1])
        charger.states[554] = (self._ocmf(charger, charger.states[OPERATION_MODE][1]), charger.states[OPERATION_MODE][1])

    def _ocmf(self, charger: Charger, when: datetime) -> str:
        reading = {"TM": when.strftime("%Y-%m-%dT%H:%M:%S,000+00:00") + " R", "RV": round(charger.meter_kwh, 4),
                   "RI": "1-0:1.8.0", "RU": "kWh", "RT": "AC", "ST": "G"}
        return "OCMF|" + json.dumps({"FV": "1.0", "GI": "ZAPTEC", "GS": charger.body["DeviceId"], "GV": "0.0.4.0",
                                     "PG": "F1", "RD": [reading]}, separators=(",", ":"))

    def _power_w(self, charger: Charger, rng: random.Random) -> float:
        return charger.phases * 230.0 * charger.max_current * rng.uniform(0.55, 1.0)

    def _set(self, charger: Charger, state_id: int, value: str | None, when: datetime, *, publish: bool = True) -> bool:
        """Record an observation; a changed value is published to the message subscription."""
        if charger.value(state_id) == value and state_id in charger.states:
            return False
        charger.states[state_id] = (value, when)
        if publish:
            self._publish(charger, state_id, value, when)
        return True

    def _apply_mode(self, charger: Charger, mode: int, when: datetime, *, publish: bool = True, rng: random.Random | None = None) -> None:
        rng = rng or self.rng
        self._set(charger, OPERATION_MODE, str(mode), when, publish=publish)
        charger.body["OperatingMode"] = mode
        power = self._power_w(charger, rng) if mode == CHARGING else 0.0
        self._set(charger, TOTAL_CHARGE_POWER, num(power), when, publish=publish)
        amps = power / (230.0 * charger.phases) if power else 0.0
        for phase, state_id in enumerate((507, 508, 509)):
            self._set(charger, state_id, num(amps if phase < charger.phases else 0.0), when, publish=False)
        if mode == REQUESTING:  # a new session starts from zero
            self._set(charger, SESSION_ENERGY, num(0.0), when, publish=publish)
        self._set(charger, FINAL_STOP_ACTIVE, "0", when, publish=publish)

    # -- change process ----------------------------------------------------------------------
    def evolve(self, seconds: float) -> None:
        """Sessions start, charge and end; chargers drop offline and return; every change is published."""
        rng, now = self.rng, self.clock.now()
        steps = max(1, min(60, int(seconds // 60)))  # long jumps are sampled, not replayed minute by minute
        step = seconds / steps
        for i in range(steps):
            when = now - timedelta(seconds=step * (steps - 1 - i)) - timedelta(milliseconds=rng.randint(0, 999))
            for charger in self.chargers.values():
                self._step(charger, rng, when, step)
        self._expire_idle_subscription(now)

    def _step(self, charger: Charger, rng: random.Random, when: datetime, seconds: float) -> None:
        if charger.value(IS_ONLINE) == "0":
            if rng.random() < 0.2:
                self._set(charger, IS_ONLINE, "1", when)
                charger.body["IsOnline"] = True
            return
        if rng.random() < 0.002:
            self._set(charger, IS_ONLINE, "0", when)
            charger.body["IsOnline"] = False
            return
        charger.states[PULSE] = (None, when)
        mode = int(charger.value(OPERATION_MODE) or DISCONNECTED)
        if mode == DISCONNECTED and rng.random() < 0.04:
            self._apply_mode(charger, REQUESTING, when)
        elif mode == REQUESTING and rng.random() < 0.5:
            self._apply_mode(charger, CHARGING, when)
        elif mode == CHARGING:
            power = float(charger.value(TOTAL_CHARGE_POWER) or 0)
            energy = power * seconds / 3_600_000
            charger.meter_kwh += energy
            charger.body["SignedMeterValueKwh"] = round(charger.meter_kwh, 3)
            self._set(charger, SESSION_ENERGY, num(float(charger.value(SESSION_ENERGY) or 0) + energy), when)
            if rng.random() < 0.05:
                self._apply_mode(charger, FINISHED, when)
                self._set(charger, 554, self._ocmf(charger, when), when, publish=False)
            elif rng.random() < 0.5:
                self._set(charger, TOTAL_CHARGE_POWER, num(power * rng.uniform(0.97, 1.03)), when)
        elif mode == FINISHED and rng.random() < 0.1:
            self._apply_mode(charger, DISCONNECTED, when)

    def set_state(self, charger_id: str, state_id: int, value: str | None, when: datetime | None = None, *, publish: bool = True) -> None:
        """Change one observation now (tests)."""
        with self.lock:
            charger = self.chargers[charger_id]
            when = when or self.clock.now()
            if state_id == OPERATION_MODE and value is not None and value.isdigit():
                self._apply_mode(charger, int(value), when, publish=publish)
            else:
                self._set(charger, state_id, value, when, publish=publish)

    def inject_observation(self, charger_id: str, observation: dict[str, Any]) -> None:
        """Add a raw (possibly malformed) observation to a charger's /state answer (tests)."""
        with self.lock:
            self.chargers[charger_id].extra.append(observation)

    def remove_charger(self, charger_id: str) -> None:
        """The charger was removed from its installation: gone from lists, /state answers 404."""
        with self.lock:
            charger = self.chargers.pop(charger_id)
            installation = self.installations[charger.installation_id]
            installation.charger_ids.remove(charger_id)
            installation.body["ActiveChargerCount"] = len(installation.charger_ids)

    def charging_parks(self) -> list[ChargingPark]:
        """Public business sites only (home chargers are private and never on a map): Type 2 sockets."""
        with self.lock:
            parks = []
            for installation in self.installations.values():
                if not installation.public or not installation.charger_ids:
                    continue
                counts: dict[float, int] = {}
                for cid in installation.charger_ids:
                    charger = self.chargers[cid]
                    kw = round(charger.phases * 230 * charger.max_current / 1000)
                    counts[float(kw)] = counts.get(float(kw), 0) + 1
                body = installation.body
                parks.append(ChargingPark(
                    body["Id"], body["Name"], body["Latitude"], body["Longitude"], installation.country,
                    tuple(("IEC62196Type2Outlet", kw, n) for kw, n in sorted(counts.items())),
                ))
            return parks

    # -- auth and limits ---------------------------------------------------------------------
    def rate_limit(self) -> ServerRateLimit:
        return self.limits

    def endpoint_class(self, request: Request) -> str | None:
        return "list" if request.method == "GET" and request.path.rstrip("/") in LIST_ENDPOINTS else None

    def precheck(self, request: Request) -> Response | None:
        # Zaptec refuses API calls without a User-Agent (its fair-use policy asks for a descriptive one).
        if request.path.startswith("/api/") and not (request.header("User-Agent") or "").strip():
            return Response.json({"Message": "A User-Agent header is required"}, 403)
        return None

    def account_of(self, request: Request) -> str:
        if request.path == "/oauth/token":
            return f"oauth:{request.client}"
        if not request.path.startswith("/api/"):
            return "bus:"
        token = self.tokens.get((request.header("Authorization") or "")[len("Bearer "):])
        return f"api:{token.subject}" if token else f"api:{request.client}"

    def _token(self, request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in (request.header("Content-Type") or ""):
            return Response.json({"error": "invalid_request", "error_description": "The request must be form-encoded."}, 400)
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "password":
            return Response.json({"error": "unsupported_grant_type"}, 400)
        user_ok = hmac.compare_digest(form.get("username", ""), self.username)
        password_ok = hmac.compare_digest(form.get("password", ""), self.password)
        if self.faults.bad_auth or not (user_ok and password_ok):
            return Response.json(_BAD_CREDENTIALS, 400)
        with self.lock:
            claims = {"sub": self.username, "jti": len(self.tokens) + 1, "iat": int(self.clock.now().timestamp())}
            payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
            signature = hashlib.sha256(f"{payload}:{self.seed}".encode()).hexdigest()[:43]
            token = f"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.{signature}"
            self.tokens[token] = Token(self.username, self.clock.now() + timedelta(seconds=self.token_lifetime))
        return Response.json({"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_lifetime)})

    def expire_tokens(self, after_requests: int = 0) -> None:
        """Every token issued so far stops working after `after_requests` more API calls (tests)."""
        with self.lock:
            self._expire_countdown = after_requests

    def _authorize(self, request: Request) -> str:
        header = request.header("Authorization") or ""
        with self.lock:
            if self._expire_countdown is not None:
                if self._expire_countdown <= 0:
                    now = self.clock.now()
                    for token in self.tokens.values():
                        token.expires_at = min(token.expires_at, now)
                    self._expire_countdown = None
                else:
                    self._expire_countdown -= 1
            token = self.tokens.get(header[len("Bearer "):]) if header.startswith("Bearer ") else None
            if token is None or self.clock.now() >= token.expires_at or self.reject_tokens:
                error = "invalid_token" if token is None else 'invalid_token", error_description="The token expired'
                raise HttpReply(Response.json(_DENIED, 401, {"WWW-Authenticate": f'Bearer error="{error}"'}))
            return token.subject

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return Response.json({"Message": "Too many requests"}, 429, {"Retry-After": str(max(1, math.ceil(retry_after)))})

    # -- API ---------------------------------------------------------------------------------
    def _paged(self, request: Request, items: list[dict[str, Any]]) -> Response:
        try:
            index = int(request.arg("PageIndex", "0") or 0)
            size = int(request.arg("PageSize", str(PAGE_SIZE_DEFAULT)) or PAGE_SIZE_DEFAULT)
        except ValueError:
            return Response.json({"Message": "The request is invalid: PageIndex and PageSize must be integers."}, 400)
        if index < 0 or size < 1:
            return Response.json({"Message": "The request is invalid: PageIndex must be >= 0 and PageSize >= 1."}, 400)
        size = min(size, PAGE_SIZE_MAX)
        return Response.json({"Pages": math.ceil(len(items) / size), "Data": items[index * size : (index + 1) * size], "Message": None})

    def _constants(self, request: Request) -> Response:
        """Zaptec serves its constants anonymously: no token is checked."""
        with self.lock:
            return Response.json(self.constants)

    def _list_installations(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            items = [json.loads(json.dumps(i.body)) for i in self.installations.values()]
        return self._paged(request, items)

    def _list_chargers(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            items = [json.loads(json.dumps(c.body)) for c in self.chargers.values()]
        return self._paged(request, items)

    def _find_installation(self, request: Request) -> Installation:
        installation = self.installations.get(request.params["id"])
        if installation is None:
            raise HttpReply(Response.json({"Message": "Installation not found"}, 404))
        return installation

    def _installation(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            installation = self._find_installation(request)
            # The single-installation model is large: it embeds the support group's logo.
            body = {**installation.body, "SupportGroup": {"Name": "Zaptec Support", "LogoBase64": "iVBORw0KGgo" + "A" * 4096}}
        return Response.json(body)

    def _forbid(self, request: Request) -> None:
        if request.params["id"] in self.forbidden:
            raise HttpReply(Response.json({"Message": "Access denied"}, 403))

    def _hierarchy(self, request: Request) -> Response:
        self._authorize(request)
        self._forbid(request)  # the pre-2025 answer for no access; 204 since
        with self.lock:
            installation = self._find_installation(request)
            if not installation.body["CurrentUserRoles"] & ~1:
                return Response.empty(204)  # User role only: formerly 403, since 2025 204 No Content
            body = installation.body
            circuits = []
            for circuit in installation.circuits:
                chargers = [self.chargers[cid].body for cid in installation.charger_ids if self.chargers[cid].body["CircuitId"] == circuit["Id"]]
                circuits.append({
                    **circuit, "InstallationId": body["Id"], "InstallationName": body["Name"],
                    "Chargers": [{"Id": c["Id"], "DeviceId": c["DeviceId"], "Name": c["Name"], "Active": c["Active"],
                                  "DeviceType": c["DeviceType"]} for c in chargers],
                })
            return Response.json({"Id": body["Id"], "Name": body["Name"], "NetworkType": body["NetworkType"], "Circuits": circuits})

    def _charger(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            charger = self.chargers.get(request.params["id"])
            if charger is None:
                return Response.json({"Message": "Charger not found"}, 404)
            return Response.json(charger.body)

    def _state(self, request: Request) -> Response:
        self._authorize(request)
        self._forbid(request)
        with self.lock:
            charger = self.chargers.get(request.params["id"])
            if charger is None:
                return Response.json({"Message": "Charger not found"}, 404)
            observations = []
            for state_id, (value, when) in sorted(charger.states.items()):
                observation: dict[str, Any] = {"ChargerId": charger.id, "StateId": state_id, "Timestamp": dotnet(when)}
                if state_id != PULSE:  # Pulse carries no ValueAsString at all
                    observation["ValueAsString"] = value
                observations.append(observation)
            observations.extend(charger.extra)
        return Response.json(observations)

    # -- messaging ---------------------------------------------------------------------------
    def _create_subscription(self) -> BusSubscription:
        self.subscriptions_created += 1
        rng = self._key_rng
        self.subscription = self._registered = BusSubscription(
            topic=f"zapcloud-{self.user_group_id[:8]}",
            name=f"integration-{self.subscriptions_created}",
            key_name=f"listen-{rng.getrandbits(32):08x}",
            key=base64.b64encode(rng.getrandbits(256).to_bytes(32, "big")).decode(),
            last_activity=self.clock.now(),
        )
        return self.subscription

    def _user_group(self, request: Request) -> None:
        if request.params["id"] != self.user_group_id:
            raise HttpReply(Response.json({"Message": "User group not found"}, 404))

    def _descriptor(self) -> Response:
        # Zaptec keeps handing out the descriptor after Service Bus deleted the subscription.
        if self._registered is None:
            return Response.json({"Message": "Messaging is not enabled for this user group"}, 403)
        return Response.json(self._registered.descriptor(self.host, self.port))

    def _connection_details(self, request: Request) -> Response:
        self._authorize(request)
        self._user_group(request)
        with self.lock:
            return self._descriptor()

    def _legacy_connection_details(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            installation = self._find_installation(request)
            if not installation.body["MessagingEnabled"]:
                return Response.json({"Message": "Messaging is not enabled for this installation"}, 403)
            return self._descriptor()

    def _recreate_subscription(self, request: Request) -> Response:
        """Simulator-only stand-in for Zaptec support re-enabling messaging."""
        self._authorize(request)
        self._user_group(request)
        with self.lock:
            subscription = self._create_subscription()
            return Response.json(subscription.descriptor(self.host, self.port), 201)

    def remove_subscription(self) -> None:
        """Service Bus deleted the subscription (auto-delete on idle); its messages are gone."""
        with self.lock:
            if self.subscription is not None:
                self.messages_lost += len(self.subscription.queue) + len(self.subscription.locked)
            self.subscription = None

    def _expire_idle_subscription(self, now: datetime) -> None:
        sub = self.subscription
        if sub is not None and (now - sub.last_activity).total_seconds() > self.subscription_idle_seconds:
            self.remove_subscription()

    def _publish(self, charger: Charger, state_id: int, value: str | None, when: datetime) -> None:
        body = {
            "ChargerId": charger.id, "DeviceId": charger.body["DeviceId"], "DeviceType": charger.body["DeviceType"],
            "StateId": state_id, "Timestamp": dotnet(when), "ValueAsString": value,
        }
        self.publish_raw(body)

    def publish_raw(self, body: dict[str, Any] | bytes) -> str | None:
        """Put one message on the topic (evolve uses it; tests send hand-made ones). Returns its MessageId."""
        with self.lock:
            self.messages_published += 1
            sub = self.subscription
            if sub is None:
                self.messages_lost += 1
                return None
            self._sequence += 1
            message = BusMessage(
                message_id=str(uuid.UUID(int=self._key_rng.getrandbits(128), version=4)),
                sequence=self._sequence,
                body=body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode(),
                enqueued=self.clock.now(),
            )
            sub.queue.append(message)
        with self._bus_changed:
            self._bus_changed.notify_all()
        return message.message_id

    def pending_messages(self) -> int:
        with self.lock:
            return 0 if self.subscription is None else len(self.subscription.queue) + len(self.subscription.locked)

    def _bus_error(self, status: int, detail: str) -> Response:
        xml = f"<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>"
        return Response.text(xml, status, "application/xml; charset=utf-8")

    def _bus_subscription(self, request: Request) -> BusSubscription:
        """The addressed subscription after checking the SAS token; 404 once it was removed."""
        with self.lock:
            self._expire_idle_subscription(self.clock.now())
            sub = self.subscription
            if sub is None or (request.params["topic"], request.params["sub"]) != (sub.topic, sub.name):
                entity = f"{request.params['topic']}/subscriptions/{request.params['sub']}"
                raise HttpReply(self._bus_error(404, f"The messaging entity '{entity}' could not be found."))
            self._check_sas(request, sub)
            sub.last_activity = self.clock.now()
            return sub

    def _check_sas(self, request: Request, sub: BusSubscription) -> None:
        header = request.header("Authorization") or ""
        if not header.startswith("SharedAccessSignature "):
            raise HttpReply(self._bus_error(401, "MalformedToken: no SharedAccessSignature."))
        parts = dict(p.split("=", 1) for p in header[len("SharedAccessSignature "):].split("&") if "=" in p)
        resource, expiry, key_name = parts.get("sr", ""), parts.get("se", ""), parts.get("skn", "")
        expected = base64.b64encode(hmac.new(sub.key.encode(), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()).decode()
        valid = (
            key_name == sub.key_name
            and hmac.compare_digest(unquote(parts.get("sig", "")), expected)
            and expiry.isdigit() and int(expiry) > time.time()  # SAS expiry is real time, not simulated
            and urlsplit(unquote_plus(resource)).path.strip("/").startswith(sub.topic)
        )
        if not valid:
            raise HttpReply(self._bus_error(401, "InvalidSignature: the token has an invalid signature or expired."))

    def _release_expired_locks(self, sub: BusSubscription) -> None:
        now = self.clock.now()
        expired = [m for m in sub.locked.values() if m.locked_until is not None and m.locked_until <= now]
        for message in sorted(expired, key=lambda m: m.sequence, reverse=True):
            del sub.locked[message.message_id]
            message.lock_token = message.locked_until = None
            sub.queue.appendleft(message)  # back at the head, in order

    def _next_message(self, request: Request) -> tuple[BusSubscription, BusMessage] | None:
        wait = min(float(request.arg("timeout", "60") or 60), 60.0)
        deadline = time.monotonic() + wait
        while True:
            with self.lock:
                sub = self._bus_subscription(request)
                self._release_expired_locks(sub)
                if sub.queue:
                    return sub, sub.queue.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with self._bus_changed:
                self._bus_changed.wait(min(remaining, 0.25))

    def _message_response(self, sub: BusSubscription, message: BusMessage, status: int) -> Response:
        properties: dict[str, Any] = {
            "DeliveryCount": message.delivery_count,
            "EnqueuedTimeUtc": http_date(message.enqueued),
            "MessageId": message.message_id,
            "SequenceNumber": message.sequence,
            "State": "Active",
        }
        headers = {"Content-Type": "application/json; charset=utf-8"}  # real bodies: MC-NBFX binary
        if message.lock_token:  # peek-lock: where to complete or unlock it
            properties.update(LockToken=message.lock_token, LockedUntilUtc=http_date(message.locked_until or self.clock.now()))
            headers["Location"] = f"{self.url}/{sub.topic}/subscriptions/{sub.name}/messages/{message.message_id}/{message.lock_token}"
        return Response(status, message.body, {**headers, "BrokerProperties": json.dumps(properties)})

    def _peek_lock(self, request: Request) -> Response:
        found = self._next_message(request)
        if found is None:
            return Response.empty(204)
        sub, message = found
        with self.lock:
            message.delivery_count += 1
            message.lock_token = str(uuid.UUID(int=self._key_rng.getrandbits(128), version=4))
            message.locked_until = self.clock.now() + timedelta(seconds=self.lock_seconds)
            sub.locked[message.message_id] = message
        return self._message_response(sub, message, 201)

    def _receive_and_delete(self, request: Request) -> Response:
        found = self._next_message(request)
        if found is None:
            return Response.empty(204)
        sub, message = found
        message.delivery_count += 1
        return self._message_response(sub, message, 200)

    def _locked(self, request: Request) -> tuple[BusSubscription, BusMessage]:
        sub = self._bus_subscription(request)
        self._release_expired_locks(sub)
        message = sub.locked.get(request.params["mid"])
        if message is None or message.lock_token != request.params["lock"]:
            raise HttpReply(self._bus_error(404, "The lock supplied is invalid: it expired or the message was already removed."))
        return sub, message

    def _complete(self, request: Request) -> Response:
        with self.lock:
            sub, message = self._locked(request)
            del sub.locked[message.message_id]
        return Response.empty(200)

    def _unlock(self, request: Request) -> Response:
        with self.lock:
            sub, message = self._locked(request)
            del sub.locked[message.message_id]
            message.lock_token = message.locked_until = None
            sub.queue.appendleft(message)
        return Response.empty(200)
