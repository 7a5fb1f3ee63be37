"""TomTom simulator: Search (category search) and EV Charging Stations Availability v2.

Faithful to what the real API documents (see docs/sources.md and the reference notes):
- `GET /search/2/chargingAvailability.{json|xml}?key&chargingAvailability[&connectorSet][&minPowerKW][&maxPowerKW]`:
  availability per connector type, then per power level; 403 for a wrong key, 400 with the
  documented error body (`ErrorEvResponse` in XML) for a missing or malformed parameter, 200 with
  an empty `connectors` list for an unknown id, `Tracking-ID` validated and echoed (generated when
  absent), 405 for other methods, 429 once the key exceeds its QPS.
- `GET /search/2/categorySearch/{query}.json?key&lat&lon&radius&categorySet=7309`: POIs near a
  point, nearest first, with `chargingPark` beside `poi` and, for POIs with live data,
  `dataSources.chargingAvailability.id`.

TomTom's database lists the same places the other providers describe: one POI per charging park
(coordinates a few metres off, TomTom's own name), most with a live-availability id. Around them
sit decoys: other charging parks 100-400 m away with different connectors, the odd second
operator's park in the same car park with the same connectors, and non-charging POIs. With no
parks given, a synthetic fleet (`scale`) stands in. Counts change in `evolve`.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import math
import random
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from evpipeline.simulators.toolkit import (
    REGIONS,
    STREETS,
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

CONNECTOR_TYPES = (
    "StandardHouseholdCountrySpecific", "IEC62196Type1", "IEC62196Type1CCS", "IEC62196Type2CableAttached",
    "IEC62196Type2Outlet", "IEC62196Type2CCS", "IEC62196Type3", "Chademo", "GBT20234Part2", "GBT20234Part3",
    "IEC60309AC3PhaseRed", "IEC60309AC1PhaseBlue", "IEC60309DCWhite", "Tesla",
)
DC_TYPES = {"IEC62196Type1CCS", "IEC62196Type2CCS", "Chademo", "GBT20234Part3", "IEC60309DCWhite"}
STATES = ("available", "occupied", "reserved", "unknown", "outOfService")
TRACKING_ID = re.compile(r"^[a-zA-Z0-9-]{1,100}$")
EV_CATEGORY = 7309
OTHER_CATEGORIES = [
    (7311, "petrol station", "PETROL_STATION"), (7313, "parking garage", "PARKING_GARAGE"),
    (7315, "restaurant", "RESTAURANT"), (7332, "market", "MARKET"),
]
ALPHA2 = {"NLD": "NL", "BEL": "BE", "NOR": "NO", "NZL": "NZ", "DEU": "DE", "FRA": "FR", "DNK": "DK", "SWE": "SE"}
COUNTRY_NAMES = {"NLD": "Netherlands", "BEL": "Belgium", "NOR": "Norway", "NZL": "New Zealand"}
BRANDS = ["Fastned", "Shell Recharge", "Allego", "Ionity", "Vattenfall InCharge", "TotalEnergies", "Tesla", "EVBox", "ChargeNet"]
# Synthetic fleets: (type, weight) and the ratings each type comes in.
SYNTHETIC_TYPES = [
    ("IEC62196Type2Outlet", 34), ("IEC62196Type2CCS", 25), ("IEC62196Type2CableAttached", 12), ("Chademo", 8),
    ("StandardHouseholdCountrySpecific", 5), ("Tesla", 5), ("IEC62196Type1", 3), ("IEC62196Type1CCS", 2),
    ("IEC60309AC3PhaseRed", 2), ("IEC62196Type3", 1), ("GBT20234Part2", 1), ("GBT20234Part3", 1),
    ("IEC60309AC1PhaseBlue", 1),
]
RATINGS = {"DC": [50.0, 75.0, 150.0, 300.0], "AC": [3.7, 11.0, 22.0], "Tesla": [150.0, 250.0]}
# Next state of a changing connector, given its current one.
TRANSITIONS = {
    "available": [("occupied", 80), ("reserved", 8), ("unknown", 6), ("outOfService", 6)],
    "occupied": [("available", 85), ("unknown", 10), ("outOfService", 5)],
    "reserved": [("occupied", 60), ("available", 40)],
    "unknown": [("available", 70), ("occupied", 30)],
    "outOfService": [("available", 70), ("unknown", 30)],
}
INITIAL_STATES = [("available", 58), ("occupied", 30), ("reserved", 2), ("unknown", 5), ("outOfService", 5)]
EARTH_M = 6_371_000.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(a)))


def offset(lat: float, lon: float, metres: float, bearing_deg: float) -> tuple[float, float]:
    """The point `metres` away from (lat, lon) in direction `bearing_deg` (small distances)."""
    b = math.radians(bearing_deg)
    dlat = metres * math.cos(b) / 111_320.0
    dlon = metres * math.sin(b) / (111_320.0 * max(0.05, math.cos(math.radians(lat))))
    return round(lat + dlat, 7), round(lon + dlon, 7)


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()


@dataclass
class PowerLevel:
    """Charging points of one connector type and rating; `states` holds one state per point."""

    connector_type: str
    power_kw: float
    states: list[str]


@dataclass
class Poi:
    id: str
    name: str
    latitude: float
    longitude: float
    country: str  # alpha-3
    address: str
    category: int = EV_CATEGORY
    levels: list[PowerLevel] = field(default_factory=list)
    availability_id: str | None = None
    ref: str | None = None  # the park this POI stands for; None for decoys
    kind: str = "park"  # park | decoy | twin | other

    @property
    def charging(self) -> bool:
        return self.category == EV_CATEGORY

    @property
    def connector_types(self) -> set[str]:
        return {level.connector_type for level in self.levels}


class TomTomSimulator(SimServer):
    """TomTom Search + EV Charging Stations Availability v2 with a changing fleet and a QPS limit."""

    name = "tomtom"

    def __init__(
        self,
        *,
        parks: Sequence[ChargingPark] | None = None,
        scale: float = 1.0,
        api_key: str = "sim-tomtom-key",
        qps: float = 20.0,
        burst: float | None = None,
        live_share: float = 0.85,
        change_rate: float = 0.03,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.api_key = api_key
        self.qps = qps
        # One second's worth of queries: a client that keeps above its QPS runs dry within a second.
        self._limit = ServerRateLimit(qps, burst if burst is not None else max(1.0, qps))
        self.live_share = live_share
        self.change_rate = change_rate
        self.pois: list[Poi] = []
        self.by_availability: dict[str, Poi] = {}
        self.by_ref: dict[str, Poi] = {}
        self._grid: dict[tuple[int, int], list[Poi]] = {}
        self._points: list[tuple[PowerLevel, int]] = []
        self._build_fleet(list(parks) if parks is not None else self._synthetic_parks(scale))

        self.route("GET", r"/search/2/chargingAvailability\.(?P<ext>[A-Za-z]+)", self._availability)
        self.route("GET", r"/search/2/categorySearch/(?P<query>[^/]+)\.(?P<ext>[A-Za-z]+)", self._category_search)

    # -- fleet -------------------------------------------------------------------------------
    def _synthetic_parks(self, scale: float) -> list[ChargingPark]:
        rng = random.Random(f"tomtom:{self.seed}:fleet")
        parks = []
        for i in range(max(1, int(round(400 * scale)))):
            country = weighted(rng, [("NLD", 50), ("NOR", 20), ("BEL", 15), ("NZL", 15)])
            place = random_place(rng, country, spread_km=15)
            groups: dict[tuple[str, float], int] = {}
            for _ in range(weighted(rng, [(1, 45), (2, 40), (3, 15)])):
                kind = weighted(rng, SYNTHETIC_TYPES)
                power = rng.choice(RATINGS["Tesla" if kind == "Tesla" else "DC" if kind in DC_TYPES else "AC"])
                groups[(kind, power)] = groups.get((kind, power), 0) + rng.randint(1, 4)
            parks.append(ChargingPark(f"synthetic-{i}", f"{place.city} {place.street}", place.latitude, place.longitude,
                                      country, tuple((k, kw, n) for (k, kw), n in sorted(groups.items()))))
        return parks

    def _build_fleet(self, parks: list[ChargingPark]) -> None:
        for park in parks:
            rng = random.Random(_digest("tomtom", self.seed, "park", park.ref))
            if not park.connectors:
                continue
            lat, lon = offset(park.latitude, park.longitude, rng.uniform(1.0, 12.0), rng.uniform(0, 360))
            types = {kind for kind, _, _ in park.connectors}
            # TomTom lists a place once, however many providers describe it.
            twin = next((p for p in self._near(lat, lon, 15.0) if p.kind == "park" and p.connector_types == types), None)
            if twin is not None:
                self.by_ref[park.ref] = twin
                continue
            live = rng.random() < self.live_share
            poi = self._add(Poi(
                id=self._poi_id(park.ref), name=self._tomtom_name(rng, park), latitude=lat, longitude=lon,
                country=park.country, address=self._address(rng, park.country, lat, lon),
                levels=[PowerLevel(kind, float(kw), self._initial_states(rng, count)) for kind, kw, count in park.connectors],
                availability_id=self._availability_id(park.ref) if live else None, ref=park.ref, kind="park",
            ))
            self.by_ref[park.ref] = poi
            self._decoys(rng, poi, park)

    def _decoys(self, rng: random.Random, poi: Poi, park: ChargingPark) -> None:
        """Nearby POIs that a match by distance alone would pick wrongly."""
        types = sorted(poi.connector_types)
        if rng.random() < 0.6:  # another charging park 100-400 m away with other connectors
            others = [t for t in ("IEC62196Type2Outlet", "IEC62196Type2CCS", "Chademo", "IEC62196Type2CableAttached",
                                  "StandardHouseholdCountrySpecific", "Tesla") if t not in types]
            kind = rng.choice(others)
            lat, lon = offset(poi.latitude, poi.longitude, rng.uniform(100, 400), rng.uniform(0, 360))
            self.add_charging_poi(lat, lon, [(kind, 22.0 if kind not in DC_TYPES else 50.0, rng.randint(1, 4))],
                                  live=rng.random() < self.live_share, country=park.country, kind="decoy", rng=rng)
        if rng.random() < 0.03:  # a second operator in the same car park, same connectors
            lat, lon = offset(poi.latitude, poi.longitude, rng.uniform(12, 30), rng.uniform(0, 360))
            self.add_charging_poi(lat, lon, [(lv.connector_type, lv.power_kw, len(lv.states)) for lv in poi.levels],
                                  live=True, country=park.country, kind="twin", rng=rng)
        for _ in range(weighted(rng, [(0, 40), (1, 40), (2, 20)])):  # shops, fuel, parking around it
            category, label, _code = rng.choice(OTHER_CATEGORIES)
            lat, lon = offset(poi.latitude, poi.longitude, rng.uniform(5, 150), rng.uniform(0, 360))
            self._add(Poi(self._poi_id(f"{park.ref}:other:{len(self.pois)}"), f"{label.title()} {rng.randint(1, 99)}",
                          lat, lon, park.country, self._address(rng, park.country, lat, lon), category=category, kind="other"))

    def add_charging_poi(
        self,
        latitude: float,
        longitude: float,
        connectors: Iterable[tuple[str, float, int]],
        *,
        live: bool = True,
        country: str = "NLD",
        kind: str = "decoy",
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> Poi:
        """Add a charging POI (decoys, or test fixtures); returns it."""
        rng = rng or random.Random(_digest("tomtom", self.seed, "extra", len(self.pois)))
        ref = f"{kind}:{len(self.pois)}:{latitude:.6f},{longitude:.6f}"
        address = self._address(rng, country, latitude, longitude)
        with self.lock:
            return self._add(Poi(
                id=self._poi_id(ref), name=name or f"{rng.choice(BRANDS)} {address.rpartition(', ')[2]}",
                latitude=latitude, longitude=longitude, country=country, address=address,
                levels=[PowerLevel(t, float(kw), self._initial_states(rng, n)) for t, kw, n in connectors],
                availability_id=self._availability_id(ref) if live else None, kind=kind,
            ))

    def _add(self, poi: Poi) -> Poi:
        self.pois.append(poi)
        self._grid.setdefault(self._cell(poi.latitude, poi.longitude), []).append(poi)
        if poi.availability_id:
            self.by_availability[poi.availability_id] = poi
        for level in poi.levels:
            self._points.extend((level, i) for i in range(len(level.states)))
        return poi

    def _poi_id(self, ref: str) -> str:
        return str(528_009_000_000_000 + int.from_bytes(_digest("tomtom", self.seed, "poi", ref)[:6]) % 999_999_999_999)

    def _availability_id(self, ref: str) -> str:
        return str(uuid.UUID(bytes=_digest("tomtom", self.seed, "availability", ref)[:16]))

    @staticmethod
    def _initial_states(rng: random.Random, count: int) -> list[str]:
        return [weighted(rng, INITIAL_STATES) for _ in range(max(1, count))]

    @staticmethod
    def _tomtom_name(rng: random.Random, park: ChargingPark) -> str:
        # TomTom's own naming: brand + place, never the provider's site name verbatim.
        words = park.name.split()
        return f"{rng.choice(BRANDS)} {' '.join(words[:2]) if words else park.ref}"

    @staticmethod
    def _address(rng: random.Random, country: str, lat: float, lon: float) -> str:
        cities = REGIONS.get(country) or []
        city = min(cities, key=lambda c: (c[1] - lat) ** 2 + (c[2] - lon) ** 2)[0] if cities else ""
        street = rng.choice(STREETS.get(country) or ["Main Street"])
        return ", ".join(part for part in (f"{street} {rng.randint(1, 240)}", city) if part)

    # -- spatial index -----------------------------------------------------------------------
    @staticmethod
    def _cell(lat: float, lon: float) -> tuple[int, int]:
        return int(math.floor(lat * 100)), int(math.floor(lon * 100))  # ~1.1 km cells

    def _near(self, lat: float, lon: float, radius: float) -> list[Poi]:
        if radius > 5_000:
            candidates: Iterable[Poi] = self.pois
        else:
            span_lat = int(math.ceil(radius / 1_100)) + 1
            span_lon = int(math.ceil(radius / (1_100 * max(0.05, math.cos(math.radians(lat)))))) + 1
            clat, clon = self._cell(lat, lon)
            candidates = [p for dl in range(-span_lat, span_lat + 1) for dn in range(-span_lon, span_lon + 1)
                          for p in self._grid.get((clat + dl, clon + dn), ())]
        return [p for p in candidates if distance_m(lat, lon, p.latitude, p.longitude) <= radius]

    # -- change process ----------------------------------------------------------------------
    def evolve(self, seconds: float) -> None:
        """Per simulated minute, `change_rate` of all charging points change state."""
        if not self._points:
            return
        for _ in range(max(1, int(seconds // 60))):
            k = max(1, int(len(self._points) * self.change_rate))
            for level, i in self.rng.sample(self._points, k=min(k, len(self._points))):
                level.states[i] = weighted(self.rng, TRANSITIONS[level.states[i]])

    # -- helpers for tests, the CLI and benchmarks ---------------------------------------------
    def availability_ids(self) -> list[str]:
        """Every id that has live data (parks and decoys), in a stable order."""
        return list(self.by_availability)

    def poi_for(self, ref: str) -> Poi | None:
        """The POI standing for a park of another simulator (None when it had no connectors)."""
        return self.by_ref.get(ref)

    def availability_body(
        self,
        availability_id: str,
        connector_set: set[str] | None = None,
        min_kw: float | None = None,
        max_kw: float | None = None,
    ) -> dict[str, Any]:
        """The response body for one id; power filters are closed intervals, counts add up per level."""
        with self.lock:
            poi = self.by_availability.get(availability_id)
            by_type: dict[str, list[PowerLevel]] = {}
            for level in poi.levels if poi is not None else []:
                if connector_set is not None and level.connector_type not in connector_set:
                    continue
                if (min_kw is not None and level.power_kw < min_kw) or (max_kw is not None and level.power_kw > max_kw):
                    continue
                by_type.setdefault(level.connector_type, []).append(level)
            connectors = []
            for kind, levels in by_type.items():
                per_level = []
                for level in sorted(levels, key=lambda lv: lv.power_kw):
                    per_level.append({"powerKW": level.power_kw, **{s: level.states.count(s) for s in STATES}})
                current = {s: sum(p[s] for p in per_level) for s in STATES}
                connectors.append({
                    "type": kind,
                    "total": sum(len(level.states) for level in levels),
                    "availability": {"current": current, "perPowerLevel": per_level},
                })
            return {"connectors": connectors, "chargingAvailability": availability_id}

    # -- API ---------------------------------------------------------------------------------
    def account_of(self, request: Request) -> str:
        return request.arg("key") or request.client

    def rate_limit(self) -> ServerRateLimit:
        return self._limit

    def _tracking(self, request: Request) -> str:
        value = request.header("Tracking-ID")
        return value if value and TRACKING_ID.match(value) else str(uuid.uuid4())

    def _ext(self, request: Request) -> str:
        ext = request.params.get("ext") or request.path.rsplit(".", 1)[-1]
        return "xml" if ext == "xml" else "json"

    def _error(self, request: Request, status: int, message: str, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
        """The documented EV error body, in the format the request's extension asked for."""
        extra = {"Tracking-ID": self._tracking(request), **(headers or {})}
        if self._ext(request) == "xml":
            root = ET.Element("ErrorEvResponse")
            ET.SubElement(root, "message").text = message
            detailed = ET.SubElement(root, "detailedError")
            ET.SubElement(detailed, "code").text = code
            ET.SubElement(detailed, "message").text = detail
            return Response.text(ET.tostring(root, encoding="unicode"), status, "application/xml; charset=utf-8", extra)
        body = {"message": message, "detailedError": {"code": code, "message": detail}, "httpStatusCode": str(status)}
        return Response.json(body, status, extra)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return self._error(request, 429, "Too Many Requests", "TooManyRequests",
                           "The API key is over its QPS (queries per second) limit.",
                           {"Retry-After": str(max(1, math.ceil(retry_after)))})

    def server_error(self, request: Request, status: int) -> Response:
        return self._error(request, status, "Internal Server Error", "InternalError", "The service was unable to process your request.")

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return self._error(request, 405, "Method Not Allowed", "MethodNotAllowed",
                           f"Method {request.method} is not allowed; use GET.", {"Allow": "GET"})

    def _authorize(self, request: Request) -> None:
        key = request.arg("key")
        if self.faults.bad_auth or not key or not hmac.compare_digest(key, self.api_key):
            raise HttpReply(self._error(request, 403, "Forbidden", "Forbidden", "Not authorized: the API key is missing or invalid."))

    def _check_tracking(self, request: Request) -> None:
        value = request.header("Tracking-ID")
        if value is not None and not TRACKING_ID.match(value):
            raise HttpReply(self._error(request, 400, "Invalid header 'Tracking-ID'", "InvalidHeader",
                                        "Tracking-ID must match ^[a-zA-Z0-9-]{1,100}$."))

    def _invalid(self, request: Request, name: str, why: str) -> HttpReply:
        return HttpReply(self._error(request, 400, f"Invalid value for parameter '{name}'", "InvalidParameter", why))

    def _float_arg(self, request: Request, name: str) -> float | None:
        value = request.arg(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise self._invalid(request, name, f"'{value}' is not a number.") from None
        if not math.isfinite(number) or number < 0:
            raise self._invalid(request, name, f"'{value}' is out of range.")
        return number

    def _render(self, request: Request, body: dict[str, Any], xml: bool) -> Response:
        headers = {"Tracking-ID": self._tracking(request), "Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}
        if xml:
            response = Response.text(availability_xml(body), 200, "application/xml; charset=utf-8", headers)
        else:
            response = Response.json(body, 200, headers)
        if "gzip" in (request.header("Accept-Encoding") or "") and len(response.body) >= 512:
            response.body = gzip.compress(response.body, mtime=0)
            response.headers["Content-Encoding"] = "gzip"
        return response

    def _availability(self, request: Request) -> Response:
        self._authorize(request)
        ext = request.params["ext"]
        if ext not in ("json", "xml"):  # case-sensitive, like every parameter
            raise self._invalid(request, "ext", "The response format must be json or xml.")
        self._check_tracking(request)
        availability_id = request.arg("chargingAvailability")
        if not availability_id:
            raise HttpReply(self._error(request, 400, "Missing parameter 'chargingAvailability'", "MissingParameter",
                                        "Missing required parameter 'chargingAvailability'."))
        connector_set: set[str] | None = None
        raw_set = request.arg("connectorSet")
        if raw_set is not None:
            connector_set = {c for c in raw_set.split(",") if c}
            unknown = sorted(connector_set - set(CONNECTOR_TYPES))
            if unknown or not connector_set:
                raise self._invalid(request, "connectorSet", f"Unsupported connector type(s): {', '.join(unknown) or '(empty)'}.")
        min_kw, max_kw = self._float_arg(request, "minPowerKW"), self._float_arg(request, "maxPowerKW")
        body = self.availability_body(availability_id, connector_set, min_kw, max_kw)
        return self._render(request, body, ext == "xml")

    def _search_error(self, status: int, message: str) -> HttpReply:
        """Search API errors use their own shape (`errorText`), not the EV one."""
        return HttpReply(Response.json({"errorText": message, "detailedError": {"message": message, "code": "BadRequest" if status == 400 else "Forbidden"},
                                        "httpStatusCode": status}, status))

    def _category_search(self, request: Request) -> Response:
        key = request.arg("key")
        if self.faults.bad_auth or not key or not hmac.compare_digest(key, self.api_key):
            raise self._search_error(403, "Not authorized: the API key is missing or invalid.")
        if request.params["ext"] != "json":
            raise self._search_error(400, "Unsupported response format (the simulator serves json).")
        query = unquote(request.params["query"])
        try:
            lat, lon = float(request.arg("lat", "nan") or "nan"), float(request.arg("lon", "nan") or "nan")
            radius = int(request.arg("radius", "10000") or 10000)
            limit = int(request.arg("limit", "10") or 10)
            ofs = int(request.arg("ofs", "0") or 0)
            categories = {int(c) for c in (request.arg("categorySet") or "").split(",") if c}
        except ValueError as exc:
            raise self._search_error(400, f"Error parsing a parameter: {exc}") from None
        if math.isnan(lat) or math.isnan(lon) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise self._search_error(400, "Error parsing 'lat'/'lon': a position is required with 'radius'.")
        if not (1 <= limit <= 100) or not (0 <= ofs <= 1900) or not (0 < radius <= 50_000):
            raise self._search_error(400, "Error parsing 'limit', 'ofs' or 'radius': out of range.")
        with self.lock:
            hits = sorted(
                ((distance_m(lat, lon, p.latitude, p.longitude), p) for p in self._near(lat, lon, radius)
                 if not categories or p.category in categories),
                key=lambda pair: (pair[0], pair[1].id),
            )
            results = [self._result(p, d, radius) for d, p in hits[ofs : ofs + limit]]
        body = {
            "summary": {"query": query, "queryType": "NEARBY", "queryTime": 7, "numResults": len(results), "offset": ofs,
                        "totalResults": len(hits), "fuzzyLevel": 1, "geoBias": {"lat": lat, "lon": lon}},
            "results": results,
        }
        return Response.json(body, 200, {"Tracking-ID": self._tracking(request), "Access-Control-Allow-Origin": "*"})

    def _result(self, poi: Poi, dist: float, radius: float) -> dict[str, Any]:
        label = "electric vehicle station" if poi.charging else next(c[1] for c in OTHER_CATEGORIES if c[0] == poi.category)
        code = "ELECTRIC_VEHICLE_STATION" if poi.charging else next(c[2] for c in OTHER_CATEGORIES if c[0] == poi.category)
        street, _, city = poi.address.partition(", ")
        result: dict[str, Any] = {
            "type": "POI",
            "id": poi.id,
            "score": round(2.5 * (1 - dist / max(radius, 1.0)) + 0.5, 5),
            "dist": round(dist, 6),
            "info": f"search:ev:{poi.id}",
            "poi": {
                "name": poi.name,
                "categorySet": [{"id": poi.category}],
                "categories": [label],
                "classifications": [{"code": code, "names": [{"nameLocale": "en-US", "name": label}]}],
            },
            "address": {
                "streetName": street.rsplit(" ", 1)[0], "municipality": city, "countryCode": ALPHA2.get(poi.country, poi.country[:2]),
                "country": COUNTRY_NAMES.get(poi.country, poi.country), "countryCodeISO3": poi.country, "freeformAddress": poi.address,
            },
            "position": {"lat": poi.latitude, "lon": poi.longitude},
            "entryPoints": [{"type": "main", "position": {"lat": poi.latitude, "lon": poi.longitude}}],
        }
        if poi.charging:
            result["chargingPark"] = {"connectors": [connector_details(level) for level in poi.levels]}
        if poi.availability_id:
            result["dataSources"] = {"chargingAvailability": {"id": poi.availability_id}}
        return result


def connector_details(level: PowerLevel) -> dict[str, Any]:
    """A `chargingPark.connectors` entry: type, rating and the electrical details that go with it."""
    kind, kw = level.connector_type, level.power_kw
    if kind in DC_TYPES or (kind == "Tesla" and kw > 22):
        volts, current_type = (500 if kw <= 50 else 920), "DC"
        amps = kw * 1000 / volts
    elif kw <= 7.4:
        volts, current_type, amps = 230, "AC1", kw * 1000 / 230
    else:
        volts, current_type, amps = 400, "AC3", kw * 1000 / (400 * math.sqrt(3))
    return {"connectorType": kind, "ratedPowerKW": kw, "voltageV": volts, "currentA": int(round(amps)), "currentType": current_type}


def availability_xml(body: dict[str, Any]) -> str:
    """The documented XML form of an availability response (one `perPowerLevel` per level)."""
    root = ET.Element("response")
    ET.SubElement(root, "chargingAvailability").text = str(body["chargingAvailability"])
    connectors = ET.SubElement(root, "connectors")
    for connector in body["connectors"]:
        item = ET.SubElement(connectors, "item")
        ET.SubElement(item, "type").text = connector["type"]
        ET.SubElement(item, "total").text = str(connector["total"])
        availability = ET.SubElement(item, "availability")
        current = ET.SubElement(availability, "current")
        for state in STATES:
            ET.SubElement(current, state).text = str(connector["availability"]["current"][state])
        for level in connector["availability"]["perPowerLevel"]:
            power = ET.SubElement(ET.SubElement(availability, "perPowerLevel"), "power")
            ET.SubElement(power, "powerKW").text = repr(float(level["powerKW"]))
            for state in STATES:
                ET.SubElement(power, state).text = str(level[state])
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")

