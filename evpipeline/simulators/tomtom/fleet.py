"""TomTom's database: one POI per charging park the other providers describe (coordinates a few
metres off, TomTom's own name), most with a live-availability id, decoys around them, a spatial
index, and charging points whose states change over simulated time."""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from evpipeline.simulators.toolkit import (
    REGIONS,
    STREETS,
    ChargingPark,
    SimServer,
    park_connectors,
    random_place,
    weighted,
)

CONNECTOR_TYPES = (
    "StandardHouseholdCountrySpecific",
    "IEC62196Type1",
    "IEC62196Type1CCS",
    "IEC62196Type2CableAttached",
    "IEC62196Type2Outlet",
    "IEC62196Type2CCS",
    "IEC62196Type3",
    "Chademo",
    "GBT20234Part2",
    "GBT20234Part3",
    "IEC60309AC3PhaseRed",
    "IEC60309AC1PhaseBlue",
    "IEC60309DCWhite",
    "Tesla",
)
DC_TYPES = {"IEC62196Type1CCS", "IEC62196Type2CCS", "Chademo", "GBT20234Part3", "IEC60309DCWhite"}
STATES = ("available", "occupied", "reserved", "unknown", "outOfService")
EV_CATEGORY = 7309
OTHER_CATEGORIES = [
    (7311, "petrol station", "PETROL_STATION"),
    (7313, "parking garage", "PARKING_GARAGE"),
    (7315, "restaurant", "RESTAURANT"),
    (7332, "market", "MARKET"),
]
BRANDS = [
    "Fastned",
    "Shell Recharge",
    "Allego",
    "Ionity",
    "Vattenfall InCharge",
    "TotalEnergies",
    "Tesla",
    "EVBox",
    "ChargeNet",
]
# Synthetic fleets: (type, weight) and the ratings each type comes in.
SYNTHETIC_TYPES = [
    ("IEC62196Type2Outlet", 34),
    ("IEC62196Type2CCS", 25),
    ("IEC62196Type2CableAttached", 12),
    ("Chademo", 8),
    ("StandardHouseholdCountrySpecific", 5),
    ("Tesla", 5),
    ("IEC62196Type1", 3),
    ("IEC62196Type1CCS", 2),
    ("IEC60309AC3PhaseRed", 2),
    ("IEC62196Type3", 1),
    ("GBT20234Part2", 1),
    ("GBT20234Part3", 1),
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
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
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


class TomTomFleet(SimServer):
    """POIs (parks, decoys, twins and other categories) and the change process of their points."""

    live_share: float
    change_rate: float
    pois: list[Poi]
    by_availability: dict[str, Poi]
    by_ref: dict[str, Poi]
    _grid: dict[tuple[int, int], list[Poi]]
    _points: list[tuple[PowerLevel, int]]

    # -- fleet -------------------------------------------------------------------------------
    def _synthetic_parks(self, scale: float) -> list[ChargingPark]:
        rng = random.Random(f"tomtom:{self.seed}:fleet")
        parks = []
        for i in range(max(1, int(round(400 * scale)))):
            country = weighted(rng, [("NLD", 50), ("NOR", 20), ("BEL", 15), ("NZL", 15)])
            place = random_place(rng, country, spread_km=15)
            pairs: list[tuple[str, float]] = []
            for _ in range(weighted(rng, [(1, 45), (2, 40), (3, 15)])):
                kind = weighted(rng, SYNTHETIC_TYPES)
                power = rng.choice(
                    RATINGS["Tesla" if kind == "Tesla" else "DC" if kind in DC_TYPES else "AC"]
                )
                pairs.extend([(kind, power)] * rng.randint(1, 4))  # 1-4 points of this type and rating
            parks.append(
                ChargingPark(
                    f"synthetic-{i}",
                    f"{place.city} {place.street}",
                    place.latitude,
                    place.longitude,
                    country,
                    park_connectors(pairs),
                )
            )
        return parks

    def _build_fleet(self, parks: list[ChargingPark]) -> None:
        for park in parks:
            rng = random.Random(_digest("tomtom", self.seed, "park", park.ref))
            if not park.connectors:
                continue
            lat, lon = offset(park.latitude, park.longitude, rng.uniform(1.0, 12.0), rng.uniform(0, 360))
            types = {kind for kind, _, _ in park.connectors}
            # TomTom lists a place once, however many providers describe it.
            twin = next(
                (p for p in self._near(lat, lon, 15.0) if p.kind == "park" and p.connector_types == types),
                None,
            )
            if twin is not None:
                self.by_ref[park.ref] = twin
                continue
            live = rng.random() < self.live_share
            poi = self._add(
                Poi(
                    id=self._poi_id(park.ref),
                    name=self._tomtom_name(rng, park),
                    latitude=lat,
                    longitude=lon,
                    country=park.country,
                    address=self._address(rng, park.country, lat, lon),
                    levels=[
                        PowerLevel(kind, float(kw), self._initial_states(rng, count))
                        for kind, kw, count in park.connectors
                    ],
                    availability_id=self._availability_id(park.ref) if live else None,
                    ref=park.ref,
                    kind="park",
                )
            )
            self.by_ref[park.ref] = poi
            self._decoys(rng, poi, park)

    def _decoys(self, rng: random.Random, poi: Poi, park: ChargingPark) -> None:
        """Nearby POIs that a match by distance alone would pick wrongly."""
        types = sorted(poi.connector_types)
        if rng.random() < 0.6:  # another charging park 100-400 m away with other connectors
            others = [
                t
                for t in (
                    "IEC62196Type2Outlet",
                    "IEC62196Type2CCS",
                    "Chademo",
                    "IEC62196Type2CableAttached",
                    "StandardHouseholdCountrySpecific",
                    "Tesla",
                )
                if t not in types
            ]
            kind = rng.choice(others)
            lat, lon = offset(poi.latitude, poi.longitude, rng.uniform(100, 400), rng.uniform(0, 360))
            self.add_charging_poi(
                lat,
                lon,
                [(kind, 22.0 if kind not in DC_TYPES else 50.0, rng.randint(1, 4))],
                live=rng.random() < self.live_share,
                country=park.country,
                kind="decoy",
                rng=rng,
            )
        if rng.random() < 0.03:  # a second operator in the same car park, same connectors
            lat, lon = offset(poi.latitude, poi.longitude, rng.uniform(12, 30), rng.uniform(0, 360))
            self.add_charging_poi(
                lat,
                lon,
                [(lv.connector_type, lv.power_kw, len(lv.states)) for lv in poi.levels],
                live=True,
                country=park.country,
                kind="twin",
                rng=rng,
            )
        for _ in range(weighted(rng, [(0, 40), (1, 40), (2, 20)])):  # shops, fuel, parking around it
            category, label, _code = rng.choice(OTHER_CATEGORIES)
            lat, lon = offset(poi.latitude, poi.longitude, rng.uniform(5, 150), rng.uniform(0, 360))
            self._add(
                Poi(
                    self._poi_id(f"{park.ref}:other:{len(self.pois)}"),
                    f"{label.title()} {rng.randint(1, 99)}",
                    lat,
                    lon,
                    park.country,
                    self._address(rng, park.country, lat, lon),
                    category=category,
                    kind="other",
                )
            )

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
            return self._add(
                Poi(
                    id=self._poi_id(ref),
                    name=name or f"{rng.choice(BRANDS)} {address.rpartition(', ')[2]}",
                    latitude=latitude,
                    longitude=longitude,
                    country=country,
                    address=address,
                    levels=[
                        PowerLevel(t, float(kw), self._initial_states(rng, n)) for t, kw, n in connectors
                    ],
                    availability_id=self._availability_id(ref) if live else None,
                    kind=kind,
                )
            )

    def _add(self, poi: Poi) -> Poi:
        self.pois.append(poi)
        self._grid.setdefault(self._cell(poi.latitude, poi.longitude), []).append(poi)
        if poi.availability_id:
            self.by_availability[poi.availability_id] = poi
        for level in poi.levels:
            self._points.extend((level, i) for i in range(len(level.states)))
        return poi

    def _poi_id(self, ref: str) -> str:
        return str(
            528_009_000_000_000
            + int.from_bytes(_digest("tomtom", self.seed, "poi", ref)[:6]) % 999_999_999_999
        )

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
            candidates = [
                p
                for dl in range(-span_lat, span_lat + 1)
                for dn in range(-span_lon, span_lon + 1)
                for p in self._grid.get((clat + dl, clon + dn), ())
            ]
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
