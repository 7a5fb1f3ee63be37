"""DATEX II 3.7 publications (AFIR "Afir Energy Infrastructure" 01-00-00) from `mart`, streamed.

Two publications, both `EnergyInfrastructureTablePublication` (the only payload the DATEX II 3.7
schema set defines), in XML (`DATEXII_3_D2Payload.xsd`) or JSON (the JSON Schema of the same model):

- **static**: energy infrastructure table: Location -> EnergyInfrastructureSite; each EVSE -> one
  EnergyInfrastructureStation holding one ElectricChargingPoint (OCPI has no station level between
  location and EVSE; AFIR's authentication/payment methods are per station, OCPI's capabilities per
  EVSE); Connector -> Connector (in connector_id order; DATEX II connectors have no id). Operator and
  owner, coordinates, address, opening hours, connector type/format/charging mode/power/voltage/current,
  authentication and payment methods, energy mix where the model has them.
- **status**: the same sites/stations/points with id, version and `lastUpdated` only, plus the refill
  point status (rules.REFILL_POINT_STATUSES) in the refill point's extension element
  `refillPointStatus` in namespace `STATUS_NS` (XML `_refillPointExtension`, JSON
  `egiRefillPointExtensionG`): the 3.7 schema set has no status publication, and its extension points
  are open, so the document still validates.

Which objects: exactly the OCPI export's (`evpipeline.ndw.export.select_objects`: public locations in
the access point's countries, not deleted, every AFIR-mandatory element present), plus DATEX II's own
mandatory elements (a connector standard with no connectorType rule). Objects left out are listed
as `Rejection`s with their reasons.

Ids: site `CC:PARTY:LOCATION`, station and charging point `CC:PARTY:LOCATION:EVSE_UID` (the OCPI keys:
an EVSE uid is only unique within its location), the eMI3 evse_id as the point's
`externalIdentifier`. `version` and `lastUpdated`: the object's `last_updated` bumped to its newest
child, as in the OCPI export. Timestamps UTC (`YYYY-MM-DDTHH:MM:SSZ`); coordinates as xs:float
(IEEE single precision, the schema's type), written as the shortest text that round-trips.

Streaming: rows come from DuckDB in batches of `BATCH_ROWS` (one row per connector, ordered by
site/station/point), each site is rendered and written to `out` as soon as its rows are complete; no
more than one site is held in memory.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal
from xml.sax.saxutils import escape, quoteattr

import duckdb

from evpipeline.datex2 import rules
from evpipeline.ndw.export import nap_countries, rejection_rows, select_objects

BATCH_ROWS = 500
TS = "%Y-%m-%dT%H:%M:%SZ"
STATUS_NS = "urn:evpipeline:datex2:refill-point-status:1"

NS = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "egi": "http://datex2.eu/schema/3/energyInfrastructure",
    "fac": "http://datex2.eu/schema/3/facilities",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "locx": "http://datex2.eu/schema/3/locationExtension",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "st": STATUS_NS,
}
# Language of the publication (and of its names), from the first access-point country; countries
# with more than one official language have no rule and fall back to English.
LANGUAGES = {"NLD": "nl", "DEU": "de", "AUT": "de", "FRA": "fr", "DNK": "da", "SWE": "sv", "NOR": "no",
             "POL": "pl", "ITA": "it", "ESP": "es", "PRT": "pt", "NZL": "en", "GBR": "en", "IRL": "en"}


@dataclass(frozen=True)
class Rejection:
    """An object left out of the publication, with why (the ids that apply to its level)."""

    object: str  # Location | EVSE | Connector | Tariff
    country_code: str
    party_id: str
    location_id: str | None = None
    evse_uid: str | None = None
    connector_id: str | None = None
    tariff_id: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass
class PublicationStats:
    kind: str
    fmt: str
    published_at: datetime
    sites: int = 0
    stations: int = 0
    points: int = 0
    connectors: int = 0
    bytes: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # (field, model value) -> rows: values with no DATEX II rule (left out) or a lossy one (`other`).
    unmapped: dict[tuple[str, str], int] = field(default_factory=dict)


class EmptyPublicationError(ValueError):
    """Nothing to publish: DATEX II requires at least one site in the table."""


# ------------------------------------------------------------------------------------------------
# Selection


def _select(con: duckdb.DuckDBPyConnection, countries: list[str] | None) -> None:
    """The OCPI export's selection plus DATEX II's own mandatory elements, cascaded the same way."""
    select_objects(con, countries)
    known = ", ".join("'" + k + "'" for k in rules.CONNECTOR_TYPES)
    con.execute(f"""
        UPDATE _ndw_connectors v SET reasons = list_append(v.reasons, 'standard ' || c.standard || ' has no DATEX II connectorType rule')
        FROM mart.connectors c
        WHERE c.country_code = v.country_code AND c.party_id = v.party_id AND c.location_id = v.location_id
          AND c.evse_uid = v.evse_uid AND c.connector_id = v.connector_id
          AND c.standard IS NOT NULL AND c.standard NOT IN ({known});
        UPDATE _ndw_evses e SET reasons = list_append(e.reasons, 'no valid connectors')
        WHERE len(e.reasons) = 0 AND NOT EXISTS (
            SELECT 1 FROM _ndw_connectors c WHERE c.country_code = e.country_code AND c.party_id = e.party_id
              AND c.location_id = e.location_id AND c.evse_uid = e.evse_uid AND len(c.reasons) = 0);
        UPDATE _ndw_locations l SET reasons = list_append(l.reasons, 'no valid EVSEs')
        WHERE len(l.reasons) = 0 AND NOT EXISTS (
            SELECT 1 FROM _ndw_evses e WHERE e.country_code = l.country_code AND e.party_id = l.party_id
              AND e.location_id = l.location_id AND len(e.reasons) = 0);
    """)


def _rejections(con: duckdb.DuckDBPyConnection) -> list[Rejection]:
    return [Rejection(**{**row, "reasons": tuple(row["reasons"])}) for row in rejection_rows(con)]


def rejections(con: duckdb.DuckDBPyConnection, countries: list[str] | None = None) -> list[Rejection]:
    """Objects that cannot be published (missing mandatory element, invalid reference...), with reasons."""
    _select(con, countries)
    return _rejections(con)


_ROWS = f"""
    SELECT l.country_code, l.party_id, l.location_id, l.name, l.address, l.city, l.postal_code, l.country,
           CAST(CAST(l.latitude AS FLOAT) AS VARCHAR) AS lat, CAST(CAST(l.longitude AS FLOAT) AS VARCHAR) AS lon,
           CAST(l.opening_times AS VARCHAR) AS opening_times, CAST(l.energy_mix AS VARCHAR) AS energy_mix,
           CAST(l.operator AS VARCHAR) AS operator, CAST(l.owner AS VARCHAR) AS owner,
           strftime(max(greatest(l.last_updated, e.last_updated, c.last_updated)) OVER site, '{TS}') AS site_version,
           e.evse_uid, e.evse_id, CASE WHEN e.is_deleted THEN 'REMOVED' ELSE e.status END AS status,
           CAST(e.capabilities AS VARCHAR) AS capabilities,
           CAST(CAST(e.latitude AS FLOAT) AS VARCHAR) AS evse_lat, CAST(CAST(e.longitude AS FLOAT) AS VARCHAR) AS evse_lon,
           strftime(max(greatest(e.last_updated, c.last_updated)) OVER evse, '{TS}') AS evse_version,
           strftime(e.last_updated, '{TS}') AS evse_updated,
           c.connector_id, c.standard, c.format, c.power_type, c.max_voltage, c.max_amperage, c.max_electric_power
    FROM mart.connectors c
    JOIN _ndw_connectors vc USING (country_code, party_id, location_id, evse_uid, connector_id)
    JOIN mart.evses e USING (country_code, party_id, location_id, evse_uid)
    JOIN _ndw_evses ve USING (country_code, party_id, location_id, evse_uid)
    JOIN mart.locations l USING (country_code, party_id, location_id)
    JOIN _ndw_locations vl USING (country_code, party_id, location_id)
    WHERE len(vc.reasons) = 0 AND len(ve.reasons) = 0 AND len(vl.reasons) = 0
    WINDOW site AS (PARTITION BY l.country_code, l.party_id, l.location_id),
           evse AS (PARTITION BY l.country_code, l.party_id, l.location_id, e.evse_uid)
