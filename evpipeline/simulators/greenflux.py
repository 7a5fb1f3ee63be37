"""GreenFlux Charge-Location Management (CLM) API simulator: Locations v2, Charge Stations, tariffs.

Faithful to docs/sources.md and the shared API notes: `Authorization: Token …` (401 without one,
403 for a wrong one), the OCPI envelope `{data, status_code, status_message, timestamp}` (or a
bare array, `bare_lists=True`, as one SDK documents), `offset`/`limit` paging in creation order
with OCPI's `X-Limit`/`X-Total-Count`/`Link` headers, `date_from` (inclusive) and `date_to`
(exclusive) on last-modified, Location v2 objects with GreenFlux's own fields, Charge Stations
with their EVSEs, and an OCPI 2.1.1 tariffs list the connectors' `tariff_id`s point at.

Behaviour the docs describe, reproduced:
- An EVSE change (status included) bumps the EVSE's and its Location's `last_updated`, so a
  Locations `date_from` query returns it; the Location's own `modified` only moves when the
  Location object itself is edited (`exclude_evses_modified=true` filters on it). A Charge
  Station's `modified` ignores EVSE status changes (the Charge Stations page).
- A charge station moved to another location leaves its EVSEs in the old location with
  `status: REMOVED` and unchanged timestamps; they reappear, live, in the new one.
- Errors and rate limiting come back as HTTP 200 with a 2xxx/3xxx `status_code` and a message,
  or as a real HTTP 429 with Retry-After (`rate_limit_style`).

Scale: every object is generated on demand from (seed, index), so a fleet of a million EVSEs
costs a few numpy arrays; only objects that changed are kept as dicts.
"""

from __future__ import annotations

import base64
import bisect
import copy
import hmac
import itertools
import json
import math
import random
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import numpy as np

from evpipeline.simulators.toolkit import (
    TIME_ZONES,
    ChargingPark,
    HttpReply,
    Request,
    Response,
    ServerRateLimit,
    SimClock,
    SimServer,
    random_place,
    weighted,
)

API = "/api/2.0"
TARIFFS_PATH = "/api/1.0/tariffs"
EVSE_NUMBER_BASE = 1_000_000  # evse_id E-numbers: E1000000 + global EVSE index


@dataclass(frozen=True)
class Cpo:
    cpo_id: str  # country code + party id, as GreenFlux's `cpo_id`
    name: str
    country: str  # ISO 3166 alpha-3 of its locations
    weight: float
    website: str

    @property
    def country_code(self) -> str:
        return self.cpo_id[:2]

    @property
    def party_id(self) -> str:
        return self.cpo_id[2:]


# Mostly Dutch CPOs, some Belgian: the NDW export takes the Dutch public locations.
CPOS = (
    Cpo("NLALF", "Alfa Laadpunten B.V.", "NLD", 30, "https://www.alfa-laadpunten.example"),
    Cpo("NLEVB", "EV Boulevard", "NLD", 24, "https://evboulevard.example"),
    Cpo("NLGFX", "GreenFlux Assets", "NLD", 14, "https://www.greenflux.example"),
    Cpo("NLWTP", "Wattpunt Laden", "NLD", 16, "https://wattpunt.example"),
    Cpo("BEBEC", "Blue Energy Corner", "BEL", 11, "https://blue-energy-corner.example"),
    Cpo("BEELN", "Elektron Laadnet", "BEL", 5, "https://elektron.example"),
)
TARIFFS_PER_CPO = 4  # AC standard, AC reduced, DC fast, free

LOCATION_TYPES = [("ON_STREET", 45), ("PARKING_LOT", 25), ("PARKING_GARAGE", 12), ("UNDERGROUND_GARAGE", 8), ("OTHER", 7), ("UNKNOWN", 3)]
FACILITIES = ["HOTEL", "RESTAURANT", "CAFE", "MALL", "SUPERMARKET", "SPORT", "RECREATION_AREA", "NATURE", "MUSEUM",
              "BUS_STOP", "TAXI_STAND", "TRAIN_STATION", "AIRPORT", "CARPOOL_PARKING", "FUEL_STATION", "WIFI"]
STATUSES = [("AVAILABLE", 58), ("CHARGING", 27), ("BLOCKED", 2), ("INOPERATIVE", 3), ("OUTOFORDER", 3),
            ("RESERVED", 1), ("UNKNOWN", 5), ("PLANNED", 1)]
AC_VENDORS = [("Alfen BV", "NG920-60503", "6.3.0-4150", "Inepro PRO380"), ("EVBox", "BusinessLine", "4.12.1", "Eastron SDM630"),
              ("Ecotap", "EVC 3.0", "2.1.7", "Inepro PRO380"), ("Alfen BV", "NG910-60023", "6.1.2-4055", "Eastron SDM72")]
