"""Fleet helpers: deterministic ids, names, addresses and coordinates per country, weighted choices,
and the charging parks simulators describe to TomTom's."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChargingPark:
    """A physical charging location as a map provider would know it (used to seed TomTom's POIs).

    `connectors` are (TomTom connector type, rated kW, count) triples, e.g.
    ("IEC62196Type2CCS", 150.0, 2). `ref` identifies the place in its own simulator (for tests).
    """

    ref: str
    name: str
    latitude: float
    longitude: float
    country: str  # ISO 3166 alpha-3
    connectors: tuple[tuple[str, float, int], ...]


def park_connectors(pairs: Iterable[tuple[str, float]]) -> tuple[tuple[str, float, int], ...]:
    """(type, kW, count) triples of a park, sorted, from one (type, kW) pair per connector."""
    return tuple((kind, kw, n) for (kind, kw), n in sorted(Counter(pairs).items()))


def det_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# Bounding boxes over land where chargers are (roughly); coordinates are then jittered.
REGIONS: dict[str, list[tuple[str, float, float]]] = {
    "NLD": [
        ("Amsterdam", 52.3676, 4.9041),
        ("Rotterdam", 51.9244, 4.4777),
        ("Utrecht", 52.0907, 5.1214),
        ("Den Haag", 52.0705, 4.3007),
        ("Eindhoven", 51.4416, 5.4697),
        ("Groningen", 53.2194, 6.5665),
        ("Tilburg", 51.5555, 5.0913),
        ("Almere", 52.3508, 5.2647),
        ("Breda", 51.5719, 4.7683),
        ("Nijmegen", 51.8126, 5.8372),
        ("Arnhem", 51.9851, 5.8987),
        ("Haarlem", 52.3874, 4.6462),
        ("Zwolle", 52.5168, 6.0830),
        ("Leiden", 52.1601, 4.4970),
        ("Maastricht", 50.8514, 5.6910),
    ],
    "BEL": [
        ("Gent", 51.0543, 3.7174),
        ("Antwerpen", 51.2194, 4.4025),
        ("Brussel", 50.8503, 4.3517),
        ("Leuven", 50.8798, 4.7005),
        ("Brugge", 51.2093, 3.2247),
    ],
    "NOR": [
        ("Oslo", 59.9139, 10.7522),
        ("Bergen", 60.3913, 5.3221),
        ("Trondheim", 63.4305, 10.3951),
        ("Stavanger", 58.9700, 5.7331),
        ("Drammen", 59.7439, 10.2045),
    ],
    "NZL": [
        ("Auckland", -36.8485, 174.7633),
        ("Wellington", -41.2866, 174.7756),
        ("Christchurch", -43.5321, 172.6362),
        ("Hamilton", -37.7870, 175.2793),
        ("Tauranga", -37.6878, 176.1651),
        ("Dunedin", -45.8788, 170.5028),
        ("Napier", -39.4928, 176.9120),
        ("Nelson", -41.2706, 173.2840),
        ("Queenstown", -45.0312, 168.6626),
    ],
}
# Dutch cities by NUTS-1 region (NUTS 2021 = 2024: NL1 Noord-, NL2 Oost-, NL3 West-, NL4 Zuid-Nederland),
# for a fleet that operates in one region. Only cities whose surroundings within REGION_SPREAD_KM lie
# in the region: Almere (Huizen, NL3), Nijmegen (Mook and Cuijk, NL4) and Maastricht (Belgium) do not.
NUTS1_CITIES: dict[str, list[tuple[str, float, float]]] = {
    "NL1": [("Groningen", 53.2194, 6.5665), ("Leeuwarden", 53.2012, 5.7999), ("Assen", 52.9925, 6.5649)],
    "NL2": [
        ("Arnhem", 51.9851, 5.8987),
        ("Zwolle", 52.5168, 6.0830),
        ("Apeldoorn", 52.2112, 5.9699),
        ("Deventer", 52.2551, 6.1639),
    ],
    "NL3": [
        ("Amsterdam", 52.3676, 4.9041),
        ("Rotterdam", 51.9244, 4.4777),
        ("Utrecht", 52.0907, 5.1214),
        ("Den Haag", 52.0705, 4.3007),
        ("Haarlem", 52.3874, 4.6462),
        ("Leiden", 52.1601, 4.4970),
    ],
    "NL4": [("Eindhoven", 51.4416, 5.4697), ("Tilburg", 51.5555, 5.0913), ("Breda", 51.5719, 4.7683)],
}
REGION_SPREAD_KM = 8.0
STREETS: dict[str, list[str]] = {
    "NLD": [
        "Kerkstraat",
        "Stationsplein",
        "Dorpsstraat",
        "Molenweg",
        "Schoolstraat",
        "Marktplein",
        "Julianalaan",
        "Beatrixstraat",
        "Parkweg",
        "Industrieweg",
        "Havenstraat",
        "Prins Hendrikkade",
        "Oranjelaan",
        "Kanaalweg",
    ],
    "BEL": ["Kerkstraat", "Stationsstraat", "Veldstraat", "F. Rooseveltlaan", "Nieuwstraat", "Grote Markt"],
    "NOR": ["Storgata", "Kirkeveien", "Sjøgata", "Parkveien", "Skolegata", "Bygdøy allé", "Trondheimsveien"],
    "NZL": [
        "Great South Road",
        "Queen Street",
        "State Highway 1",
        "Victoria Street",
        "Main Road",
        "Beach Road",
    ],
}
POSTCODES: dict[str, Callable[[random.Random], str]] = {
    "NLD": lambda r: f"{r.randint(1000, 9999)} {chr(65 + r.randint(0, 25))}{chr(65 + r.randint(0, 25))}",
    "BEL": lambda r: f"{r.randint(1000, 9999)}",
    "NOR": lambda r: f"{r.randint(0, 9999):04d}",
    "NZL": lambda r: f"{r.randint(100, 9999):04d}",
}
TIME_ZONES = {
    "NLD": "Europe/Amsterdam",
    "BEL": "Europe/Brussels",
    "NOR": "Europe/Oslo",
    "NZL": "Pacific/Auckland",
}


@dataclass(frozen=True)
class Place:
    country: str
    city: str
    street: str
    house_number: int
    postal_code: str
    latitude: float
    longitude: float

    @property
    def address(self) -> str:
        return f"{self.street} {self.house_number}"


def random_place(
    rng: random.Random, country: str, spread_km: float = 6.0, region: str | None = None
) -> Place:
    """A place in `country`; with a NUTS-1 `region` (NUTS1_CITIES), in that region
    (within REGION_SPREAD_KM of a city)."""
    if region is not None:
        spread_km = min(spread_km, REGION_SPREAD_KM)
    city, lat, lon = rng.choice(NUTS1_CITIES[region] if region is not None else REGIONS[country])
    dlat = rng.uniform(-1, 1) * spread_km / 111.0
    dlon = rng.uniform(-1, 1) * spread_km / (111.0 * max(0.2, math.cos(math.radians(lat))))
    return Place(
        country=country,
        city=city,
        street=rng.choice(STREETS[country]),
        house_number=rng.randint(1, 240),
        postal_code=POSTCODES[country](rng),
        latitude=round(lat + dlat, 6),
        longitude=round(lon + dlon, 6),
    )


def weighted(rng: random.Random, choices: Iterable[tuple[Any, float]]) -> Any:
    items = list(choices)
    return rng.choices([c for c, _ in items], weights=[w for _, w in items], k=1)[0]
