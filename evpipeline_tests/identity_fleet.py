"""Two sources reporting an overlapping fleet, with the truth of which locations are one place.

Zaptec (party ZPT) reports every site; GreenFlux, the OCPP back office of some of them, reports a
share of the same chargers again, as such a feed really does: its own ids, coordinates 3-25 m
away, the address written differently (case, `straat` -> `str.`, `12a` -> `12 A` / `12-a`), a name of
its own, the eMI3 EVSE ids for half of them (absent for the other half) and now and then one EVSE
fewer. Near misses that are *not* the same place are mixed in: another operator's site on the same
street 10-60 m away, a second operator on the same car park (same address, a few metres), the same
operator's next site on the street 90-140 m away, and GreenFlux sites of their own elsewhere.

Sites are spread over the Dutch cities of the simulators' fleet helper, about one per 2 hectares, so
unrelated sites rarely fall within the matching radius (as on a real map, where they sometimes do).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from evpipeline.simulators.toolkit.fleet import REGIONS
from evpipeline_tests.mart_fixture import MartRows

STREETS = [
    "Kerkstraat",
    "Stationsstraat",
    "Dorpsstraat",
    "Molenweg",
    "Schoolstraat",
    "Julianalaan",
    "Marktplein",
]
ABBREVIATIONS = {"straat": "str.", "laan": "ln.", "weg": "wg.", "plein": "pln."}
CONNECTORS = [("IEC_62196_T2", "AC_3_PHASE", 230, 32, 22080), ("IEC_62196_T2_COMBO", "DC", 920, 125, 50000)]


def key(row: dict) -> str:
    return f"{row['country_code']}:{row['party_id']}:{row['location_id']}"


@dataclass
class Overlap:
    rows: MartRows = field(default_factory=MartRows)
    truth: set[frozenset[str]] = field(default_factory=set)  # location key pairs that are one place
    near_misses: set[frozenset[str]] = field(default_factory=set)  # close pairs that are not
    zaptec: dict[int, dict] = field(default_factory=dict)  # site number -> its Zaptec location row
    greenflux: dict[int, dict] = field(default_factory=dict)  # site number -> its GreenFlux duplicate


def _moved(lat: float, lon: float, metres: float, rng: random.Random) -> tuple[float, float]:
    bearing = rng.uniform(0, 2 * math.pi)
    return (
        lat + metres * math.cos(bearing) / 111_320,
        lon + metres * math.sin(bearing) / (111_320 * math.cos(math.radians(lat))),
    )


def _address_variant(street: str, number: int, suffix: str, rng: random.Random) -> str:
    for long, short in ABBREVIATIONS.items():
        if street.endswith(long) and rng.random() < 0.5:
            street = street[: -len(long)] + short
    written = (
        rng.choice([f"{number}{suffix}", f"{number} {suffix.upper()}", f"{number}-{suffix}"])
        if suffix
        else str(number)
    )
    text = f"{street} {written}".strip()
    return rng.choice([text, text.upper(), text.lower()])


def _site(
    o: Overlap,
    source: str,
    party: str,
    location_id: str,
    lat: float,
    lon: float,
    address: str,
    name: str,
    evses: int,
    kind: int,
    evse_ids: list[str | None],
) -> dict:
    loc = o.rows.location(
        0,
        party=party,
        location_id=location_id,
        source_id=location_id,
        source=source,
        latitude=lat,
        longitude=lon,
        address=address,
        name=name,
    )
    standard, power_type, volts, amps, watts = CONNECTORS[kind]
    for n in range(1, evses + 1):
        evse = o.rows.evse(loc, n, source=source, evse_id=evse_ids[n - 1], latitude=lat, longitude=lon)
        o.rows.connector(
            evse,
            1,
            source=source,
            standard=standard,
            power_type=power_type,
            max_voltage=volts,
            max_amperage=amps,
            max_electric_power=watts,
        )
    return loc


def overlap_fleet(sites: int, *, share: float = 0.3, near_miss: float = 0.1, seed: int = 26) -> Overlap:
    """`sites` Zaptec sites, `share` of them reported again by GreenFlux, `near_miss` of them with each
    kind of near miss, and as many GreenFlux-only sites as duplicates."""
    rng = random.Random(seed)
    o = Overlap()
    cities = REGIONS["NLD"]
    for i in range(sites):
        _city, clat, clon = cities[i % len(cities)]
        # ~2 ha per site: a square grid around the city centre, jittered within its cell
        per_city = i // len(cities)
        side = max(1, math.isqrt(sites // len(cities) + 1) + 1)
        lat = clat + (per_city // side) * 0.0013 + rng.uniform(0, 0.0006)
        lon = clon + (per_city % side) * 0.0021 + rng.uniform(0, 0.0009)
        street, number = rng.choice(STREETS), rng.randint(1, 200)
        suffix = rng.choice(["", "", "", "a", "b"])
        evses, kind = rng.choice([1, 2, 2, 3, 4]), int(rng.random() < 0.3)
        ids = [f"NL*ZPT*E{i:06d}{n}" for n in range(1, evses + 1)]
        z = _site(
            o,
            "zaptec",
            "ZPT",
            f"ZAP-{i:06d}",
            lat,
            lon,
            f"{street} {number}{suffix}",
            f"Laadpunt {street}",
            evses,
            kind,
            list(ids),
        )
        o.zaptec[i] = z
        roll = rng.random()
        if roll < share:
            glat, glon = _moved(lat, lon, rng.uniform(3, 25), rng)
            g_evses = evses - 1 if evses > 1 and rng.random() < 0.1 else evses
            g_ids: list[str | None] = list(ids[:g_evses]) if rng.random() < 0.5 else [None] * g_evses
            g = _site(
                o,
                "greenflux",
                "ZPT",
                f"GFX-{i:06d}",
                glat,
                glon,
                _address_variant(street, number, suffix, rng),
                rng.choice([f"Laadpunt {street}", f"ZPT {street} {number}", f"{street.upper()} laadplein"]),
                g_evses,
                kind,
                g_ids,
            )
            o.greenflux[i] = g
            o.truth.add(frozenset((key(z), key(g))))
        elif roll < share + near_miss:  # another operator's site on the same street, 10-60 m away
            nlat, nlon = _moved(lat, lon, rng.uniform(10, 60), rng)
            n = _site(
                o,
                "greenflux",
                "OTH",
                f"OTH-{i:06d}",
                nlat,
                nlon,
                f"{street} {number + 2}",
                f"Laadpunt {street}",
                evses,
                kind,
                [None] * evses,
            )
            o.near_misses.add(frozenset((key(z), key(n))))
        elif roll < share + 2 * near_miss:  # a second operator on the same car park
            nlat, nlon = _moved(lat, lon, rng.uniform(0, 8), rng)
            n = _site(
                o,
                "greenflux",
                "OTH",
                f"OTH-{i:06d}",
                nlat,
                nlon,
                f"{street} {number}{suffix}",
                f"Parkeerterrein {street}",
                2,
                kind,
                [None, None],
            )
            o.near_misses.add(frozenset((key(z), key(n))))
        elif roll < share + 3 * near_miss:  # the same operator's next site on the street, 90-140 m away
            nlat, nlon = _moved(lat, lon, rng.uniform(90, 140), rng)
            n = _site(
                o,
                "greenflux",
                "ZPT",
                f"GFN-{i:06d}",
                nlat,
                nlon,
                f"{street} {number + 20}",
                f"Laadpunt {street}",
                evses,
                kind,
                [f"NL*ZPT*N{i:06d}{k}" for k in range(1, evses + 1)],
            )
            o.near_misses.add(frozenset((key(z), key(n))))
        elif roll < 2 * share + 3 * near_miss:  # a GreenFlux site of its own, far from any Zaptec one
            olat, olon = lat + 0.4, lon - 0.4
            _site(
                o,
                "greenflux",
                "ZPT",
                f"GFO-{i:06d}",
                olat,
                olon,
                f"Havenweg {number}",
                "Laadpunt Haven",
                2,
                kind,
                [None, None],
            )
    return o
