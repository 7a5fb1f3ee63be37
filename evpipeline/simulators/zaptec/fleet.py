"""Zaptec's fleet: private home installations ("Hjemme", "Thuis": Zaptec Go, no authentication) and
public business sites (Zaptec Pro, authentication required) in Norway and the Netherlands, their
chargers' observations, and sessions that start, charge and end; every change goes on the bus."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from evpipeline.simulators.toolkit import ChargingPark, det_uuid, park_connectors, random_place, weighted
from evpipeline.simulators.zaptec.bus import ZaptecBus

EMPTY_CHARGER_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_USER_GROUP_ID = "3c1f7a52-8d4e-4b6a-9f21-6e0d5b7c9a84"

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
# The fleet account's Dutch installations are all in West-Nederland (NUTS-1 NL3), as the CPO's
# operator entry in the reference data states; Norway is one NUTS-1 region anyway.
NUTS1_REGIONS = {"NLD": "NL3"}
HOME_NAMES = {
    "NOR": ["Hjemme", "Hjemme", "Hjemme", "Hytta", "Hjem"],
    "NLD": ["Thuis", "Thuis", "Huis", "Woning"],
}
HOME_CHARGERS = {
    "NOR": ["Garasje", "Carport", "Innkjørsel", "Zaptec Go"],
    "NLD": ["Oprit", "Carport", "Garage", "Zaptec Go"],
}
BUSINESSES = {
    "NOR": ["Circle K", "Rema 1000", "Coop Extra", "Europark", "Scandic", "Thon Hotel", "Storsenter"],
    "NLD": ["Albert Heijn", "Q-Park", "Van der Valk", "Jumbo", "Bedrijvenpark", "Gemeente"],
}
CHARGER_LABEL = {"NOR": "Lader", "NLD": "Laadpunt"}
# What an installation's grid (NetworkType) offers a charger: phases, and the voltage across each
# phase's load. TN is 400 V between lines (230 V to neutral); IT is 230 V between lines and has no
# neutral, so a 3-phase charge there is sqrt(3) x 230 V x current (Zaptec: at most 12.7 kW at 32 A),
# and a single-phase charge takes 230 V between two lines.
GRID_PHASES = {1: 1, 2: 3, 3: 1, 4: 3}
IT_THREE_PHASE = 2
NOMINAL_VOLTS = 230.0

# Observation ids the simulator reports (see the Zaptec state observation reference).
IS_OCPP_CONNECTED, IS_ONLINE, PULSE = -3, -2, -1
TOTAL_CHARGE_POWER, SESSION_ENERGY, OPERATION_MODE, FINAL_STOP_ACTIVE = 513, 553, 710, 718
DISCONNECTED, REQUESTING, CHARGING, FINISHED = 1, 2, 3, 5  # ChargerOperationMode (4 is unused)
LARGE_STATE = 980  # one of the blobs integrations exclude as too large

# A realistic subset of /api/constants besides Countries (the enums the pipeline documents).
OBSERVATION_IDS = {
    "IsOcppConnected": IS_OCPP_CONNECTED,
    "IsOnline": IS_ONLINE,
    "Pulse": PULSE,
    "CommunicationMode": 150,
    "PermanentCableLock": 151,
    "TemperatureInternal5": 201,
    "VoltagePhase1": 501,
    "VoltagePhase2": 502,
    "VoltagePhase3": 503,
    "CurrentPhase1": 507,
    "CurrentPhase2": 508,
    "CurrentPhase3": 509,
    "ChargerMaxCurrent": 510,
    "ChargerMinCurrent": 511,
    "TotalChargePower": TOTAL_CHARGE_POWER,
    "MaxPhases": 520,
    "TotalChargePowerSession": SESSION_ENERGY,
    "SignedMeterValue": 554,
    "ChargeCurrentSet": 708,
    "ChargerOperationMode": OPERATION_MODE,
    "IsEnabled": 711,
    "FinalStopActive": FINAL_STOP_ACTIVE,
    "InstallationId": 800,
    "SmartComputerSoftwareApplicationVersion": 908,
}
ENUMS: dict[str, Any] = {
    "ChargerOperationModes": {
        "Unknown": 0,
        "Disconnected": DISCONNECTED,
        "Connected_Requesting": REQUESTING,
        "Connected_Charging": CHARGING,
        "Connected_Finished": FINISHED,
    },
    "DeviceTypes": {"Unknown": 0, "Smart": 1, "Apollo": 4},
    "InstallationTypes": {"Pro": {"Id": 0, "Name": "Pro"}, "Smart": {"Id": 1, "Name": "Smart"}},
    "InstallationAuthenticationType": {"Native": 0, "WebHooks": 1, "Ocpp": 2},
    "NetworkTypes": {"Unknown": 0, "IT_1_Phase": 1, "IT_3_Phase": 2, "TN_1_Phase": 3, "TN_3_Phase": 4},
    "UserRoles": {"None": 0, "User": 1, "Owner": 2, "Maintainer": 4, "Administrator": 8},
}


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
    volts: float = NOMINAL_VOLTS  # per phase of the charging load (230 V / sqrt(3) on an IT grid's 3 phases)
    states: dict[int, tuple[str | None, datetime]] = field(default_factory=dict)
    meter_kwh: float = 0.0
    extra: list[dict[str, Any]] = field(default_factory=list)  # raw observations injected by tests

    @property
    def id(self) -> str:
        return str(self.body["Id"])

    def value(self, state_id: int) -> str | None:
        return self.states.get(state_id, (None, None))[0]


def rated_w(charger: Charger) -> float:
    """The most a charger can deliver: its phases x the voltage across each x its maximum current."""
    return charger.phases * charger.volts * charger.max_current


class ZaptecFleet(ZaptecBus):
    """Installations, chargers and their observations, and the change process that publishes them."""

    installations: dict[str, Installation]
    chargers: dict[str, Charger]

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

    def _add_installation(
        self, rng: random.Random, country: str, public: bool, size: int, *, time_zone: str | None = None
    ) -> Installation:
        now = self.clock.now()
        place = random_place(rng, country, spread_km=15, region=NUTS1_REGIONS.get(country))
        iid = det_uuid(rng)
        created = now - timedelta(
            days=rng.randint(30, 1500), seconds=rng.randint(0, 86399), milliseconds=rng.randint(0, 999)
        )
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
            "UpdatedOn": dotnet(
                created + timedelta(days=rng.randint(0, 20), milliseconds=rng.randint(0, 999))
            ),
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
            installation.circuits.append(
                {
                    "Id": det_uuid(rng),
                    "Name": f"{circuit_word} {c + 1}",
                    "MaxCurrent": rng.choice([32.0, 40.0, 63.0]) if public else max_current,
                    "IsActive": True,
                }
            )
        self.installations[iid] = installation
        for n in range(size):
            circuit = installation.circuits[n % len(installation.circuits)]
            self._add_charger(rng, installation, circuit, n, created)
        return installation

    def _add_charger(
        self,
        rng: random.Random,
        installation: Installation,
        circuit: dict[str, Any],
        n: int,
        created: datetime,
    ) -> Charger:
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
            "CreatedOnDate": dotnet(
                created + timedelta(minutes=rng.randint(5, 600), milliseconds=rng.randint(0, 999))
            ),
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
        # MaxPhases (520): most chargers are set up for every phase the grid brings; never more.
        wanted = 3 if rng.random() < 0.85 else 1
        network = int(installation.body["NetworkType"])
        phases = min(wanted, GRID_PHASES.get(network, wanted))
        volts = NOMINAL_VOLTS / math.sqrt(3) if network == IT_THREE_PHASE and phases == 3 else NOMINAL_VOLTS
        charger = Charger(
            body,
            installation.body["Id"],
            max_current,
            phases,
            volts,
            meter_kwh=round(rng.uniform(50, 9000), 3),
        )
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
            150: rng.choice(["Wifi", "Wifi", "LTE"])
            if not public
            else rng.choice(["LTE", "Ethernet", "Wifi"]),
            151: "0",
            201: num(rng.uniform(8, 30), 1),
            501: num(volts[0]),
            502: num(volts[1]),
            503: num(volts[2]),
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
        charger.states[554] = (
            self._ocmf(charger, charger.states[OPERATION_MODE][1]),
            charger.states[OPERATION_MODE][1],
        )

    def _ocmf(self, charger: Charger, when: datetime) -> str:
        reading = {
            "TM": when.strftime("%Y-%m-%dT%H:%M:%S,000+00:00") + " R",
            "RV": round(charger.meter_kwh, 4),
            "RI": "1-0:1.8.0",
            "RU": "kWh",
            "RT": "AC",
            "ST": "G",
        }
        return "OCMF|" + json.dumps(
            {
                "FV": "1.0",
                "GI": "ZAPTEC",
                "GS": charger.body["DeviceId"],
                "GV": "0.0.4.0",
                "PG": "F1",
                "RD": [reading],
            },
            separators=(",", ":"),
        )

    def _power_w(self, charger: Charger, rng: random.Random) -> float:
        return rated_w(charger) * rng.uniform(0.55, 1.0)

    def _set(
        self, charger: Charger, state_id: int, value: str | None, when: datetime, *, publish: bool = True
    ) -> bool:
        """Record an observation; a changed value is published to the message subscription."""
        if charger.value(state_id) == value and state_id in charger.states:
            return False
        charger.states[state_id] = (value, when)
        if publish:
            self._publish(charger, state_id, value, when)
        return True

    def _apply_mode(
        self,
        charger: Charger,
        mode: int,
        when: datetime,
        *,
        publish: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or self.rng
        self._set(charger, OPERATION_MODE, str(mode), when, publish=publish)
        charger.body["OperatingMode"] = mode
        power = self._power_w(charger, rng) if mode == CHARGING else 0.0
        self._set(charger, TOTAL_CHARGE_POWER, num(power), when, publish=publish)
        amps = power / (charger.volts * charger.phases) if power else 0.0
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
            when = (
                now - timedelta(seconds=step * (steps - 1 - i)) - timedelta(milliseconds=rng.randint(0, 999))
            )
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

    def charging_parks(self) -> list[ChargingPark]:
        """Public business sites only (home chargers are private and never on a map): Type 2 sockets."""
        with self.lock:
            parks = []
            for installation in self.installations.values():
                if not installation.public or not installation.charger_ids:
                    continue
                pairs = []
                for cid in installation.charger_ids:
                    charger = self.chargers[cid]
                    pairs.append(("IEC62196Type2Outlet", float(round(rated_w(charger) / 1000))))
                body = installation.body
                parks.append(
                    ChargingPark(
                        body["Id"],
                        body["Name"],
                        body["Latitude"],
                        body["Longitude"],
                        installation.country,
                        park_connectors(pairs),
                    )
                )
            return parks

    def _publish(self, charger: Charger, state_id: int, value: str | None, when: datetime) -> None:
        body = {
            "ChargerId": charger.id,
            "DeviceId": charger.body["DeviceId"],
            "DeviceType": charger.body["DeviceType"],
            "StateId": state_id,
            "Timestamp": dotnet(when),
            "ValueAsString": value,
        }
        self.publish_raw(body)
