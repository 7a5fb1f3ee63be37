"""Checks 2 and 3: what a receiver reads in a schema-valid document, written out from the profile's
annotated examples (EnergyInfrastructureTablePublication / EnergyInfrastructureStatusPublication,
01-00-00 rev. 2), the schema set's own descriptions and Mobilithek's guideline. Never derived from
our publication code (`evpipeline.datex2`): a receiver sharing it would accept what we got wrong.

Every rule says where it comes from. Rules only read what is there and of the right type: a missing
or mistyped member is the schema's to report (check 1), and an error whose JSON path the schema
already named is not repeated (`merge`).

Static publication (`check_static`):
- S1 profile identity: `modelBaseVersionG` "3", `profileNameG` "AFIR Energy Infrastructure",
  `profileVersionG` "01-00-00" (both examples; Mobilithek's schema "AFIR-Recharging-Static-01-00-00").
  The payload carries `aegiEnergyInfrastructureTablePublication` (the schema makes it optional).
- S2 ids distinct per kind: table, site, station, charging point, energy rate, referenceable
  organisation, operating-hours specification. Kinds are separate id spaces: the official example
  gives an energy rate and an organisation the same id (A1633959-...). Parking spaces and
  supplemental facilities are not checked: the example says their ids "are not referenced anywhere
  and are therefore not otherwise relevant" (and reuses A6450D0F-... for two parking spaces).
- S3 references resolve inside the document: `energyRateByReference` -> an energy rate (the example:
  "the reference may also point to a tariff definition in a different EnergyInfrastructureSite or
  EnergyInfrastructureTable", i.e. anywhere in the publication), `refillPointByReference` -> a
  charging point, `afacOrganisationByReference.organisationReference` -> an
  `afacReferenceableOrganisation`, `afacOperatingHoursByReference.operatingHoursReference` -> an
  `afacOperatingHoursSpecification`; a `versionG` on the reference must be the target's. References
  into other publications (`organisationTableReference`, `operatingHoursTableReference`,
  `locLocationByReference`, `locLocationGroupByReference`) cannot resolve: an access point receiving
  this profile holds no organisation table or predefined-location publication.
- S4 a referenceable organisation is defined once and referenced elsewhere (the example: "the
  contract partner is referenced again later, hence as ReferenceableOrganisation"; the grid operator
  "already specified elsewhere and only referenced here"): a second definition with the same idG is
  refused even with the same content (the message says whether the content differs).
- S5 `availableChargingPower`: "the first value must be the maximum (mandatory)" (example, station 1).
- S6 every charging point has `currentType` (also required by the schema; named once).
- S7 `numberOfRefillPoints` equals the station's refill points (`refillPoint` plus
  `refillPointByReference`): the schema's description is "the number of refill points at the
  station" and both example stations say 2 with two refill points each.
- S8 every `latitude` within -90..90, `longitude` within -180..180, and every `posList`
  (srsDimension 2, "EPSG 4326 WGS84": latitude longitude pairs) likewise.
- S9 `publicationTime` ("Date/time at which the payload publication was created", schema) is not
  before the newest `lastUpdated` anywhere in the document; every `lastUpdated`/`publicationTime` is
  a date-time with a UTC offset (DATEX II DateTime: "a time zone property from which it is possible
  to determine ... the equivalent UTC time"; the schema's `format` is not asserted by validators).
- P1 (physics) a connector's `maxPowerAtSocket` is not above `voltage` x `maximumCurrent` x phases
  (+1 %), where both are given: phases 3 for an AC point whose `chargingMode` is three-phase
  (mode3AC3p; mode1AC3p and mode2AC3p are three-phase too, and counting them as one phase would refuse
  physically valid points), otherwise 1 (DC: P = U x I; AC without a three-phase mode: one phase).
- P2 (physics) every `availableChargingPower` value is > 0.

Status publication (`check_status`, against what the receiver holds):
- T1 the body is `{"messageContainer": ...}`; `exchangeContext.codedExchangeProtocol` is
  `snapshotPush` (complete state) or `deltaPush` (the points it names) (status example: "the key
  distinction"); `dynamicInformation.messageGenerationTimestamp` is present and a date-time.
- T2 every payload item carries `aegiEnergyInfrastructureStatusPublication` with the profile's
  identity (S1).
- T3 a static publication has been accepted first (the status is "related to and with reference to
  the static elements", guideline section 2).
- T4 `tableReference` and every site / station / charging-point `reference` names an object of the
  accepted static publication by `idG` and `versionG` ("for all references, make sure to use the
  element versionG"), of the right kind, in the static hierarchy (the station under its site, the
  point under its station); a version mismatch names both versions. A charging point appears once
  per delivery.
- T5 every `energyRateUpdate.energyRateReference.idG` was declared as an energy rate in the static
  publication ("the ID must already have been declared in the static part").
- T6 a point's `lastUpdated` never goes backwards relative to the status the receiver holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PROFILE: tuple[tuple[str, str], ...] = (
    ("modelBaseVersionG", "3"),
    ("profileNameG", "AFIR Energy Infrastructure"),
    ("profileVersionG", "01-00-00"),
)
STATIC_PUB = "aegiEnergyInfrastructureTablePublication"
STATUS_PUB = "aegiEnergyInfrastructureStatusPublication"
PROTOCOLS = ("snapshotPush", "deltaPush")

TABLE, SITE, STATION, POINT = "table", "site", "station", "charging point"
RATE, ORGANISATION, HOURS = "energy rate", "referenceable organisation", "operating hours specification"
KINDS = (TABLE, SITE, STATION, POINT, RATE, ORGANISATION, HOURS)

# References resolved inside the document: key -> (member holding the reference, kind it points at).
# None as member: the value itself is the reference (or a list of them).
_RESOLVED: dict[str, tuple[str | None, str]] = {
    "energyRateByReference": (None, RATE),
    "refillPointByReference": (None, POINT),
    "afacOrganisationByReference": ("organisationReference", ORGANISATION),
    "afacOperatingHoursByReference": ("operatingHoursReference", HOURS),
}
# References into publications this receiver does not hold (see S3).
_ELSEWHERE = {
    "organisationTableReference": "an organisation table publication",
    "operatingHoursTableReference": "an operating hours table publication",
    "locLocationByReference": "a predefined location publication",
    "locLocationGroupByReference": "a predefined location group publication",
}
_DEFINITIONS = {"afacReferenceableOrganisation": ORGANISATION, "afacOperatingHoursSpecification": HOURS}
_THREE_PHASE = {"mode1AC3p", "mode2AC3p", "mode3AC3p"}
TOLERANCE = 0.01

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 date-time with its offset, as an aware datetime; None if it is not one."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # Python takes at most microseconds
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{whole.upper()}{fraction}{zone}")
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _value(enum: Any) -> Any:
    """The `value` of a DATEX II enum wrapper `{"value": ...}`."""
    return _dict(enum).get("value")


def _g(value: float) -> str:
    return f"{value:g}"


@dataclass
class Defined:
    """One identifiable object of the static publication."""

    kind: str
    id: str
    version: str | None
    path: str
    obj: dict[str, Any]
    parent: str | None = None  # the table of a site, the site of a station, the station of a point


@dataclass
class StaticIndex:
    """What a receiver keeps of an accepted static publication: its objects by kind and id."""

    objects: dict[str, dict[str, Defined]] = field(default_factory=lambda: {k: {} for k in KINDS})
    station_points: dict[str, list[str]] = field(default_factory=dict)  # station -> its points, by id
    publication_time: str | None = None

    def find(self, kind: str, object_id: str) -> Defined | None:
        return self.objects[kind].get(object_id)

    def counts(self) -> dict[str, int]:
        connectors = sum(len(_list(d.obj.get("connector"))) for d in self.objects[POINT].values())
        return {
            "tables": len(self.objects[TABLE]),
            "sites": len(self.objects[SITE]),
            "stations": len(self.objects[STATION]),
            "charging_points": len(self.objects[POINT]),
            "connectors": connectors,
            "energy_rates": len(self.objects[RATE]),
            "organisations": len(self.objects[ORGANISATION]),
        }


@dataclass
class StaticReading:
    index: StaticIndex
    meaning: list[str]
    physics: list[str]


def merge(schema: list[str], *others: list[str]) -> list[str]:
    """All errors in order, schema first; a later error at a JSON path the schema already named
    (e.g. a missing `currentType`) is not said twice. Later errors are never merged among themselves."""
    named = {e.partition(": ")[0] for e in schema}
    return schema + [e for errors in others for e in errors if e.partition(": ")[0] not in named]


def _profile(payload: dict[str, Any], path: str) -> Iterator[str]:
    """S1 / T2: the profile this receiver validates against."""
    for name, expected in PROFILE:
        got = payload.get(name)
        if got != expected:
            said = "missing" if got is None else json.dumps(got)
            yield (
                f"{path}.{name}: {said}, but this receiver takes the profile with {name} "
                f"{json.dumps(expected)}"
            )


# --------------------------------------------------------------------------------------------
# Static publication


class _StaticReader:
    def __init__(self) -> None:
        self.index = StaticIndex()
        self.rule_errors: dict[str, list[str]] = {
            r: [] for r in ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "P1", "P2")
        }
        self.references: list[tuple[str, str, dict[str, Any]]] = []  # (kind, path, reference)
        self.stamps: list[tuple[str, Any]] = []  # every lastUpdated: (path, value)

    def error(self, rule: str, text: str) -> None:
        self.rule_errors[rule].append(text)

    def define(self, kind: str, obj: dict[str, Any], path: str, parent: str | None = None) -> str | None:
        object_id = obj.get("idG")
        if not isinstance(object_id, str):
            return None
        version = obj.get("versionG") if isinstance(obj.get("versionG"), str) else None
        known = self.index.objects[kind]
        first = known.get(object_id)
        if first is None:
            known[object_id] = Defined(kind, object_id, version, path, obj, parent)
        elif kind == ORGANISATION:  # S4
            same = "identical content" if first.obj == obj else "different content"
            self.error(
                "S4",
                f"{path}.idG: {kind} '{object_id}' is defined again ({same}; first at {first.path}): "
                "define it once and refer to it with afacOrganisationByReference",
            )
        else:  # S2
            self.error("S2", f"{path}.idG: {kind} id '{object_id}' is not unique (also at {first.path})")
        return object_id

    # -- the hierarchy: table > site > station > refill point ---------------------------------
    def hierarchy(self, publication: dict[str, Any], path: str) -> None:
        for t, table in enumerate(_list(publication.get("energyInfrastructureTable"))):
            tpath = f"{path}.energyInfrastructureTable[{t}]"
            table_id = self.define(TABLE, _dict(table), tpath)
            for s, site in enumerate(_list(_dict(table).get("energyInfrastructureSite"))):
                spath = f"{tpath}.energyInfrastructureSite[{s}]"
                site_id = self.define(SITE, _dict(site), spath, table_id)
                for n, station in enumerate(_list(_dict(site).get("energyInfrastructureStation"))):
                    self.station(_dict(station), f"{spath}.energyInfrastructureStation[{n}]", site_id)

    def station(self, station: dict[str, Any], path: str, site_id: str | None) -> None:
        station_id = self.define(STATION, station, path, site_id)
        points: list[str] = []
        refill = _list(station.get("refillPoint"))
        for r, item in enumerate(refill):
            point = _dict(item).get("aegiElectricChargingPoint")
            if isinstance(point, dict):
                point_id = self.define(
                    POINT, point, f"{path}.refillPoint[{r}].aegiElectricChargingPoint", station_id
                )
                if point_id is not None:
                    points.append(point_id)
                self.point(point, f"{path}.refillPoint[{r}].aegiElectricChargingPoint")
        by_reference = _list(station.get("refillPointByReference"))
        points += [
            ref["idG"] for ref in by_reference if isinstance(ref, dict) and isinstance(ref.get("idG"), str)
        ]
        if station_id is not None:
            self.index.station_points.setdefault(station_id, []).extend(points)
        declared = station.get("numberOfRefillPoints")
        present = len(refill) + len(by_reference)
        if isinstance(declared, int) and not isinstance(declared, bool) and declared != present:  # S7
            self.error(
                "S7",
                f"{path}.numberOfRefillPoints: {declared}, but the station has {present} refill point"
                f"{'s' if present != 1 else ''} (refillPoint + refillPointByReference)",
            )

    def point(self, point: dict[str, Any], path: str) -> None:
        powers = [
            (k, p)
            for k, v in enumerate(_list(point.get("availableChargingPower")))
            if (p := _number(v)) is not None
        ]
        if powers and powers[0][1] < max(p for _, p in powers):  # S5
            self.error(
                "S5",
                f"{path}.availableChargingPower: the first value ({_g(powers[0][1])}) must be the maximum "
                f"({_g(max(p for _, p in powers))})",
            )
        for k, p in powers:  # P2
            if p <= 0:
                self.error(
                    "P2",
                    f"{path}.availableChargingPower[{k}]: {_g(p)} W; charging power must be greater than 0",
                )
        if "currentType" not in point:  # S6
            self.error(
                "S6", f"{path}.currentType: required property is missing (every charging point says ac or dc)"
            )
        mode = _value(point.get("chargingMode"))
        ac = _value(point.get("currentType")) == "ac"
        phases = 3 if ac and mode in _THREE_PHASE else 1
        for c, connector in enumerate(_list(point.get("connector"))):  # P1
            connector = _dict(connector)
            power, volts, amps = (
                _number(connector.get(n)) for n in ("maxPowerAtSocket", "voltage", "maximumCurrent")
            )
            if power is None or volts is None or amps is None:
                continue
            bound = volts * amps * phases
            if power > bound * (1 + TOLERANCE):
                self.error(
                    "P1",
                    f"{path}.connector[{c}].maxPowerAtSocket: {_g(power)} "
                    f"W is above voltage x maximumCurrent x phases = {_g(volts)} V x {_g(amps)} "
                    f"A x {phases} = {_g(bound)} W (chargingMode {mode or 'absent'}, "
                    f"currentType {_value(point.get('currentType'))}; 1 % tolerance)",
                )

    # -- everything found anywhere: energy rates, organisations, references, coordinates, stamps --
    def walk(self, node: Any, path: str) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                self.walk(item, f"{path}[{i}]")
            return
        if not isinstance(node, dict):
            return
        self.coordinates(node, path)
        for key, value in node.items():
            here = f"{path}.{key}"
            if key == "lastUpdated":
                self.stamps.append((here, value))
            elif key == "energyRate" and isinstance(value, list):
                for i, rate in enumerate(value):
                    if isinstance(rate, dict):
                        self.define(RATE, rate, f"{here}[{i}]")
            elif key in _DEFINITIONS and isinstance(value, dict):
                self.define(_DEFINITIONS[key], value, here)
            elif key in _RESOLVED:
                member, kind = _RESOLVED[key]
                refs = value.get(member) if member and isinstance(value, dict) else value
                where = f"{here}.{member}" if member else here
                if isinstance(refs, list):
                    self.references += [
                        (kind, f"{where}[{i}]", r) for i, r in enumerate(refs) if isinstance(r, dict)
                    ]
                elif isinstance(refs, dict):
                    self.references.append((kind, where, refs))
            elif key in _ELSEWHERE:
                self.error(
                    "S3",
                    f"{here}: points into {_ELSEWHERE[key]}, which this receiver does not hold; "
                    "define the object in this publication",
                )
            elif key.endswith("ByReference"):
                self.error("S3", f"{here}: this receiver cannot resolve {key}")
            self.walk(value, here)

    def coordinates(self, node: dict[str, Any], path: str) -> None:  # S8
        for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
            value = _number(node.get(name))
            if value is not None and not -bound <= value <= bound:
                self.error(
                    "S8", f"{path}.{name}: {_g(value)} is outside the WGS84 range -{_g(bound)}..{_g(bound)}"
                )
        pos_list = node.get("posList")
        if isinstance(pos_list, str) and node.get("srsDimension", 2) == 2:
            try:
                numbers = [float(x) for x in pos_list.split()]
            except ValueError:
                self.error("S8", f"{path}.posList: not a list of numbers")
                return
            if len(numbers) % 2:
                self.error("S8", f"{path}.posList: {len(numbers)} values, not latitude/longitude pairs")
            for i, (lat, lon) in enumerate(zip(numbers[::2], numbers[1::2], strict=False)):
                if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    self.error(
                        "S8", f"{path}.posList: pair {i} ({_g(lat)} {_g(lon)}) is outside the WGS84 ranges"
                    )

    def resolve(self) -> None:  # S3
        for kind, path, ref in self.references:
            target_id = ref.get("idG")
            if not isinstance(target_id, str):
                continue
            target = self.index.find(kind, target_id)
            if target is None:
                self.error(
                    "S3",
                    f"{path}.idG: refers to {kind} '{target_id}', which is not defined in this publication",
                )
            elif isinstance(ref.get("versionG"), str) and ref["versionG"] != target.version:
                self.error(
                    "S3",
                    f"{path}.versionG: refers to version '{ref['versionG']}' of {kind} '{target_id}', "
                    f"but this publication defines version '{target.version}' (at {target.path})",
                )

    def times(self, publication: dict[str, Any], path: str) -> None:  # S9
        created_text = publication.get("publicationTime")
        created = parse_time(created_text)
        if isinstance(created_text, str) and created is None:
            self.error(
                "S9",
                f"{path}.publicationTime: {json.dumps(created_text)} is not a date-time with a UTC offset "
                "(RFC 3339)",
            )
        newest: tuple[datetime, str, str] | None = None
        for where, text in self.stamps:
            stamp = parse_time(text)
            if stamp is None:
                if isinstance(text, str):
                    self.error(
                        "S9", f"{where}: {json.dumps(text)} is not a date-time with a UTC offset (RFC 3339)"
                    )
                continue
            if newest is None or stamp > newest[0]:
                newest = (stamp, text, where)
        if created is not None and newest is not None and created < newest[0]:
            self.error(
                "S9",
                f"{path}.publicationTime: {created_text} is before the newest lastUpdated in the document "
                f"({newest[1]} at {newest[2]}); publicationTime is when the publication was created",
            )


def check_static(document: Any) -> StaticReading:
    """Meaning and physics errors of a static publication body, and the index of what it defines."""
    reader = _StaticReader()
    payload = _dict(document).get("payload")
    if isinstance(document, dict) and "payload" not in document:
        reader.error("S1", "$.payload: required property is missing")
    if isinstance(payload, dict):
        reader.rule_errors["S1"] += _profile(payload, "$.payload")
        publication = payload.get(STATIC_PUB)
        path = f"$.payload.{STATIC_PUB}"
        if publication is None:
            reader.error("S1", f"{path}: required property is missing")
        elif isinstance(publication, dict):
            reader.index.publication_time = (
                publication.get("publicationTime")
                if isinstance(publication.get("publicationTime"), str)
                else None
            )
            reader.hierarchy(publication, path)
            reader.walk(publication, path)
            reader.resolve()
            reader.times(publication, path)
    errors = reader.rule_errors
    meaning = [e for rule in ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9") for e in errors[rule]]
    return StaticReading(reader.index, meaning, errors["P1"] + errors["P2"])


# --------------------------------------------------------------------------------------------
# Status publication


@dataclass
class PointUpdate:
    """The status of one charging point as a delivery states it."""

    id: str
    version: str | None
    station: str | None
    site: str | None
    status: Any
    last_updated: str | None
    rate_updates: dict[str, dict[str, Any]]
    raw: dict[str, Any]


@dataclass
class StatusReading:
    protocol: str | None
    errors: list[str]
    points: list[PointUpdate] = field(default_factory=list)
    station_rates: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=dict
    )  # station -> rate -> update
    counts: dict[str, int] = field(default_factory=dict)


class _StatusReader:
    def __init__(self, static: StaticIndex | None, held: Mapping[str, str | None]) -> None:
        self.static, self.held = static, held
        self.errors: list[str] = []
        self.points: list[PointUpdate] = []
        self.seen: dict[str, str] = {}  # point id -> path of its first status in this delivery
        self.station_rates: dict[str, dict[str, dict[str, Any]]] = {}
        self.counts = {"sites": 0, "stations": 0, "charging_points": 0, "energy_rate_updates": 0}

    def resolve(self, kind: str, ref: Any, path: str) -> Defined | None:
        """T4: an object of the accepted static publication, by idG and versionG."""
        assert self.static is not None
        ref = _dict(ref)
        target_id = ref.get("idG")
        if not isinstance(target_id, str):
            return None  # the schema names it
        target = self.static.find(kind, target_id)
        if target is None:
            self.errors.append(f"{path}.idG: no {kind} '{target_id}' in the accepted static publication")
            return None
        version = ref.get("versionG")
        if version is None:
            self.errors.append(
                f"{path}.versionG: required: a status names the version of the static {kind} it refers to "
                f"(the accepted static publication has version '{target.version}')"
            )
        elif version != target.version:
            self.errors.append(
                f"{path}.versionG: {kind} '{target_id}' is version '{version}' here, but version "
                f"'{target.version}' in the accepted static publication"
            )
        return target

    def rate_updates(self, updates: Any, path: str) -> dict[str, dict[str, Any]]:
        """T5: each update overrides a rate the static part declared."""
        assert self.static is not None
        found: dict[str, dict[str, Any]] = {}
        for k, update in enumerate(_list(updates)):
            update = _dict(update)
            rate_id = _dict(update.get("energyRateReference")).get("idG")
            if not isinstance(rate_id, str):
                continue
            self.counts["energy_rate_updates"] += 1
            if self.static.find(RATE, rate_id) is None:
                self.errors.append(
                    f"{path}.energyRateUpdate[{k}].energyRateReference.idG: energy rate '{rate_id}' was not "
                    "declared in the accepted static publication"
                )
                continue
            found[rate_id] = {
                "lastUpdated": update.get("lastUpdated"),
                "energyPrice": update.get("energyPrice", []),
            }
        return found

    def publication(self, publication: dict[str, Any], path: str) -> None:
        assert self.static is not None
        tables: set[str] = set()
        for k, ref in enumerate(_list(publication.get("tableReference"))):
            table = self.resolve(TABLE, ref, f"{path}.tableReference[{k}]")
            if table is not None:
                tables.add(table.id)
        for s, site_status in enumerate(_list(publication.get("energyInfrastructureSiteStatus"))):
            spath = f"{path}.energyInfrastructureSiteStatus[{s}]"
            site_status = _dict(site_status)
            self.counts["sites"] += 1
            site = self.resolve(SITE, site_status.get("reference"), f"{spath}.reference")
            if site is not None and tables and site.parent not in tables:
                self.errors.append(
                    f"{spath}.reference.idG: site '{site.id}' is in table '{site.parent}', which "
                    "tableReference does not name"
                )
            for n, station_status in enumerate(_list(site_status.get("energyInfrastructureStationStatus"))):
                self.station(_dict(station_status), f"{spath}.energyInfrastructureStationStatus[{n}]", site)

    def station(self, station_status: dict[str, Any], path: str, site: Defined | None) -> None:
        assert self.static is not None
        self.counts["stations"] += 1
        station = self.resolve(STATION, station_status.get("reference"), f"{path}.reference")
        if station is not None and site is not None and station.parent != site.id:
            self.errors.append(
                f"{path}.reference.idG: station '{station.id}' belongs to site '{station.parent}', "
                f"not to site '{site.id}'"
            )
        rates = self.rate_updates(station_status.get("energyRateUpdate"), path)
        if station is not None and rates:
            self.station_rates.setdefault(station.id, {}).update(rates)
        for r, item in enumerate(_list(station_status.get("refillPointStatus"))):
            item = _dict(item)
            for member in ("aegiElectricChargingPointStatus", "aegiRefillPointStatus"):
                if isinstance(item.get(member), dict):
                    self.point(item[member], f"{path}.refillPointStatus[{r}].{member}", station, site)

    def point(
        self, point_status: dict[str, Any], path: str, station: Defined | None, site: Defined | None
    ) -> None:
        assert self.static is not None
        self.counts["charging_points"] += 1
        point = self.resolve(POINT, point_status.get("reference"), f"{path}.reference")
        rates = self.rate_updates(point_status.get("energyRateUpdate"), path)
        if point is None:
            return
        if station is not None and point.id not in self.static.station_points.get(station.id, []):
            self.errors.append(
                f"{path}.reference.idG: charging point '{point.id}' is not a refill point of station "
                f"'{station.id}' (static: station '{point.parent}')"
            )
        if point.id in self.seen:
            self.errors.append(
                f"{path}.reference.idG: charging point '{point.id}' is named twice in this delivery "
                f"(first at {self.seen[point.id]})"
            )
            return
        self.seen[point.id] = path
        text = point_status.get("lastUpdated")
        stamp = parse_time(text)
        if isinstance(text, str) and stamp is None:
            self.errors.append(
                f"{path}.lastUpdated: {json.dumps(text)} is not a date-time with a UTC offset (RFC 3339)"
            )
        held_text = self.held.get(point.id)
        held = parse_time(held_text)
        if stamp is not None and held is not None and stamp < held:  # T6
            self.errors.append(
                f"{path}.lastUpdated: {text} is before {held_text}, the lastUpdated of the status the "
                f"receiver holds for charging point '{point.id}' (lastUpdated never goes backwards)"
            )
        self.points.append(
            PointUpdate(
                point.id,
                point.version,
                station.id if station else point.parent,
                site.id if site else None,
                _value(point_status.get("status")),
                text if isinstance(text, str) else None,
                rates,
                point_status,
            )
        )


def check_status(container: Any, static: StaticIndex | None, held: Mapping[str, str | None]) -> StatusReading:
    """Meaning errors of a status body's `messageContainer` (T1-T6) against the accepted static
    publication and the `lastUpdated` the receiver holds per charging point."""
    prefix = "$.messageContainer"
    reader = _StatusReader(static, held)
    container = _dict(container)
    exchange = _dict(container.get("exchangeInformation"))
    protocol = _value(_dict(exchange.get("exchangeContext")).get("codedExchangeProtocol"))
    if isinstance(protocol, str) and protocol not in PROTOCOLS:  # T1
        reader.errors.append(
            f"{prefix}.exchangeInformation.exchangeContext.codedExchangeProtocol.value: "
            f"{json.dumps(protocol)}; this receiver takes snapshotPush (the complete state) or deltaPush "
            "(the points it names)"
        )
    dynamic = _dict(exchange.get("dynamicInformation"))
    generated = dynamic.get("messageGenerationTimestamp")
    where = f"{prefix}.exchangeInformation.dynamicInformation.messageGenerationTimestamp"
    if "dynamicInformation" in exchange and generated is None:
        reader.errors.append(f"{where}: required property is missing")
    elif isinstance(generated, str) and parse_time(generated) is None:
        reader.errors.append(
            f"{where}: {json.dumps(generated)} is not a date-time with a UTC offset (RFC 3339)"
        )
    payload = container.get("payload")
    if "exchangeInformation" in container and not _list(payload):
        reader.errors.append(f"{prefix}.payload: no status publication in the message")
    if static is None:  # T3
        reader.errors.append(
            f"{prefix}: no static publication has been accepted yet; a status refers to one "
            "(POST the static publication first)"
        )
    for i, item in enumerate(_list(payload)):
        path = f"{prefix}.payload[{i}]"
        if not isinstance(item, dict):
            continue
        reader.errors += _profile(item, path)  # T2
        publication = item.get(STATUS_PUB)
        if publication is None:
            reader.errors.append(f"{path}.{STATUS_PUB}: required property is missing")
        elif isinstance(publication, dict) and static is not None:
            reader.publication(publication, f"{path}.{STATUS_PUB}")
    return StatusReading(
        protocol if isinstance(protocol, str) else None,
        reader.errors,
        reader.points,
        reader.station_rates,
        reader.counts,
    )


__all__ = [
    "HOURS",
    "KINDS",
    "ORGANISATION",
    "POINT",
    "PROFILE",
    "PROTOCOLS",
    "RATE",
    "SITE",
    "STATION",
    "TABLE",
    "Defined",
    "PointUpdate",
    "StaticIndex",
    "StaticReading",
    "StatusReading",
    "check_static",
    "check_status",
    "merge",
    "parse_time",
]