DC_VENDORS = [("ABB", "Terra 54 CJG", "1.8.27", "Lem DCBM"), ("Kempower", "S-Series", "1.33.2", "Isabellenhuette IEM-DCC"),
              ("Alpitronic", "HYC300", "2.4.1", "Lem DCBM 400")]
# (power_type, voltage, amperage, nominal W) per AC rating; DC ratings in kW.
AC_RATINGS = [(("AC_3_PHASE", 230, 16, 11000), 35), (("AC_3_PHASE", 230, 32, 22000), 55), (("AC_1_PHASE", 230, 32, 7400), 10)]
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


def _table(pairs: list[tuple[Any, float]]) -> tuple[list[Any], list[float]]:
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


class GreenFluxSimulator(SimServer):
    """The GreenFlux CLM API over a lazily generated, changing fleet of Dutch and Belgian CPOs."""

    name = "greenflux"
    TIME_FIELDS = frozenset({"created", "modified", "last_updated", "etag"})

    def __init__(
        self,
        *,
        scale: float = 1.0,
        token: str = "sim-greenflux-token",
        max_limit: int = 1000,
        default_limit: int = 100,
        bare_lists: bool = False,
        rate_limit_style: str = "alternate",
        requests_per_second: float | None = None,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.token = token
        self.max_limit, self.default_limit = max_limit, default_limit
        self.bare_lists = bare_lists  # CLM lists as a bare JSON array instead of the envelope
        self.rate_limit_style = rate_limit_style  # "http" (429), "body" (HTTP 200 + status_code) or "alternate"
        self._limit = ServerRateLimit(requests_per_second, max(1.0, requests_per_second)) if requests_per_second else None
        self._throttled = 0
        self._ocpi_script: deque[tuple[int, str, str | None]] = deque()
        self._id_mask = random.Random(f"greenflux:{seed}:ids").getrandbits(32)
        # Mutated objects only; everything else is regenerated from (seed, index) on each request.
        self._loc_over: dict[int, dict[str, Any]] = {}
        self._cs_over: dict[int, dict[str, Any]] = {}
        self._evse_over: dict[int, dict[str, Any]] = {}
        self._moved_in: dict[int, list[int]] = {}
        self._removed: dict[int, dict[str, dict[str, Any]]] = {}
        self._loc_pinned: dict[int, dict[str, Any]] = {}
        self._build_fleet(max(1, int(round(300 * scale))))
        self._build_tariffs()

        self.route("GET", f"{API}/Locations", self._list_locations)
        self.route("GET", f"{API}/Locations/(?P<id>[^/]+)", self._get_location)
        self.route("GET", f"{API}/ChargeStations", self._list_charge_stations)
        self.route("GET", f"{API}/ChargeStations/(?P<id>[^/]+)", self._get_charge_station)
        self.route("GET", TARIFFS_PATH, self._list_tariffs)

    # -- fleet structure (numpy, per index) ----------------------------------------------------
    def _build_fleet(self, n: int) -> None:
        rng = np.random.default_rng([self.seed, 2])
        now = self._now()
        weights = np.array([c.weight for c in CPOS], dtype=float)
        cpo = rng.choice(len(CPOS), size=n, p=weights / weights.sum()).astype(np.int16)
        n_cs = rng.choice([1, 2, 3, 4], size=n, p=[0.45, 0.35, 0.12, 0.08]).astype(np.int64)
        created = now - rng.integers(60, 2200, size=n) * 86400 - rng.integers(0, 86400, size=n)
        # Last edited somewhere between creation and an hour ago.
        modified = created + (rng.random(n) * (now - 3600 - created)).astype(np.int64)
        self._loc_cpo = _Column(cpo)
        self._loc_ncs = _Column(n_cs)
        self._loc_first_cs = _Column(np.concatenate([[0], np.cumsum(n_cs)[:-1]]).astype(np.int64))
        self._loc_created = _Column(created.astype(np.int64))
        self._loc_modified = _Column(modified.astype(np.int64))  # the Location object's own edits
        self._loc_updated = _Column(modified.astype(np.int64))  # incl. its EVSEs (date_from filters on this)
        self._loc_base_ts = _Column(modified.astype(np.int64))  # when the generated state was last edited
        total_cs = int(n_cs.sum())
        base_loc = np.repeat(np.arange(n, dtype=np.int64), n_cs)
        dc = rng.random(total_cs) < 0.2
        n_evse = np.where(dc, 1, rng.choice([1, 2], size=total_cs, p=[0.3, 0.7])).astype(np.int64)
        self._cs_base_loc = _Column(base_loc)
        self._cs_loc = _Column(base_loc.copy())  # where each charge station is now
        self._cs_dc = _Column(dc)
        self._cs_nevse = _Column(n_evse)
        self._cs_first_evse = _Column(np.concatenate([[0], np.cumsum(n_evse)[:-1]]).astype(np.int64))
        self._cs_modified = _Column(modified[base_loc].astype(np.int64))
        self._evse_cs = _Column(np.repeat(np.arange(total_cs, dtype=np.int64), n_evse))

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
                (ids[2], [self._element("ENERGY", dc), {"price_components": [{"type": "TIME", "price": 6.0, "step_size": 60}],
                                                        "restrictions": {"min_duration": 2700}}],
                 f"€{dc:.2f} per kWh, €6.00 per hour after 45 minutes"),
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
        place = random_place(rng, cpo.country, spread_km=8)
        access = _pick(rng, ACCESS)
        name = f"{place.city} {place.street}" + rng.choice(["", "", "", " P+R", " Parkeergarage", " Centrum"])
        facilities = sorted(rng.sample(FACILITIES, k=_pick(rng, FACILITY_COUNT)))
        opening = _pick(rng, OPENING)
        mix = _pick(rng, MIX)
        city_code = place.city[:3].upper()
        ctx = _Ctx(cpo, place.latitude, place.longitude, name, access == "PUBLIC",
                   parking=rng.random() >= 0.07, ts=int(self._loc_base_ts[i]))
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
            "directions": [{"language": "nl", "text": rng.choice(["Ingang via de achterzijde", "Naast de fietsenstalling", "Niveau -1, vak 12-16"])}]
            if rng.random() < 0.2 else [],
            "facilities": facilities,
            "operator": {"name": cpo.name, "website": cpo.website, "logo": None, "phone_number": "+31 85 000 1234" if cpo.country == "NLD" else "+32 2 000 12 34"},
            "suboperator": None,
            "owner": {"name": f"Gemeente {place.city}", "website": None, "logo": None, "phone_number": None} if rng.random() < 0.2 else None,
            "auth_rules": self._auth_rules(rng, access),
            "time_zone": TIME_ZONES[cpo.country],
            "opening_times": self._opening_times(opening),
            "charging_when_closed": opening != "hours" or rng.random() < 0.5,
            "energy_mix": self._energy_mix(cpo, mix),
            "custom_groups": [{"name": f"Gemeente {place.city}", "external_id": f"MUN-{city_code}"}] if rng.random() < 0.35 else [],
            "maintenance_info": rng.choice([None, None, None, "Jaarlijkse inspectie gepland", "Kabelhouder vervangen"]),
            "remarks": rng.choice([None, None, None, "Vak 3 vaak bezet door niet-EV", "Slagboom: bel de parkeerwachter"]),
            "payment_provider": None,
            "wallet_id": None,
            "cpo_id": cpo.cpo_id,
            "cpo_customer_external_id": f"CUST-{rng.randint(1, 9999):04d}",
            "etag": None,
            "created_by": rng.choice(["portal@greenflux.example", "api@cpo.example"]),
            "modified_by": rng.choice(["portal@greenflux.example", "api@cpo.example"]),
            "customised_fields": [{"type": "SiteCode", "value": f"{city_code}-{i:05d}"}] if rng.random() < 0.5 else [],
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
            return [{"type": "ClosedGroups", "value": rng.choice(["staff-cards", "fleet-cards"])},
                    {"type": "CustomerExternalId", "value": f"CUST-{rng.randint(1, 9999):04d}"}]
        return []

    @staticmethod
    def _opening_times(kind: str | None) -> dict[str, Any] | None:
        if kind is None:
            return None  # a realistic gap: not every CPO fills it in
        if kind == "24/7":
            return {"regular_hours": [], "twentyfourseven": True, "exceptional_openings": [], "exceptional_closings": []}
        hours = [{"weekday": d, "period_begin": "07:00", "period_end": "22:00"} for d in range(1, 7)]
        hours.append({"weekday": 7, "period_begin": "09:00", "period_end": "18:00"})
        return {"regular_hours": hours, "twentyfourseven": False, "exceptional_openings": [], "exceptional_closings": []}

    @staticmethod
    def _energy_mix(cpo: Cpo, kind: str | None) -> dict[str, Any] | None:
        if kind is None:
            return None
        party = cpo.party_id.lower()
        if kind == "green":
            return {"energy_mix_profile_id": f"emp-{party}-green", "is_green_energy": True,
                    "energy_sources": [{"source": "WIND", "percentage": 70.0}, {"source": "SOLAR", "percentage": 30.0}],
                    "environ_impact": [{"source": "CARBON_DIOXIDE", "amount": 0.0}],
                    "supplier_name": "Eneco" if cpo.country == "NLD" else "Engie", "energy_product_name": "HollandseWind"}
        return {"energy_mix_profile_id": f"emp-{party}-mix", "is_green_energy": False,
                "energy_sources": [{"source": "GENERAL_FOSSIL", "percentage": 45.0}, {"source": "GAS", "percentage": 25.0},
                                   {"source": "NUCLEAR", "percentage": 5.0}, {"source": "GENERAL_GREEN", "percentage": 25.0}],
                "environ_impact": [{"source": "CARBON_DIOXIDE", "amount": 320.0}, {"source": "NUCLEAR_WASTE", "amount": 0.0006}],
                "supplier_name": "Vattenfall", "energy_product_name": "Stroom Mix"}

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
            "installation_date": iso(int(self._loc_created[i]) - 86400 * rng.randint(0, 20))[:10] + "T00:00:00Z",
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
            "charging_speed": ("Rapid" if rating >= 150 else "Fast") if dc else ("Fast" if rating[2] == 32 and rating[0] == "AC_3_PHASE" else "Slow"),
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
            plugs = [(standard, "CABLE" if cable or standard == "IEC_62196_T1" else "SOCKET", power_type, voltage, amperage,
                      watts, tariff)]
        else:
            kw = int(rating)
            tariff = tariffs[2] if rng.random() >= 0.05 else None
            combo = "IEC_62196_T1_COMBO" if rng.random() < 0.01 else "IEC_62196_T2_COMBO"
            plugs = [(combo, "CABLE", "DC", 920 if kw > 50 else 500, int(kw * 1000 / (920 if kw > 50 else 500)), kw * 1000, tariff)]
            if kw == 50 and rng.random() < 0.6:
                plugs.append(("CHADEMO", "CABLE", "DC", 500, 125, 50000, tariff))
        restrictions = (["EV_ONLY"] + (["DISABLED"] if rng.random() < 0.05 else [])) if ctx.parking else []
        capabilities = ["RFID_READER", "REMOTE_START_STOP_CAPABLE"] + (["CREDIT_CARD_PAYABLE"] if not isinstance(rating, tuple) else [])
        return {
            "uid": evse_id.replace("*", "-"),
            "evse_id": evse_id,
            "status": "REMOVED" if cs["_deprecated"] else _pick(rng, STATUS_TABLE),
            "status_schedule": [],
            "capabilities": capabilities,
            "connectors": [
                {
                    "id": str(n + 1), "standard": std, "format": fmt, "power_type": pt, "voltage": v, "amperage": a,
                    "max_electric_power": p, "tariff_id": t, "terms_and_conditions": None, "last_updated": stamp,
                    "reimbursement_tariff_id": cs["default_charge_station_reimbursement_tariff_id"],
                }
                for n, (std, fmt, pt, v, a, p, t) in enumerate(plugs)
            ],
            "floor_level": cs["default_charge_station_floor_level"],
            "coordinates": {"latitude": f"{ctx.lat + rng.uniform(-5e-5, 5e-5):.6f}", "longitude": f"{ctx.lon + rng.uniform(-5e-5, 5e-5):.6f}"},
            "physical_reference": f"{position}" if rng.random() < 0.8 else None,
            "directions": [],
            "parking_restrictions": restrictions,
            "images": [],
            "last_updated": stamp,
            "evse_sequence_number": position,
        }

    # -- current state: overrides over the generated base ---------------------------------------
    def _ctx(self, i: int) -> _Ctx:
        return self._loc_base(i)[1]

    def _cs_fields(self, j: int, ctx: _Ctx | None = None) -> dict[str, Any]:
        """Charge station j's own fields; `ctx` is its original location's (regenerated when not given)."""
        if j in self._cs_over:
            return self._cs_over[j]
        i = int(self._cs_base_loc[j])
        return self._cs_base(j, ctx or self._ctx(i), i)

    def _evse(self, g: int, ctx: _Ctx | None = None, cs: dict[str, Any] | None = None) -> dict[str, Any]:
        if g in self._evse_over:
            return self._evse_over[g]
        j = int(self._evse_cs[g])
        if ctx is None:
            ctx = self._ctx(int(self._cs_base_loc[j]))
        if cs is None:
            cs = self._cs_fields(j, ctx)
        return self._evse_base(g, j, g - int(self._cs_first_evse[j]) + 1, cs, ctx)

    def _evses_of_cs(self, j: int, ctx: _Ctx | None = None) -> list[dict[str, Any]]:
        """The EVSEs of charge station j; `ctx`: its original location's, when the caller has it."""
        first, count = int(self._cs_first_evse[j]), int(self._cs_nevse[j])
        if all(g in self._evse_over for g in range(first, first + count)):
            return [self._evse_over[g] for g in range(first, first + count)]
        if ctx is None:
            ctx = self._ctx(int(self._cs_base_loc[j]))
        cs = self._cs_fields(j, ctx)
        return [self._evse(g, ctx, cs) for g in range(first, first + count)]

    def _members(self, i: int) -> list[int]:
        """Charge stations at location i now: its own that stayed, plus those moved in."""
        first, count = int(self._loc_first_cs[i]), int(self._loc_ncs[i])
        own = [j for j in range(first, first + count) if int(self._cs_loc[j]) == i]
        return own + [j for j in self._moved_in.get(i, []) if int(self._cs_loc[j]) == i]

    def _location(self, i: int, evses: bool = True) -> dict[str, Any]:
        base, ctx = self._loc_base(i)
        body = dict(self._loc_over.get(i, base))
        modified = int(self._loc_modified[i])
        body.update(created=iso(int(self._loc_created[i])), modified=iso(modified), last_updated=iso(int(self._loc_updated[i])),
                    etag=etag(modified))
        body.update(self._loc_pinned.get(i, {}))
        if not evses:
            body.pop("evses", None)
            return body
        live = [e for j in self._members(i) for e in self._evses_of_cs(j, ctx if int(self._cs_base_loc[j]) == i else None)]
        body["evses"] = live + list(self._removed.get(i, {}).values())
        return body

    def _charge_station(self, j: int) -> dict[str, Any]:
        body = {k: v for k, v in self._cs_fields(j).items() if not k.startswith("_")}
        modified = int(self._cs_modified[j])
        evses = self._evses_of_cs(j)
        live = [e["status"] for e in evses if e["status"] != "REMOVED"]
        body.update(
            location_id=self.location_id(int(self._cs_loc[j])), evses=evses, etag=etag(modified),
            created=iso(int(self._loc_created[int(self._cs_base_loc[j])])), modified=iso(modified),
            status=("CHARGING" if "CHARGING" in live else live[0]) if live else "REMOVED",
        )
        return body

    # -- mutation helpers (evolve and tests) -------------------------------------------------------
    def _loc_mut(self, i: int) -> dict[str, Any]:
        if i not in self._loc_over:
            self._loc_over[i] = copy.deepcopy(self._loc_base(i)[0])
        return self._loc_over[i]

    def _cs_mut(self, j: int) -> dict[str, Any]:
        if j not in self._cs_over:
            self._cs_over[j] = copy.deepcopy(self._cs_fields(j))
        return self._cs_over[j]

    def _evse_mut(self, g: int) -> dict[str, Any]:
        if g not in self._evse_over:
            self._evse_over[g] = copy.deepcopy(self._evse(g))
        return self._evse_over[g]

    def _touch_evse(self, g: int, evse: dict[str, Any], now: int, connectors: bool = False) -> None:
        """An EVSE changed: its last_updated and its Location's (not the Location's `modified`)."""
        evse["last_updated"] = iso(now)
        if connectors:
            for connector in evse["connectors"]:
                connector["last_updated"] = iso(now)
        i = int(self._cs_loc[int(self._evse_cs[g])])
        self._loc_updated[i] = now

    def _require(self, found: int | None, what: str, key: str) -> int:
        if found is None:
            raise KeyError(f"unknown {what} {key!r}")
        return found

    def set_evse_status(self, uid: str, status: str) -> None:
        """Change an EVSE's status now (as the charge station reports it)."""
        with self.lock:
            g = self._require(self.evse_index(uid), "EVSE", uid)
            evse = self._evse_mut(g)
            evse["status"] = status
            self._touch_evse(g, evse, self._now())

    def edit_evse(self, uid: str, **fields: Any) -> None:
        """Edit an EVSE now (any field, `last_updated` included: tests send broken values this way)."""
        with self.lock:
            g = self._require(self.evse_index(uid), "EVSE", uid)
            evse = self._evse_mut(g)
            self._touch_evse(g, evse, self._now())
            evse.update(fields)

    def edit_connector(self, uid: str, connector_id: str, **fields: Any) -> None:
        with self.lock:
            g = self._require(self.evse_index(uid), "EVSE", uid)
            evse = self._evse_mut(g)
            self._touch_evse(g, evse, self._now(), connectors=True)
            for connector in evse["connectors"]:
                if connector["id"] == connector_id:
                    connector.update(fields)

    def edit_location(self, location_id: str, **fields: Any) -> None:
        """Edit Location-level fields now (bumps `modified` and `last_updated`).

        Time fields given here (`created`, `modified`, `last_updated`, `etag`) are served as given
        from now on, whatever they contain; the filters keep using the real change time.
        """
        with self.lock:
            i = self._require(self.location_index(location_id), "location", location_id)
            pinned = {k: fields.pop(k) for k in list(fields) if k in self.TIME_FIELDS}
            self._loc_mut(i).update(fields)
            self._loc_pinned.setdefault(i, {}).update(pinned)
            self._loc_modified[i] = self._loc_updated[i] = self._now()

    def edit_charge_station(self, cs_id: str, **fields: Any) -> None:
        with self.lock:
            j = self._require(self.charge_station_index(cs_id), "charge station", cs_id)
            self._cs_mut(j).update(fields)
            self._cs_modified[j] = self._now()

    def edit_tariff(self, tariff_id: str, **fields: Any) -> None:
        with self.lock:
            self.tariffs[tariff_id].update(fields, last_updated=iso(self._now()))

    def delete_tariff(self, tariff_id: str) -> None:
        with self.lock:
            self.tariffs.pop(tariff_id)

    def move_charge_station(self, cs_id: str, to_location_id: str) -> None:
        """Move a charge station: its EVSEs stay behind as REMOVED (timestamps untouched) and reappear live."""
        with self.lock:
            j = self._require(self.charge_station_index(cs_id), "charge station", cs_id)
            to = self._require(self.location_index(to_location_id), "location", to_location_id)
            self._move(j, to, self._now())

    def _move(self, j: int, to: int, now: int) -> None:
        origin = int(self._cs_loc[j])
        if origin == to:
            return
        target = self._ctx(to)
        first, count = int(self._cs_first_evse[j]), int(self._cs_nevse[j])
        self._cs_loc[j] = to  # first: touching the EVSEs below bumps the new location, never the old
        for g in range(first, first + count):
            evse = self._evse_mut(g)
            left = copy.deepcopy(evse)
            left["status"] = "REMOVED"  # and, as GreenFlux does, no timestamp change
            self._removed.setdefault(origin, {})[evse["uid"]] = left
            self._removed.get(to, {}).pop(evse["uid"], None)  # moving back revives the old copy
            evse["coordinates"] = {"latitude": f"{target.lat:.6f}", "longitude": f"{target.lon:.6f}"}
            if evse["status"] == "REMOVED":
                evse["status"] = "AVAILABLE"
            self._touch_evse(g, evse, now, connectors=True)
        if int(self._cs_base_loc[j]) != to and j not in self._moved_in.get(to, []):
            self._moved_in.setdefault(to, []).append(j)
        self._cs_modified[j] = now
        self._loc_updated[to] = now

    def add_location(self, cpo_id: str | None = None) -> str:
        """A new location (with new charge stations and EVSEs) created now; returns its id."""
        with self.lock:
            return self._add_location(self.rng, self._now(), cpo_id)

    def _add_location(self, rng: random.Random, now: int, cpo_id: str | None = None) -> str:
        i = self.n_locations
        cpo = [c.cpo_id for c in CPOS].index(cpo_id) if cpo_id else CPOS.index(weighted(rng, [(c, c.weight) for c in CPOS]))
        n_cs = weighted(rng, [(1, 60), (2, 40)])
        first_cs, first_evse = self.n_charge_stations, self.n_evses
        self._loc_cpo.append([cpo])
        self._loc_ncs.append([n_cs])
        self._loc_first_cs.append([first_cs])
        for column in (self._loc_created, self._loc_modified, self._loc_updated, self._loc_base_ts):
            column.append([now])
        dc = [rng.random() < 0.2 for _ in range(n_cs)]
        n_evse = [1 if d else 2 for d in dc]
        self._cs_base_loc.append([i] * n_cs)
        self._cs_loc.append([i] * n_cs)
        self._cs_dc.append(dc)
        self._cs_nevse.append(n_evse)
        self._cs_first_evse.append(list(first_evse + np.concatenate([[0], np.cumsum(n_evse)[:-1]]).astype(np.int64)))
        self._cs_modified.append([now] * n_cs)
        self._evse_cs.append(np.repeat(np.arange(first_cs, first_cs + n_cs), n_evse))
        return self.location_id(i)

    def location(self, location_id: str) -> dict[str, Any]:
        """The location as the API would serve it now (a copy)."""
        with self.lock:
            i = self._require(self.location_index(location_id), "location", location_id)
            return json.loads(json.dumps(self._location(i)))

    def charge_station(self, cs_id: str) -> dict[str, Any]:
        with self.lock:
            j = self._require(self.charge_station_index(cs_id), "charge station", cs_id)
            return json.loads(json.dumps(self._charge_station(j)))

    def locations(self) -> list[dict[str, Any]]:
        """Every location as served now (tests and small fleets only)."""
        with self.lock:
            return [json.loads(json.dumps(self._location(i))) for i in range(self.n_locations)]

    def charge_stations(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(json.dumps(self._charge_station(j))) for j in range(self.n_charge_stations)]

    def location_updated(self) -> list[tuple[str, int]]:
        """(location id, last_updated epoch seconds) of every location, in API order."""
        with self.lock:
            return [(self.location_id(i), int(self._loc_updated[i])) for i in range(self.n_locations)]

    def mutated(self) -> int:
        """How many objects the simulator holds as dicts (the rest are generated on demand)."""
        return len(self._loc_over) + len(self._cs_over) + len(self._evse_over) + len(self._removed)

    # -- change process ----------------------------------------------------------------------------
    def evolve(self, seconds: float) -> None:
        """Per simulated minute: EVSE statuses change; now and then a station moves, a location
        appears, a location, a station or a tariff is edited."""
        rng, now = self.rng, self._now()
        for _ in range(max(1, int(seconds // 60))):
            for _ in range(max(1, self.n_evses // 150)):
                g = rng.randrange(self.n_evses)
                evse = self._evse_mut(g)
                if evse["status"] == "REMOVED":  # a deprecated station's EVSE: nothing reports on it
                    continue
                evse["status"] = weighted(rng, [(s, w) for s, w in STATUSES if s not in (evse["status"], "PLANNED")])
                self._touch_evse(g, evse, now)
            if rng.random() < 0.05:
                j = rng.randrange(self.n_charge_stations)
                cpo = int(self._loc_cpo[int(self._cs_loc[j])])
                same_cpo = np.flatnonzero(self._loc_cpo.view == cpo)
                self._move(j, int(same_cpo[rng.randrange(len(same_cpo))]), now)
            if rng.random() < 0.05:
                self._add_location(rng, now)
            if rng.random() < 0.1:
                i = rng.randrange(self.n_locations)
                self._loc_mut(i)["remarks"] = rng.choice(["Laadpaal verplaatst", "Nieuwe belijning", "Tijdelijk afgezet wegens werkzaamheden", None])
                self._loc_modified[i] = self._loc_updated[i] = now
            if rng.random() < 0.3:
                j = rng.randrange(self.n_charge_stations)
                cs = self._cs_mut(j)
                cs["connectivity_status"] = "Offline" if cs["connectivity_status"] == "Online" else "Online"
                self._cs_modified[j] = now
            if rng.random() < 0.01:
                tariff = self.tariffs[rng.choice(sorted(self.tariffs))]
                component = tariff["elements"][0]["price_components"][0]
                if component["price"]:
                    component["price"] = round(component["price"] + 0.02, 2)
                    tariff["last_updated"] = iso(now)

    def charging_parks(self) -> list[ChargingPark]:
        """Every public location with its live connectors, as TomTom would list it."""
        parks = []
        with self.lock:
            for i in range(self.n_locations):
                location = self._location(i)
                if not location["publish"] or location["access_type"] != "PUBLIC":
                    continue
                counts: dict[tuple[str, float], int] = {}
                for evse in location["evses"]:
                    if evse["status"] == "REMOVED":
                        continue
                    for connector in evse["connectors"]:
                        kind = TOMTOM_TYPES.get((connector["standard"], connector["format"]))
                        if kind:
                            key = (kind, round(float(connector["max_electric_power"] or 0) / 1000, 1))
                            counts[key] = counts.get(key, 0) + 1
                if counts:
                    parks.append(ChargingPark(
                        location["id"], location["name"], float(location["coordinates"]["latitude"]),
                        float(location["coordinates"]["longitude"]), location["country"],
                        tuple((k, kw, n) for (k, kw), n in sorted(counts.items())),
                    ))
        return parks

    # -- API -------------------------------------------------------------------------------------
    def rate_limit(self) -> ServerRateLimit | None:
        return self._limit

    def account_of(self, request: Request) -> str:
        return request.header("Authorization") or request.client

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        """GreenFlux says "slow down" either as HTTP 429 + Retry-After or inside an HTTP 200."""
        self._throttled += 1
        seconds = max(0, math.ceil(retry_after))
        in_body = self.rate_limit_style == "body" or (self.rate_limit_style == "alternate" and self._throttled % 2 == 1)
        payload = self._envelope(None, 2000, f"API rate limit exceeded. Try again in {seconds} seconds.")
        if in_body:
            return Response.json(payload)
        return Response.json(payload, 429, {"Retry-After": str(seconds)})

    def inject_ocpi(self, code: int, message: str, count: int = 1, path: str | None = None) -> None:
        """Answer the next `count` API requests (whose path contains `path`) with HTTP 200 + this OCPI status."""
        with self.lock:
            self._ocpi_script.extend([(code, message, path)] * count)

    def _envelope(self, data: Any, code: int = 1000, message: str = "Success") -> dict[str, Any]:
        return {"data": data, "status_code": code, "status_message": message, "timestamp": iso(self._now())}

    def _ocpi_reply(self, code: int, message: str, http: int = 200) -> HttpReply:
        return HttpReply(Response.json(self._envelope(None, code, message), http))

    def _authorize(self, request: Request) -> None:
        header = request.header("Authorization") or ""
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "token" or not presented.strip():
            raise self._ocpi_reply(2000, "Authorization header with a Token is required", 401)
        presented = presented.strip()
        try:
            decoded = base64.b64decode(presented, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        ok = hmac.compare_digest(presented, self.token) or hmac.compare_digest(decoded, self.token)
        if self.faults.bad_auth or not ok:
            raise self._ocpi_reply(2000, "Invalid or expired token", 403)
        with self.lock:
            for n, (code, message, path) in enumerate(self._ocpi_script):
                if path is None or path in request.path:
                    del self._ocpi_script[n]
                    raise self._ocpi_reply(code, message)

    def _paging(self, request: Request) -> tuple[int, int, int | None, int | None]:
        """offset, limit (capped at max_limit), date_from, date_to (epoch seconds)."""
        try:
            offset = int(request.arg("offset", "0") or 0)
            limit = int(request.arg("limit", str(self.default_limit)) or self.default_limit)
            if offset < 0 or limit < 1:
                raise ValueError
        except ValueError:
            raise self._ocpi_reply(2001, "Invalid or missing parameters: offset and limit must be non-negative integers") from None
        bounds = []
        for name in ("date_from", "date_to"):
            value = request.arg(name)
            try:
                bounds.append(parse_time(value) if value else None)
            except ValueError:
                raise self._ocpi_reply(2001, f"Invalid or missing parameters: {name} must be yyyy-MM-ddTHH:mm:ssZ") from None
        return offset, min(limit, self.max_limit), bounds[0], bounds[1]

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return (request.arg(name) or "").lower() in ("true", "1", "yes")

    def _select(self, stamps: np.ndarray, date_from: int | None, date_to: int | None, extra: np.ndarray | None = None) -> np.ndarray | None:
        """Indices matching the filters (creation order); None when nothing filters (all of them)."""
        if date_from is None and date_to is None and extra is None:
            return None
        mask = np.ones(len(stamps), dtype=bool) if extra is None else extra.copy()
        if date_from is not None:
            mask &= stamps >= date_from  # inclusive
        if date_to is not None:
            mask &= stamps < date_to  # exclusive
        return np.flatnonzero(mask)

    def _list(self, request: Request, total_count: int, matching: np.ndarray | None, render: Any, bare: bool) -> Response:
        offset, limit, _, _ = self._paging(request)
        total = total_count if matching is None else len(matching)
        chunk = range(offset, min(total, offset + limit)) if matching is None else matching[offset : offset + limit]
        data = [render(int(k)) for k in chunk]
        body = json.dumps(data if bare else self._envelope(data), separators=(",", ":"))
        headers = {"X-Total-Count": str(total), "X-Limit": str(limit)}
        if offset + len(data) < total:
            query = {k: v[0] for k, v in request.query.items()}
            query.update(offset=str(offset + len(data)), limit=str(limit))
            headers["Link"] = f'<{self.url}{request.path}?{urlencode(query)}>; rel="next"'
        return Response.json(body.encode(), headers=headers)

    def _list_locations(self, request: Request) -> Response:
        self._authorize(request)
        _, _, date_from, date_to = self._paging(request)
        # exclude_evses_modified: only changes of the Location object itself count.
        with_evses = not self._flag(request, "exclude_evses")
        with self.lock:
            stamps = (self._loc_modified if self._flag(request, "exclude_evses_modified") else self._loc_updated).view
            cpo = request.arg("cpoId")
            extra = None
            if cpo:
                wanted = [n for n, c in enumerate(CPOS) if c.cpo_id.lower() == cpo.lower()]
                extra = np.isin(self._loc_cpo.view, wanted)
            matching = self._select(stamps, date_from, date_to, extra)
            return self._list(request, self.n_locations, matching, lambda i: self._location(i, with_evses), self.bare_lists)

    def _get_location(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            i = self.location_index(request.params["id"])
            if i is None:
                raise self._ocpi_reply(2003, f"Unknown location {request.params['id']}", 404)
            return Response.json(self._envelope(self._location(i, not self._flag(request, "excludeEvses"))))

    def _list_charge_stations(self, request: Request) -> Response:
        self._authorize(request)
        _, _, date_from, date_to = self._paging(request)
        with self.lock:
            extra = None
            location = request.arg("location_id")
            if location:
                extra = self._cs_loc.view == (self.location_index(location) if self.location_index(location) is not None else -1)
            cpo = request.arg("cpoId")
            if cpo:
                wanted = [n for n, c in enumerate(CPOS) if c.cpo_id.lower() == cpo.lower()]
                by_cpo = np.isin(self._loc_cpo.view[self._cs_loc.view], wanted)
                extra = by_cpo if extra is None else extra & by_cpo
            matching = self._select(self._cs_modified.view, date_from, date_to, extra)
            return self._list(request, self.n_charge_stations, matching, self._charge_station, self.bare_lists)

    def _get_charge_station(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            j = self.charge_station_index(request.params["id"])
            if j is None:
                raise self._ocpi_reply(2003, f"Unknown charge station {request.params['id']}", 404)
            return Response.json(self._envelope(self._charge_station(j)))

    def _list_tariffs(self, request: Request) -> Response:
        """OCPI 2.1.1-style tariffs of every CPO on the platform (always enveloped)."""
        self._authorize(request)
        _, _, date_from, date_to = self._paging(request)
        with self.lock:
            tariffs = sorted(self.tariffs.values(), key=lambda t: int(t["id"]))
            stamps = np.array([parse_time(t["last_updated"]) for t in tariffs], dtype=np.int64)
            matching = self._select(stamps, date_from, date_to)
            return self._list(request, len(tariffs), matching, lambda k: copy.deepcopy(tariffs[k]), bare=False)
