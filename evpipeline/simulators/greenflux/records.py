"""What GreenFlux's objects look like: CPOs, tariffs, and every Location, Charge Station and EVSE
generated on demand from (seed, index), so a fleet of a million EVSEs costs a few numpy arrays."""

from __future__ import annotations

import bisect
import itertools
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from evpipeline.simulators.toolkit import TIME_ZONES, SimServer, random_place

EVSE_NUMBER_BASE = 1_000_000  # evse_id E-numbers: E1000000 + global EVSE index


@dataclass(frozen=True)
class Cpo:
    cpo_id: str  # country code + party id, as GreenFlux's `cpo_id`
    name: str
    country: str  # ISO 3166 alpha-3 of its locations
    weight: float
    website: str
    region: str | None = (
        None  # NUTS-1 region all its locations are in (toolkit NUTS1_CITIES); None: anywhere in `country`
    )

    @property
    def country_code(self) -> str:
        return self.cpo_id[:2]

    @property
    def party_id(self) -> str:
        return self.cpo_id[2:]


# Mostly Dutch CPOs, some Belgian: the NDW export takes the Dutch public locations. Each Dutch CPO
# operates in one NUTS-1 region, which its operator entry in the reference data states (AFIR).
CPOS = (
    Cpo("NLALF", "Alfa Laadpunten B.V.", "NLD", 30, "https://www.alfa-laadpunten.example", "NL3"),
    Cpo("NLEVB", "EV Boulevard", "NLD", 24, "https://evboulevard.example", "NL4"),
    Cpo("NLGFX", "GreenFlux Assets", "NLD", 14, "https://www.greenflux.example", "NL2"),
    Cpo("NLWTP", "Wattpunt Laden", "NLD", 16, "https://wattpunt.example", "NL1"),
    Cpo("BEBEC", "Blue Energy Corner", "BEL", 11, "https://blue-energy-corner.example"),
    Cpo("BEELN", "Elektron Laadnet", "BEL", 5, "https://elektron.example"),
)
TARIFFS_PER_CPO = 4  # AC standard, AC reduced, DC fast, free

LOCATION_TYPES = [
    ("ON_STREET", 45),
    ("PARKING_LOT", 25),
    ("PARKING_GARAGE", 12),
    ("UNDERGROUND_GARAGE", 8),
    ("OTHER", 7),
    ("UNKNOWN", 3),
]
FACILITIES = [
    "HOTEL",
    "RESTAURANT",
    "CAFE",
    "MALL",
    "SUPERMARKET",
    "SPORT",
    "RECREATION_AREA",
    "NATURE",
    "MUSEUM",
    "BUS_STOP",
    "TAXI_STAND",
    "TRAIN_STATION",
    "AIRPORT",
    "CARPOOL_PARKING",
    "FUEL_STATION",
    "WIFI",
]
STATUSES = [
    ("AVAILABLE", 58),
    ("CHARGING", 27),
    ("BLOCKED", 2),
    ("INOPERATIVE", 3),
    ("OUTOFORDER", 3),
    ("RESERVED", 1),
    ("UNKNOWN", 5),
    ("PLANNED", 1),
]
AC_VENDORS = [
    ("Alfen BV", "NG920-60503", "6.3.0-4150", "Inepro PRO380"),
    ("EVBox", "BusinessLine", "4.12.1", "Eastron SDM630"),
    ("Ecotap", "EVC 3.0", "2.1.7", "Inepro PRO380"),
    ("Alfen BV", "NG910-60023", "6.1.2-4055", "Eastron SDM72"),
]
DC_VENDORS = [
    ("ABB", "Terra 54 CJG", "1.8.27", "Lem DCBM"),
    ("Kempower", "S-Series", "1.33.2", "Isabellenhuette IEM-DCC"),
    ("Alpitronic", "HYC300", "2.4.1", "Lem DCBM 400"),
]
# (power_type, voltage, amperage, nominal W) per AC rating; DC ratings in kW.
AC_RATINGS = [
    (("AC_3_PHASE", 230, 16, 11000), 35),
    (("AC_3_PHASE", 230, 32, 22000), 55),
    (("AC_1_PHASE", 230, 32, 7400), 10),
]
DC_RATINGS = [(50, 30), (150, 45), (300, 25)]
TOMTOM_TYPES = {
    ("IEC_62196_T2", "SOCKET"): "IEC62196Type2Outlet",
    ("IEC_62196_T2", "CABLE"): "IEC62196Type2CableAttached",
    ("IEC_62196_T2_COMBO", "CABLE"): "IEC62196Type2CCS",
    ("IEC_62196_T2_COMBO", "SOCKET"): "IEC62196Type2CCS",
    ("CHADEMO", "CABLE"): "Chademo",
    ("CHADEMO", "SOCKET"): "Chademo",
    ("IEC_62196_T1", "CABLE"): "IEC62196Type1",
    ("IEC_62196_T1", "SOCKET"): "IEC62196Type1",
    ("IEC_62196_T1_COMBO", "CABLE"): "IEC62196Type1CCS",
    ("IEC_62196_T1_COMBO", "SOCKET"): "IEC62196Type1CCS",
}


