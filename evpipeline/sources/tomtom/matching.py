"""Which TomTom POI is a charging location: distance and connector types, and never a guess.

Rules (thresholds in `MatchRules`):
1. Candidates are charging POIs (category 7309, with a `chargingPark`) the search returned within
   its radius (150 m by default).
2. A candidate is eligible when it is at most `max_distance_m` (100 m) away and its connector
   types overlap the location's by at least `min_overlap` (Jaccard, 0.5). OCPI standard + format
   become TomTom types as in the mapping-hints table (T2 SOCKET -> IEC62196Type2Outlet, ...).
3. Eligible candidates score `overlap * (1 - distance / max_distance_m)` and must reach `min_score`
   (0.3: identical connectors within 70 m, half of them within 40 m), so a lone weak candidate is
   not taken. The best is accepted only when it leads the runner-up by `min_margin` (0.25);
   otherwise the location is `ambiguous`.
4. An accepted POI without `dataSources.chargingAvailability` is `no_live_data`; with one, `matched`.
   Everything else is `unmatched`, with the reason. Ambiguous and unmatched locations are reported,
   never mapped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

EARTH_M = 6_371_000.0
EV_CATEGORY = 7309
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
# OCPI ConnectorType -> TomTom connector type; Type 2 depends on the format (socket or tethered cable).
OCPI_TO_TOMTOM: dict[str, str] = {
    "IEC_62196_T1": "IEC62196Type1",
    "IEC_62196_T1_COMBO": "IEC62196Type1CCS",
    "IEC_62196_T2_COMBO": "IEC62196Type2CCS",
    "IEC_62196_T3A": "IEC62196Type3",
    "IEC_62196_T3C": "IEC62196Type3",
    "CHADEMO": "Chademo",
    "TESLA_R": "Tesla",
    "TESLA_S": "Tesla",
    "GBT_AC": "GBT20234Part2",
    "GBT_DC": "GBT20234Part3",
    "IEC_60309_2_single_16": "IEC60309AC1PhaseBlue",
    "IEC_60309_2_three_16": "IEC60309AC3PhaseRed",
    "IEC_60309_2_three_32": "IEC60309AC3PhaseRed",
    "IEC_60309_2_three_64": "IEC60309AC3PhaseRed",
}


def tomtom_type(standard: str | None, connector_format: str | None) -> str | None:
    """The TomTom connector type of an OCPI connector, or None when there is no equivalent."""
    if not standard:
        return None
    if standard == "IEC_62196_T2":
        # A cable means a tethered connector; a socket (or an unstated format) is an outlet.
        return "IEC62196Type2CableAttached" if connector_format == "CABLE" else "IEC62196Type2Outlet"
    if standard.startswith("DOMESTIC_"):
        return "StandardHouseholdCountrySpecific"
    return OCPI_TO_TOMTOM.get(standard)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(a)))


def overlap(a: Iterable[str], b: Iterable[str]) -> float:
    """Jaccard overlap of two sets of connector types (0 when either is empty)."""
    left, right = set(a), set(b)
    return len(left & right) / len(left | right) if left and right else 0.0


@dataclass(frozen=True)
class MatchRules:
    max_distance_m: float = 100.0
    min_overlap: float = 0.5
    min_score: float = 0.3
    min_margin: float = 0.25


@dataclass(frozen=True)
class Location:
    """A mart location as the matcher sees it."""

    country_code: str
    party_id: str
    location_id: str
    source: str | None
    name: str | None
    latitude: float | None
    longitude: float | None
    connector_types: frozenset[str]

    @property
    def key(self) -> tuple[str, str, str]:
        return self.country_code, self.party_id, self.location_id

    @property
    def position(self) -> tuple[float, float] | None:
        """(latitude, longitude), or None when either is missing or NaN."""
        if (
            self.latitude is None
            or self.longitude is None
            or math.isnan(self.latitude)
            or math.isnan(self.longitude)
        ):
            return None
        return self.latitude, self.longitude

    @property
    def has_position(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class Candidate:
    poi_id: str
    name: str | None
    latitude: float
    longitude: float
    distance_m: float
    connector_types: frozenset[str]
    availability_id: str | None
    overlap: float
    score: float


@dataclass(frozen=True)
class Match:
    location: Location
    status: str  # matched | no_live_data | ambiguous | unmatched
    best: Candidate | None = None
    runner_up: Candidate | None = None
    candidates: int | None = None
    reason: str | None = None


def candidates(location: Location, results: Sequence[dict[str, Any]], rules: MatchRules) -> list[Candidate]:
    """Charging POIs among search results, scored against the location, best first."""
    found = []
    assert location.latitude is not None and location.longitude is not None
    for result in results:
        poi = result.get("poi") or {}
        categories = {c.get("id") for c in poi.get("categorySet") or [] if isinstance(c, dict)}
        park = result.get("chargingPark")
        position = result.get("position") or {}
        if EV_CATEGORY not in categories and not isinstance(park, dict):
            continue  # a shop or a fuel station next door, not a charging park
        if not isinstance(position.get("lat"), int | float) or not isinstance(
            position.get("lon"), int | float
        ):
            continue
        types = frozenset(
            kind
            for c in (park or {}).get("connectors") or []
            if isinstance(c, dict) and (kind := c.get("connectorType"))
        )
        distance = distance_m(location.latitude, location.longitude, position["lat"], position["lon"])
        share = overlap(location.connector_types, types)
        score = share * max(0.0, 1 - distance / rules.max_distance_m)
        availability_id = ((result.get("dataSources") or {}).get("chargingAvailability") or {}).get("id")
        found.append(
            Candidate(
                str(result.get("id")),
                poi.get("name"),
                float(position["lat"]),
                float(position["lon"]),
                distance,
                types,
                availability_id or None,
                share,
                score,
            )
        )
    return sorted(found, key=lambda c: (-c.score, c.distance_m, c.poi_id))


def decide(
    location: Location,
    results: Sequence[dict[str, Any]] | None,
    rules: MatchRules = MatchRules(),
    radius_m: float = 150.0,
) -> Match:
    """Apply the rules above to one location and the results of a search around it."""
    if not location.has_position:
        return Match(location, "unmatched", reason="the location has no coordinates")
    if not location.connector_types:
        return Match(
            location,
            "unmatched",
            reason="the location has no connector type TomTom knows; not matched on distance alone",
        )
    found = candidates(location, results or [], rules)
    eligible = [
        c
        for c in found
        if c.distance_m <= rules.max_distance_m
        and c.overlap >= rules.min_overlap
        and c.score >= rules.min_score
    ]
    if not eligible:
        if not found:
            return Match(
                location, "unmatched", candidates=0, reason=f"no charging POI within {radius_m:.0f} m"
            )
        closest = found[0]  # the best score, else the nearest
        return Match(
            location,
            "unmatched",
            runner_up=closest,
            candidates=len(found),
            reason=(
                f"best charging POI {closest.poi_id} is {closest.distance_m:.0f} "
                f"m away with {closest.overlap:.0%} connector overlap, score {closest.score:.2f} "
                f"(needs <= {rules.max_distance_m:.0f} m, >= {rules.min_overlap:.0%} "
                f"overlap and score >= {rules.min_score:.2f})"
            ),
        )
    best = eligible[0]
    runner_up = eligible[1] if len(eligible) > 1 else None
    if runner_up is not None and best.score - runner_up.score < rules.min_margin:
        return Match(
            location,
            "ambiguous",
            best,
            runner_up,
            len(found),
            reason=(
                f"{best.poi_id} ({best.distance_m:.0f} m, {best.overlap:.0%}) and {runner_up.poi_id} "
                f"({runner_up.distance_m:.0f} m, {runner_up.overlap:.0%}) fit almost equally well"
            ),
        )
    if best.availability_id is None:
        return Match(
            location,
            "no_live_data",
            best,
            runner_up,
            len(found),
            reason="the matching POI has no live availability data",
        )
    return Match(location, "matched", best, runner_up, len(found))