"""


def _batches(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    while batch := cur.fetchmany(BATCH_ROWS):
        for row in batch:
            yield dict(zip(names, row, strict=True))


def _sites(con: duckdb.DuckDBPyConnection, kind: str) -> Iterator[list[dict[str, Any]]]:
    """Rows grouped per site, in order; one site in memory at a time."""
    order = "ORDER BY country_code, party_id, location_id, evse_uid, connector_id"
    sql = f"SELECT * FROM ({_ROWS}) {order}"
    if kind == "status":  # one row per EVSE
        sql = f"SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY country_code, party_id, location_id, evse_uid ORDER BY connector_id) AS rn FROM ({_ROWS})) WHERE rn = 1 {order}"
    current: list[dict[str, Any]] = []
    key: tuple[str, str, str] | None = None
    for row in _batches(con, sql):
        row_key = (row["country_code"], row["party_id"], row["location_id"])
        if current and row_key != key:
            yield current
            current = []
        key = row_key
        current.append(row)
    if current:
        yield current


# ------------------------------------------------------------------------------------------------
# A small element tree, rendered as DATEX II XML or as DATEX II JSON


@dataclass
class El:
    """One DATEX II element. `wrap`: the JSON "G" wrapper key of a polymorphic element (its XML
    xsi:type when `xsi`); `many`: a JSON array; `kind`: how text renders in JSON."""

    ns: str
    name: str
    children: list[El] = field(default_factory=list)
    text: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    xsi: str | None = None
    wrap: str | None = None
    many: bool = False
    kind: Literal["obj", "str", "num", "int", "bool", "enum"] = "obj"
    json_name: str | None = None


def _el(ns: str, name: str, *children: El | None, attrs: dict[str, str] | None = None, xsi: str | None = None,
        wrap: str | None = None, many: bool = False, json_name: str | None = None) -> El:
    if xsi and not wrap:
        prefix, typ = xsi.split(":")
        wrap = prefix + typ
    return El(ns, name, [c for c in children if c is not None], attrs=attrs or {}, xsi=xsi, wrap=wrap, many=many,
              json_name=json_name)


def _leaf(ns: str, name: str, text: object, kind: Literal["str", "num", "int", "bool", "enum"] = "str",
          many: bool = False) -> El | None:
    if text is None:
        return None
    if isinstance(text, bool):
        text = "true" if text else "false"
    return El(ns, name, text=str(text), kind=kind, many=many)


def _ml(ns: str, name: str, text: str | None, lang: str, many: bool = False) -> El | None:
    """A MultilingualString."""
    if text is None:
        return None
    value = El("com", "value", text=text, attrs={"lang": lang}, kind="str", many=True)
    return _el(ns, name, _el("com", "values", value), many=many)


def _xml(el: El, out: list[str]) -> None:
    tag = f"{el.ns}:{el.name}"
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in el.attrs.items())
    if el.xsi:
        attrs += f' xsi:type="{el.xsi}"'
    if el.kind != "obj":
        out.append(f"<{tag}{attrs}>{escape(el.text or '')}</{tag}>")
    elif not el.children:
        out.append(f"<{tag}{attrs}/>")
    else:
        out.append(f"<{tag}{attrs}>")
        for c in el.children:
            _xml(c, out)
        out.append(f"</{tag}>")


_JSON_ATTRS = {"id": "idG", "version": "versionG"}
_INT_ATTRS = {"order", "energyMixIndex"}


def _json(el: El) -> Any:
    if el.kind == "enum":
        return {"value": el.text}
    if el.kind in ("num", "int"):
        return int(el.text or 0) if el.kind == "int" else float(el.text or "nan")
    if el.kind == "bool":
        return el.text == "true"
    if el.kind == "str":
        if el.name == "value" and el.ns == "com":  # MultilingualString value
            return {"lang": el.attrs["lang"], "value": el.text}
        return el.text
    if el.ns == "com" and el.name == "values":  # MultilingualString: "values" is the array itself
        return [_json(c) for c in el.children]
    body: dict[str, Any] = {}
    for k, v in el.attrs.items():
        body[_JSON_ATTRS.get(k, k)] = int(v) if k in _INT_ATTRS else v
    for c in el.children:
        key = c.json_name or c.name
        value = _json(c)
        if c.many:
            body.setdefault(key, []).append(value)
        else:
            body[key] = value
    return {el.wrap: body} if el.wrap else body


# ------------------------------------------------------------------------------------------------
# Mapping


class _Mapper:
    def __init__(self, kind: str, lang: str) -> None:
        self.kind = kind
        self.lang = lang
        self.unmapped: Counter[tuple[str, str]] = Counter()

    def _note(self, field_name: str, value: object) -> None:
        self.unmapped[(field_name, str(value))] += 1

    def organisation(self, role: str, raw: str | None, org_id: str, version: str) -> El | None:
        if raw is None:
            return None
        details = json.loads(raw)
        if not details.get("name"):
            return None
        return _el("fac", role,
                   _ml("fac", "name", details["name"], self.lang),
                   _leaf("fac", "linkToGeneralInformation", details.get("website")),
                   _el("fac", "organisationUnit", many=True),
                   attrs={"id": org_id, "version": version}, xsi="fac:OrganisationSpecification")

    def operating_hours(self, raw: str, hours_id: str, version: str) -> El:
        hours = json.loads(raw)
        closings = hours.get("exceptional_closings") or []
        openings = hours.get("exceptional_openings") or []
        if hours.get("twentyfourseven") and not closings:
            return _el("fac", "operatingHours", xsi="fac:OpenAllHours")
        valid: list[El | None] = []
        if not hours.get("twentyfourseven"):
            by_period: dict[tuple[str, str], list[int]] = {}
            for r in hours.get("regular_hours") or []:
                by_period.setdefault((r["period_begin"], r["period_end"]), []).append(int(r["weekday"]))
            for (begin, end), days in sorted(by_period.items()):
                valid.append(_el("com", "validPeriod",
                                 _el("com", "recurringTimePeriodOfDay",
                                     _leaf("com", "startTimeOfPeriod", begin + ":00"),
                                     _leaf("com", "endTimeOfPeriod", end + ":00"), many=True),
                                 _el("com", "recurringDayWeekMonthPeriod",
                                     *(_leaf("com", "applicableDay", rules.WEEKDAYS[d], "enum", many=True) for d in sorted(set(days))),
                                     wrap="comDayWeekMonth", many=True),
                                 many=True))
        valid += [self._period("validPeriod", p) for p in openings]
        exceptions = [self._period("exceptionPeriod", p) for p in closings]
        return _el("fac", "operatingHours",
                   _leaf("fac", "lastUpdated", version),
                   _el("fac", "overallPeriod", _leaf("com", "overallStartTime", version), *valid, *exceptions),
                   attrs={"id": hours_id, "version": version}, xsi="fac:OperatingHoursSpecification")

    @staticmethod
    def _period(name: str, period: dict[str, str]) -> El:
        return _el("com", name, _leaf("com", "startOfPeriod", _utc(period["period_begin"])),
                   _leaf("com", "endOfPeriod", _utc(period["period_end"])), many=True)

    def location_reference(self, lat: str | None, lon: str | None, row: dict[str, Any] | None = None) -> El | None:
        if lat is None or lon is None:
            return None
        extension = None
        if row is not None:
            country = rules.COUNTRIES.get(row["country"]) if row["country"] else None
            if row["country"] and country is None:
                self._note("location.country", row["country"])
            address = _el("locx", "address",
                          _leaf("locx", "postcode", row["postal_code"]),
                          _ml("locx", "city", row["city"], self.lang),
                          _leaf("locx", "countryCode", country),
                          # OCPI's address is street and number in one text: one `street` line.
                          _el("locx", "addressLine", _leaf("locx", "type", "street", "enum"),
                              _ml("locx", "text", row["address"], self.lang), attrs={"order": "1"}, many=True)
                          if row["address"] else None)
            extension = _el("loc", "_locationReferenceExtension", _el("loc", "facilityLocation", address, json_name="FacilityLocation"),
                            json_name="locLocationReferenceExtensionG")
        return _el("fac", "locationReference", extension,
                   _el("loc", "pointByCoordinates", _el("loc", "pointCoordinates", _leaf("loc", "latitude", lat, "num"),
                                                        _leaf("loc", "longitude", lon, "num"))),
                   xsi="loc:PointLocation")

    def energy_mix(self, raw: str | None) -> El | None:
        if raw is None:
            return None
        mix = json.loads(raw)
        ratios = []
        for s in mix.get("energy_sources") or []:
            source = rules.ENERGY_SOURCES.get(s.get("source"))
            if source is None:
                self._note("energy_mix.source", s.get("source"))
                continue
            ratios.append(_el("egi", "electricEnergySourceRatio", _leaf("egi", "energySource", source, "enum"),
                              _el("egi", "sourceRatioValue", _leaf("com", "percentage", s.get("percentage"), "num")), many=True))
        return _el("egi", "electricEnergyMix", _leaf("egi", "isGreenEnergy", mix.get("is_green_energy"), "bool"), *ratios,
                   attrs={"energyMixIndex": "1"}, many=True)

    def connector(self, row: dict[str, Any]) -> El:
        standard, power_type, fmt = row["standard"], row["power_type"], row["format"]
        if standard in rules.LOSSY_CONNECTOR_TYPES:
            self._note("connector.standard", standard)
        mode = rules.CHARGING_MODES.get(power_type)
        if mode is None:
            self._note("connector.power_type", power_type)
        connector_format = rules.CONNECTOR_FORMATS.get((fmt, rules.current(power_type) or ""))
        if connector_format is None:
            self._note("connector.format", f"{fmt}/{power_type}")
        return _el("egi", "connector",
                   _leaf("egi", "connectorType", rules.CONNECTOR_TYPES[standard], "enum"),
                   _leaf("egi", "chargingMode", mode, "enum"),
                   _leaf("egi", "connectorFormat", connector_format, "enum"),
                   _leaf("egi", "maxPowerAtSocket", row["max_electric_power"], "num"),
                   _leaf("egi", "voltage", row["max_voltage"], "num"),
                   _leaf("egi", "maximumCurrent", row["max_amperage"], "num"),
                   many=True)

    def auth_methods(self, raw: str | None) -> list[El | None]:
        methods: list[str] = []
        for capability in json.loads(raw) if raw else []:
            if capability not in rules.AUTHENTICATION_METHODS:
                self._note("evse.capabilities", capability)
                continue
            method = rules.AUTHENTICATION_METHODS[capability]
            if method is not None and method not in methods:
                methods.append(method)
        return [_leaf("egi", "authenticationAndIdentificationMethods", m, "enum", many=True) for m in methods]

    def site(self, rows: list[dict[str, Any]]) -> tuple[El, int, int]:
        first = rows[0]
        site_id = f"{first['country_code']}:{first['party_id']}:{first['location_id']}"
        version = first["site_version"]
        evses: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            evses.setdefault(r["evse_uid"], []).append(r)
        stations = [self.station(site_id, conns) for conns in evses.values()]
        if self.kind == "status":
            site = _el("egi", "energyInfrastructureSite", _leaf("fac", "lastUpdated", version), *stations,
                       attrs={"id": site_id, "version": version}, many=True)
            return site, len(stations), 0
        party = f"{first['country_code']}:{first['party_id']}"
        site = _el("egi", "energyInfrastructureSite",
                   _ml("fac", "name", first["name"], self.lang),
                   _leaf("fac", "externalIdentifier", first["location_id"]),
                   _leaf("fac", "lastUpdated", version),
                   self.operating_hours(first["opening_times"], site_id + ":hours", version) if first["opening_times"] else None,
                   self.location_reference(first["lat"], first["lon"], first),
                   self.organisation("owner", first["owner"], party + ":owner", version),
                   self.organisation("operator", first["operator"], party + ":operator", version),
                   *stations,
                   attrs={"id": site_id, "version": version}, many=True)
        return site, len(stations), len(rows)

    def station(self, site_id: str, rows: list[dict[str, Any]]) -> El:
        first = rows[0]
        point_id = f"{site_id}:{first['evse_uid']}"
        version = first["evse_version"]
        if self.kind == "status":
            status = rules.REFILL_POINT_STATUSES.get(first["status"])
            if status is None:
                self._note("evse.status", first["status"])
            extension = _el("egi", "_refillPointExtension",
                            _el("st", "refillPointStatus", _leaf("st", "status", status or "unknown", "enum"),
                                _leaf("st", "lastUpdated", first["evse_updated"])),
                            json_name="egiRefillPointExtensionG")
            point = _el("egi", "refillPoint", _leaf("fac", "lastUpdated", first["evse_updated"]), extension,
                        attrs={"id": point_id, "version": version}, xsi="egi:ElectricChargingPoint", many=True)
            return _el("egi", "energyInfrastructureStation", _leaf("fac", "lastUpdated", version), point,
                       attrs={"id": point_id, "version": version}, many=True)
        coordinates = self.location_reference(first["evse_lat"], first["evse_lon"])
        # A REMOVED EVSE stays published (as in the OCPI export) and says so in the schema's own terms.
        closed = _el("fac", "operatingHours",
                     _el("fac", "closureInformation", _leaf("fac", "permananentlyClosed", True, "bool")),
                     xsi="fac:UnknownOperatingHours") if first["status"] == "REMOVED" else None
        point = _el("egi", "refillPoint",
                    _leaf("fac", "externalIdentifier", first["evse_id"]),
                    _leaf("fac", "lastUpdated", version),
                    closed,
                    coordinates,
                    *(self.connector(r) for r in rows),
                    self.energy_mix(first["energy_mix"]),
                    attrs={"id": point_id, "version": version}, xsi="egi:ElectricChargingPoint", many=True)
        return _el("egi", "energyInfrastructureStation",
                   _leaf("fac", "externalIdentifier", first["evse_uid"]),
                   _leaf("fac", "lastUpdated", version),
                   coordinates,
                   *self.auth_methods(first["capabilities"]),
                   point,
                   attrs={"id": point_id, "version": version}, many=True)


def _utc(text: str) -> str:
    """An OCPI DateTime (UTC, maybe with fractions) as DATEX II UTC seconds."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(TS)