def _table(pairs: Sequence[tuple[Any, float]]) -> tuple[list[Any], list[float]]:
    """Values and cumulative weights, built once: generating a million objects calls `_pick` a lot."""
    return [v for v, _ in pairs], list(itertools.accumulate(w for _, w in pairs))


def _pick(rng: random.Random, table: tuple[list[Any], list[float]]) -> Any:
    values, cumulative = table
    return values[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


ACCESS = _table([("PUBLIC", 88), ("RESTRICTED", 5), ("PRIVATE", 7)])
FACILITY_COUNT = _table([(0, 50), (1, 30), (2, 20)])
OPENING = _table([("24/7", 80), ("hours", 14), (None, 6)])  # None: no opening_times (a realistic gap)
MIX = _table([("green", 60), ("grey", 32), (None, 8)])  # None: no energy_mix
TYPE_TABLE = _table(LOCATION_TYPES)
STATUS_TABLE = _table(STATUSES)
PROTOCOLS = _table([("Ocpp16", 85), ("Ocpp201", 10), ("Ocpp15", 5)])
AC_TABLE, DC_TABLE = _table(AC_RATINGS), _table(DC_RATINGS)
AC_TARIFF = _table([(0, 80), (1, 10), (3, 5), (None, 5)])  # index into the CPO's tariffs; None: no tariff_id


def iso(seconds: int | float) -> str:
    """OCPI DateTime, whole seconds, `Z`."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(seconds: int) -> str:
    stamp = datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H%%3A%M%%3A%S.000Z")
    return f"W/\"datetime'{stamp}'\""


def parse_time(value: str) -> int:
    """ISO-8601 (`Z`, offset or naive UTC) -> epoch seconds, rounded up so `>=` stays exact."""
    when = datetime.fromisoformat(value.strip().replace(" ", "+"))
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return math.ceil(when.timestamp())


@dataclass(frozen=True)
class _Ctx:
    """What a location's charge stations and EVSEs inherit from it when generated."""

    cpo: Cpo
    lat: float
    lon: float
    name: str
    public: bool
    parking: bool  # False: this location's EVSEs carry no parking restrictions (data gap)
    ts: int


class _Column:
    """A growable numpy column (the fleet grows while the simulator runs)."""

    def __init__(self, values: np.ndarray) -> None:
        self._data = values
        self.size = len(values)

    def append(self, values: np.ndarray | list[Any]) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        if self.size + len(values) > len(self._data):
            grown = np.empty(max(2 * len(self._data), self.size + len(values), 16), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : self.size + len(values)] = values
        self.size += len(values)

    @property
    def view(self) -> np.ndarray:
        return self._data[: self.size]

    def __getitem__(self, index: Any) -> Any:
        return self.view[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self.view[index] = value


class GreenFluxRecords(SimServer):
    """Ids, tariffs and the generated (unchanged) body of every object; the fleet layer above keeps
    the columns these read and the objects that changed since."""

    tariffs: dict[str, dict[str, Any]]
    _id_mask: int
    _loc_cpo: _Column
    _loc_first_cs: _Column
    _loc_created: _Column
    _loc_base_ts: _Column
    _cs_loc: _Column
    _cs_base_loc: _Column
    _cs_dc: _Column
    _evse_cs: _Column

    @property
    def n_locations(self) -> int:
        return self._loc_cpo.size

    @property
    def n_charge_stations(self) -> int:
        return self._cs_loc.size

    @property
    def n_evses(self) -> int:
        return self._evse_cs.size

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _build_tariffs(self) -> None:
        self.tariffs: dict[str, dict[str, Any]] = {}
        start = self._now() - 400 * 86400
        for c, cpo in enumerate(CPOS):
            ids = self._tariff_ids(c)
            ac, reduced, dc = (0.39, 0.29, 0.69) if cpo.country == "NLD" else (0.45, 0.35, 0.74)
            plans = [
                (ids[0], [self._element("ENERGY", ac)], f"€{ac:.2f} per kWh"),
                (ids[1], [self._element("ENERGY", reduced)], f"€{reduced:.2f} per kWh (bewoners)"),
                (
                    ids[2],
                    [
                        self._element("ENERGY", dc),
                        {
                            "price_components": [{"type": "TIME", "price": 6.0, "step_size": 60}],
                            "restrictions": {"min_duration": 2700},
                        },
                    ],
                    f"€{dc:.2f} per kWh, €6.00 per hour after 45 minutes",
                ),
                (ids[3], [self._element("FLAT", 0.0)], "Gratis laden"),
            ]
            for k, (tariff_id, elements, text) in enumerate(plans):
                self.tariffs[tariff_id] = {
                    "id": tariff_id,
                    "currency": "EUR",
                    "tariff_alt_text": [{"language": "nl", "text": text}],
                    "tariff_alt_url": f"{cpo.website}/tarieven",
                    "elements": elements,
                    "energy_mix": None,
                    "cpo_id": cpo.cpo_id,
                    "last_updated": iso(start + c * 3600 + k * 60),
                }

    @staticmethod
    def _element(kind: str, price: float) -> dict[str, Any]:
        return {"price_components": [{"type": kind, "price": price, "step_size": 1}], "restrictions": None}

    @staticmethod
    def _tariff_ids(cpo_index: int) -> list[str]:
        return [str(11 + TARIFFS_PER_CPO * cpo_index + k) for k in range(TARIFFS_PER_CPO)]

    # -- deterministic objects from (seed, index) ------------------------------------------------
    def _rng(self, kind: str, index: int) -> random.Random:
        return random.Random(f"greenflux:{self.seed}:{kind}{index}")

    def location_id(self, i: int) -> str:
        """Location i's UUID; its last 8 hex digits encode i, so ids map back without a lookup table."""
        high = self._rng("id", i).getrandbits(96)
        return str(uuid.UUID(int=(high << 32) | (i ^ self._id_mask), version=4))

    def location_index(self, location_id: str) -> int | None:
        try:
            i = int(location_id[-8:], 16) ^ self._id_mask
        except ValueError:
            return None
        return i if 0 <= i < self.n_locations and self.location_id(i) == location_id else None

    @staticmethod
    def charge_station_id(j: int) -> str:
        return f"GFX-CS-{j:07d}"

    def charge_station_index(self, cs_id: str) -> int | None:
        try:
            j = int(cs_id.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return None
        return j if 0 <= j < self.n_charge_stations and cs_id == self.charge_station_id(j) else None

    def evse_index(self, uid: str) -> int | None:
        try:
            g = int(uid.rsplit("E", 1)[1]) - EVSE_NUMBER_BASE
        except (IndexError, ValueError):
            return None
        return g if 0 <= g < self.n_evses else None

    def _loc_base(self, i: int) -> tuple[dict[str, Any], _Ctx]:
        rng = self._rng("L", i)
        cpo = CPOS[int(self._loc_cpo[i])]
        place = random_place(rng, cpo.country, spread_km=8, region=cpo.region)
        access = _pick(rng, ACCESS)
        name = f"{place.city} {place.street}" + rng.choice(["", "", "", " P+R", " Parkeergarage", " Centrum"])
        facilities = sorted(rng.sample(FACILITIES, k=_pick(rng, FACILITY_COUNT)))
        opening = _pick(rng, OPENING)
        mix = _pick(rng, MIX)
        city_code = place.city[:3].upper()
        ctx = _Ctx(
            cpo,
            place.latitude,
            place.longitude,
            name,
            access == "PUBLIC",
            parking=rng.random() >= 0.07,
            ts=int(self._loc_base_ts[i]),
        )
        body: dict[str, Any] = {
            "id": self.location_id(i),
            "type": _pick(rng, TYPE_TABLE),
            "publish": access != "PRIVATE",
            "access_type": access,
            "name": name,
            "address": place.address,
            "address_line_2": None,
            "city": place.city,
            "postal_code": place.postal_code,
            "country": cpo.country,
            "coordinates": {"latitude": f"{place.latitude:.6f}", "longitude": f"{place.longitude:.6f}"},
            "evses": [],
            "directions": [
                {
                    "language": "nl",
                    "text": rng.choice(
                        ["Ingang via de achterzijde", "Naast de fietsenstalling", "Niveau -1, vak 12-16"]
                    ),
                }
            ]
            if rng.random() < 0.2
            else [],
            "facilities": facilities,
            "operator": {
                "name": cpo.name,
                "website": cpo.website,
                "logo": None,
                "phone_number": "+31 85 000 1234" if cpo.country == "NLD" else "+32 2 000 12 34",
            },
            "suboperator": None,
            "owner": {"name": f"Gemeente {place.city}", "website": None, "logo": None, "phone_number": None}
            if rng.random() < 0.2
            else None,
            "auth_rules": self._auth_rules(rng, access),
            "time_zone": TIME_ZONES[cpo.country],
            "opening_times": self._opening_times(opening),
            "charging_when_closed": opening != "hours" or rng.random() < 0.5,
            "energy_mix": self._energy_mix(cpo, mix),
            "custom_groups": [{"name": f"Gemeente {place.city}", "external_id": f"MUN-{city_code}"}]
            if rng.random() < 0.35
            else [],
            "maintenance_info": rng.choice(
                [None, None, None, "Jaarlijkse inspectie gepland", "Kabelhouder vervangen"]
            ),
            "remarks": rng.choice(
                [None, None, None, "Vak 3 vaak bezet door niet-EV", "Slagboom: bel de parkeerwachter"]
            ),
            "payment_provider": None,
            "wallet_id": None,
            "cpo_id": cpo.cpo_id,
            "cpo_customer_external_id": f"CUST-{rng.randint(1, 9999):04d}",
            "etag": None,
            "created_by": rng.choice(["portal@greenflux.example", "api@cpo.example"]),
            "modified_by": rng.choice(["portal@greenflux.example", "api@cpo.example"]),
            "customised_fields": [{"type": "SiteCode", "value": f"{city_code}-{i:05d}"}]
            if rng.random() < 0.5
            else [],
            "created": None,
            "modified": None,
            "last_updated": None,
        }
        return body, ctx

    @staticmethod
    def _auth_rules(rng: random.Random, access: str) -> list[dict[str, str]]:
        if access == "PRIVATE":
            return [{"type": "HomeToken", "value": f"NL-GFX-C{rng.randint(10_000_000, 99_999_999)}"}]
        if access == "RESTRICTED" or rng.random() < 0.05:
            return [
                {"type": "ClosedGroups", "value": rng.choice(["staff-cards", "fleet-cards"])},
                {"type": "CustomerExternalId", "value": f"CUST-{rng.randint(1, 9999):04d}"},
            ]
        return []

    @staticmethod
    def _opening_times(kind: str | None) -> dict[str, Any] | None:
        if kind is None:
            return None  # a realistic gap: not every CPO fills it in
        if kind == "24/7":
            return {
                "regular_hours": [],
                "twentyfourseven": True,
                "exceptional_openings": [],
                "exceptional_closings": [],
            }
        hours = [{"weekday": d, "period_begin": "07:00", "period_end": "22:00"} for d in range(1, 7)]
        hours.append({"weekday": 7, "period_begin": "09:00", "period_end": "18:00"})
        return {
            "regular_hours": hours,
            "twentyfourseven": False,
            "exceptional_openings": [],
            "exceptional_closings": [],
        }

    @staticmethod
    def _energy_mix(cpo: Cpo, kind: str | None) -> dict[str, Any] | None:
        if kind is None:
            return None
        party = cpo.party_id.lower()
        if kind == "green":
            return {
                "energy_mix_profile_id": f"emp-{party}-green",
                "is_green_energy": True,
                "energy_sources": [
                    {"source": "WIND", "percentage": 70.0},
                    {"source": "SOLAR", "percentage": 30.0},
                ],
                "environ_impact": [{"source": "CARBON_DIOXIDE", "amount": 0.0}],
                "supplier_name": "Eneco" if cpo.country == "NLD" else "Engie",
                "energy_product_name": "HollandseWind",
            }
        return {
            "energy_mix_profile_id": f"emp-{party}-mix",
            "is_green_energy": False,
            "energy_sources": [
                {"source": "GENERAL_FOSSIL", "percentage": 45.0},
                {"source": "GAS", "percentage": 25.0},
                {"source": "NUCLEAR", "percentage": 5.0},
                {"source": "GENERAL_GREEN", "percentage": 25.0},
            ],
            "environ_impact": [
                {"source": "CARBON_DIOXIDE", "amount": 320.0},
                {"source": "NUCLEAR_WASTE", "amount": 0.0006},
            ],
            "supplier_name": "Vattenfall",
            "energy_product_name": "Stroom Mix",
        }

    def _cs_base(self, j: int, ctx: _Ctx, i: int) -> dict[str, Any]:
        rng = self._rng("C", j)
        dc = bool(self._cs_dc[j])
        vendor, model, firmware, meter = rng.choice(DC_VENDORS if dc else AC_VENDORS)
        tariffs = self._tariff_ids(CPOS.index(ctx.cpo))
        deprecated = rng.random() < 0.03
        rating = _pick(rng, DC_TABLE if dc else AC_TABLE)
        position = j - int(self._loc_first_cs[int(self._cs_base_loc[j])]) + 1
        serial = f"{vendor[:3].upper()}{rng.randint(1_000_000, 9_999_999)}"
        return {
            "charge_station_id": self.charge_station_id(j),
            "location_id": None,
            "name": f"{ctx.name} #{position}",
            "deploy_state": "Deprecated" if deprecated else "Production",
            "installation_date": iso(int(self._loc_created[i]) - 86400 * rng.randint(0, 20))[:10]
            + "T00:00:00Z",
            "default_charge_station_tariff_id": tariffs[2] if dc else tariffs[0],
            "default_charge_station_reimbursement_tariff_id": None if ctx.public else tariffs[1],
            "default_charge_station_directions": [],
            "default_charge_station_floor_level": rng.choice([None, "0", "0", "-1"]),
            "driver_id": None,
            "customer_id": None if ctx.public else f"CUST-{rng.randint(1, 9999):04d}",
            "evses": [],
            "maintenance_info": None,
            "remarks": rng.choice([None, None, "RFID-lezer vervangen 2025-11", "Display krast"]),
            "contactless_terminal_serial_number": f"PAX{rng.randint(100000, 999999)}" if dc else None,
            "contactless_terminal_auth_amount": 50.0 if dc else None,
            "status_schedule": [],
            "auth_rules": [],
            "contactless_type": "Payter" if dc else None,
            "tap_to_stop": dc,
            "stop_on_parking": False,
            "grid_connection_id": f"EAN-{rng.randint(10**17, 10**18 - 1)}",
            "dynamic_time_based_tariffs": False,
            "time_of_use_tariffs": rng.random() < 0.1,
            "exclude_vat": False,
            "charger_type": "Public" if ctx.public else rng.choice(["Business", "Home"]),
            "charge_station_template_id": f"tmpl-{vendor.split()[0].lower()}-{model.split()[0].lower()}",
            "etag": None,
            "created_by": "portal@greenflux.example",
            "modified_by": rng.choice(["portal@greenflux.example", "installer-app@greenflux.example"]),
            "status": None,
            "charging_speed": ("Rapid" if rating >= 150 else "Fast")
            if dc
            else ("Fast" if rating[2] == 32 and rating[0] == "AC_3_PHASE" else "Slow"),
            "created": None,
            "modified": None,
            "heartbeat_interval": 900,
            "charge_point_model": model,
            "charge_point_vendor": vendor,
            "charge_point_serial_number": serial,
            "charge_box_serial_number": None if rng.random() < 0.7 else f"CB{serial}",
            "client_ip_address": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}",
            "firmware_version": firmware,
            "iccid": f"8931{rng.randint(10**14, 10**15 - 1)}",
            "imsi": f"2040{rng.randint(10**10, 10**11 - 1)}",
            "meter_serial_number": f"MTR-{rng.randint(100000, 999999)}",
            "meter_type": meter,
            "remote_manageable": True,
            "connectivity_status": "Online" if rng.random() < 0.95 else "Offline",
            "protocol_version": _pick(rng, PROTOCOLS),
            "endpoint": f"wss://ocpp.greenflux.example/ocpp/{self.charge_station_id(j)}",
            # Generation hints, stripped before serving:
            "_rating": rating,
            "_deprecated": deprecated,
        }

    def _evse_base(self, g: int, j: int, position: int, cs: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
        rng = self._rng("E", g)
        cpo = ctx.cpo
        number = EVSE_NUMBER_BASE + g
        evse_id = f"{cpo.country_code}*{cpo.party_id}*E{number:07d}"
        stamp = iso(ctx.ts)
        tariffs = self._tariff_ids(CPOS.index(cpo))
        rating = cs["_rating"]
        if isinstance(rating, tuple):  # AC
            power_type, voltage, amperage, watts = rating
            cable = rng.random() < 0.15
            standard = "IEC_62196_T1" if rng.random() < 0.02 else "IEC_62196_T2"
            choice = _pick(rng, AC_TARIFF)
            tariff = None if choice is None else tariffs[choice]
            plugs = [
                (
                    standard,
                    "CABLE" if cable or standard == "IEC_62196_T1" else "SOCKET",
                    power_type,
                    voltage,
                    amperage,
                    watts,
                    tariff,
                )
            ]
        else:
            kw = int(rating)
            tariff = tariffs[2] if rng.random() >= 0.05 else None
            combo = "IEC_62196_T1_COMBO" if rng.random() < 0.01 else "IEC_62196_T2_COMBO"
            plugs = [
                (
                    combo,
                    "CABLE",
                    "DC",
                    920 if kw > 50 else 500,
                    int(kw * 1000 / (920 if kw > 50 else 500)),
                    kw * 1000,
                    tariff,
                )
            ]
            if kw == 50 and rng.random() < 0.6:
                plugs.append(("CHADEMO", "CABLE", "DC", 500, 125, 50000, tariff))
        restrictions = (["EV_ONLY"] + (["DISABLED"] if rng.random() < 0.05 else [])) if ctx.parking else []
        capabilities = ["RFID_READER", "REMOTE_START_STOP_CAPABLE"] + (
            ["CREDIT_CARD_PAYABLE"] if not isinstance(rating, tuple) else []
        )
        return {
            "uid": evse_id.replace("*", "-"),
            "evse_id": evse_id,
            "status": "REMOVED" if cs["_deprecated"] else _pick(rng, STATUS_TABLE),
            "status_schedule": [],
            "capabilities": capabilities,
            "connectors": [
                {
                    "id": str(n + 1),
                    "standard": std,
                    "format": fmt,
                    "power_type": pt,
                    "voltage": v,
                    "amperage": a,
                    "max_electric_power": p,
                    "tariff_id": t,
                    "terms_and_conditions": None,
                    "last_updated": stamp,
                    "reimbursement_tariff_id": cs["default_charge_station_reimbursement_tariff_id"],
                }
                for n, (std, fmt, pt, v, a, p, t) in enumerate(plugs)
            ],
            "floor_level": cs["default_charge_station_floor_level"],
            "coordinates": {
                "latitude": f"{ctx.lat + rng.uniform(-5e-5, 5e-5):.6f}",
                "longitude": f"{ctx.lon + rng.uniform(-5e-5, 5e-5):.6f}",
            },
            "physical_reference": f"{position}" if rng.random() < 0.8 else None,
            "directions": [],
            "parking_restrictions": restrictions,
            "images": [],
            "last_updated": stamp,
            "evse_sequence_number": position,
        }