# ------------------------------------------------------------------------------------------------
# Writer


class _Counting:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.bytes = 0

    def write(self, text: str) -> None:
        data = text.encode()
        self.out.write(data)
        self.bytes += len(data)


def write_publication(
    con: duckdb.DuckDBPyConnection,
    kind: Literal["static", "status"],
    fmt: Literal["xml", "json"],
    out: BinaryIO,
    *,
    countries: list[str] | None = None,
    published_at: datetime | None = None,
) -> PublicationStats:
    """Stream one DATEX II publication of the access point's objects into `out`.

    `published_at` (publicationTime) defaults to the newest `lastUpdated` among the published
    objects, so the same warehouse state writes the same bytes. Raises EmptyPublicationError when no
    object can be published (the schema requires at least one site); `rejections()` says why.
    """
    if kind not in ("static", "status") or fmt not in ("xml", "json"):
        raise ValueError(f"unknown publication {kind}/{fmt}")
    countries = nap_countries() if countries is None else countries
    _select(con, countries)
    head = con.execute(f"""
        SELECT count(DISTINCT (country_code, party_id, location_id)), max(site_version),
               list(DISTINCT country_code || ':' || party_id ORDER BY country_code || ':' || party_id)
        FROM ({_ROWS})
    """).fetchone()
    assert head is not None
    n_sites, newest, parties = head
    if not n_sites:
        raise EmptyPublicationError(f"no publishable location in {countries}")
    when = (published_at.astimezone(UTC) if published_at else datetime.fromisoformat(newest.replace("Z", "+00:00"))).replace(microsecond=0)
    stamp = when.strftime(TS)
    lang = LANGUAGES.get(countries[0], "en") if countries else "en"
    # The publisher: the CPO (country, party id), or every party's `CC:PARTY` when several.
    creator_country = parties[0].split(":")[0]
    creator_id = parties[0].split(":")[1] if len(parties) == 1 else ",".join(parties)
    table_id = "evpipeline:" + "-".join(countries) + ":" + kind
    stats = PublicationStats(kind=kind, fmt=fmt, published_at=when, rejected=_rejections(con))
    mapper = _Mapper(kind, lang)
    sink = _Counting(out)
    if fmt == "xml":
        declarations = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())
        sink.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<d2:payload {declarations} xsi:type="egi:EnergyInfrastructureTablePublication"'
                   f' lang="{lang}" modelBaseVersion="{rules.MODEL_BASE_VERSION}" profileName="{rules.PROFILE_NAME}" profileVersion="{rules.PROFILE_VERSION}">'
                   f"<com:publicationTime>{stamp}</com:publicationTime>"
                   f"<com:publicationCreator><com:country>{escape(creator_country)}</com:country>"
                   f"<com:nationalIdentifier>{escape(creator_id)}</com:nationalIdentifier></com:publicationCreator>"
                   f"<egi:energyInfrastructureTable id={quoteattr(table_id)} version={quoteattr(newest)}>\n")
    else:
        header = {"lang": lang, "publicationTime": stamp, "publicationCreator": {"country": creator_country, "nationalIdentifier": creator_id}}
        prefix = json.dumps({"versionG": rules.SCHEMA_VERSION, "modelBaseVersionG": rules.MODEL_BASE_VERSION,
                             "profileNameG": rules.PROFILE_NAME, "profileVersionG": rules.PROFILE_VERSION})[:-1]
        sink.write('{"payload":' + prefix + ',"egiEnergyInfrastructureTablePublication":' + json.dumps(header)[:-1]
                   + ',"energyInfrastructureTable":[{"idG":' + json.dumps(table_id) + ',"versionG":' + json.dumps(newest)
                   + ',"energyInfrastructureSite":[\n')
    for n, rows in enumerate(_sites(con, kind)):
        site, stations, connectors = mapper.site(rows)
        stats.sites += 1
        stats.stations += stations
        stats.points += stations
        stats.connectors += connectors
        if fmt == "xml":
            parts: list[str] = []
            _xml(site, parts)
            sink.write("".join(parts) + "\n")
        else:
            sink.write(("," if n else "") + json.dumps(_json(site), ensure_ascii=False, separators=(",", ":")) + "\n")
    sink.write("</egi:energyInfrastructureTable></d2:payload>\n" if fmt == "xml" else "]}]}}}\n")
    stats.bytes = sink.bytes
    stats.unmapped = dict(sorted(mapper.unmapped.items()))
    return stats
