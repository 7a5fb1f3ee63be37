"""DATEX II 3.7 publications: schema validity (XSD and JSON Schema, real validators), same objects as
the OCPI export, statuses as in mart.evses, rejections, mapping rules, streaming."""

from __future__ import annotations

import io
import json
import re
import struct
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import pytest

from evpipeline.datex2 import EmptyPublicationError, Publisher, rejections, rules, write_publication
from evpipeline.datex2 import publication as publication_module
from evpipeline.ndw.export import build_export
from evpipeline.ocpi import definition as ocpi
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.schemas import assert_valid, enumeration
from evpipeline_tests.mart_fixture import ENERGY_MIX, HOURS_247, MartRows, later, standard_mart

Kind = Literal["static", "status"]
Fmt = Literal["xml", "json"]
KINDS: tuple[Kind, ...] = ("static", "status")
FORMATS: tuple[Fmt, ...] = ("xml", "json")
N = {"egi": "http://datex2.eu/schema/3/energyInfrastructure", "fac": "http://datex2.eu/schema/3/facilities",
     "loc": "http://datex2.eu/schema/3/locationReferencing", "st": publication_module.STATUS_NS}
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

# Every opening-hours shape our model (OCPI Hours) allows.
HOURS_SHAPES: list[dict[str, Any]] = [
    HOURS_247,
    {"twentyfourseven": True, "exceptional_closings": [{"period_begin": "2026-12-25T00:00:00Z", "period_end": "2026-12-26T00:00:00Z"}]},
    {"twentyfourseven": False, "regular_hours": [{"weekday": d, "period_begin": "07:00", "period_end": "23:00"} for d in range(1, 8)]},
    {"twentyfourseven": False,
     "regular_hours": [*({"weekday": d, "period_begin": "08:00", "period_end": "12:30"} for d in range(1, 6)),
                       *({"weekday": d, "period_begin": "13:30", "period_end": "18:00"} for d in range(1, 6)),
                       {"weekday": 6, "period_begin": "10:00", "period_end": "16:00"}],
     "exceptional_openings": [{"period_begin": "2026-12-06T10:00:00Z", "period_end": "2026-12-06T14:00:00Z"}],
     "exceptional_closings": [{"period_begin": "2026-12-24T16:00:00.500Z", "period_end": "2026-12-27T08:00:00Z"}]},
]
CONNECTOR_TYPES = list(get_args(ocpi.ConnectorType))
POWER_TYPES = list(get_args(ocpi.PowerType))
FORMATS_OCPI = list(get_args(ocpi.ConnectorFormat))
STATUSES = list(get_args(ocpi.Status))
CAPABILITIES = list(get_args(ocpi.Capability))
FULL_MIX = {"is_green_energy": False, "energy_sources": [{"source": s, "percentage": 12.5} for s in get_args(ocpi.EnergySourceCategory)]}


def generated_mart(n_locations: int) -> MartRows:
    """Every connector standard, format and power type, every EVSE status, every opening-hours shape,
    every capability and energy source, cycled over `n_locations` locations (2 EVSEs x 2 connectors)."""
    m = MartRows()
    m.tariff("T-STD")
    k = 0
    for n in range(1, n_locations + 1):
        loc = m.location(n, opening_times=json.dumps(HOURS_SHAPES[n % len(HOURS_SHAPES)]),
                         energy_mix=json.dumps(FULL_MIX if n % 2 else ENERGY_MIX),
                         owner=json.dumps({"name": "Gemeente Utrecht", "website": "https://www.utrecht.nl"}) if n % 3 == 0 else None,
                         latitude=-45.87 + n / 7919 if n % 5 == 0 else 52.0907 + n / 10000)
        for e in (1, 2):
            evse = m.evse(loc, e, status=STATUSES[(2 * n + e) % len(STATUSES)], updated=later(n % 60),
                          capabilities=json.dumps(CAPABILITIES[(n + e) % len(CAPABILITIES):]) if e == 1 else None,
                          latitude=None if e == 2 else loc["latitude"], longitude=None if e == 2 else loc["longitude"])
            for c in (1, 2):
                k += 1
                power = POWER_TYPES[k % len(POWER_TYPES)]
                m.connector(evse, c, standard=CONNECTOR_TYPES[k % len(CONNECTOR_TYPES)], format=FORMATS_OCPI[(k // 2) % 2],
                            power_type=power, max_voltage=400 if power == "DC" else 230,
                            max_amperage=125 if power == "DC" else 16,  # physically possible: V x A x phases
                            max_electric_power=50000 if power == "DC" else 230 * 16 * ocpi.PHASES[power])
    return m


def publish(warehouse: WarehouseResource, kind: Kind, fmt: Fmt, **kwargs: Any) -> tuple[bytes, Any]:
    out = io.BytesIO()
    with warehouse.get_connection() as con:
        stats = write_publication(con, kind, fmt, out, **kwargs)
    return out.getvalue(), stats


def structure(fmt: str, document: bytes) -> dict[str, dict[str, dict[str, Any]]]:
    """site id -> station id -> {point id, evse_id, connector types, status} from either format."""
    sites: dict[str, dict[str, dict[str, Any]]] = {}
    if fmt == "xml":
        root = ET.fromstring(document)
        for site in root.iter(f"{{{N['egi']}}}energyInfrastructureSite"):
            stations = sites.setdefault(site.attrib["id"], {})
            for station in site.findall("egi:energyInfrastructureStation", N):
                point = station.find("egi:refillPoint", N)
                assert point is not None
                stations[station.attrib["id"]] = {
                    "point": point.attrib["id"], "version": point.attrib["version"],
                    "closed": point.findtext("fac:operatingHours/fac:closureInformation/fac:permananentlyClosed", None, N) == "true", "evse_id": point.findtext("fac:externalIdentifier", None, N),
                    "connectors": [c.findtext("egi:connectorType", None, N) for c in point.findall("egi:connector", N)],
                    "status": point.findtext("egi:_refillPointExtension/st:refillPointStatus/st:status", None, N),
                    "auth": [a.text for a in station.findall("egi:authenticationAndIdentificationMethods", N)],
                }
        return sites
    table = json.loads(document)["payload"]["egiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0]
    for site in table["energyInfrastructureSite"]:
        stations = sites.setdefault(site["idG"], {})
        for station in site.get("energyInfrastructureStation", []):
            (point,) = (p["egiElectricChargingPoint"] for p in station["refillPoint"])
            status = point.get("egiRefillPointExtensionG", {}).get("refillPointStatus", {}).get("status", {}).get("value")
            stations[station["idG"]] = {
                "point": point["idG"], "version": point["versionG"],
                "closed": point.get("operatingHours", {}).get("facUnknownOperatingHours", {}).get("closureInformation", {}).get("permananentlyClosed", False), "evse_id": point.get("externalIdentifier"),
                "connectors": [c["connectorType"]["value"] for c in point.get("connector", [])], "status": status,
                "auth": [a["value"] for a in station.get("authenticationAndIdentificationMethods", [])],
            }
    return sites


# ------------------------------------------------------------------------------------------------
# Schema validity


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_standard_mart_publications_validate(warehouse: WarehouseResource, kind: Kind, fmt: Fmt) -> None:
    standard_mart().write(warehouse)
    document, stats = publish(warehouse, kind, fmt)
    assert_valid(fmt, document)
    assert stats.sites == 8 and stats.stations == stats.points == 14
    assert stats.connectors == (24 if kind == "static" else 0)
    assert stats.bytes == len(document)


@pytest.fixture
def generated(warehouse: WarehouseResource) -> WarehouseResource:
    generated_mart(len(HOURS_SHAPES) * len(STATUSES)).write(warehouse)
    return warehouse


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_fleet_every_value_validates(generated: WarehouseResource, kind: Kind, fmt: Fmt) -> None:
    document, stats = publish(generated, kind, fmt)
    assert_valid(fmt, document)
    sites = structure(fmt, document)
    stations = [s for site in sites.values() for s in site.values()]
    assert stats.sites == len(sites) == len(HOURS_SHAPES) * len(STATUSES)
    if kind == "static":
        written = {t for s in stations for t in s["connectors"]}
        assert written == {rules.CONNECTOR_TYPES[t] for t in CONNECTOR_TYPES}
        assert {a for s in stations for a in s["auth"]} == {v for v in rules.AUTHENTICATION_METHODS.values() if v}
        # What has no DATEX II value is reported, not invented.
        assert {k for k in stats.unmapped if k[0] == "connector.standard"} == {("connector.standard", t) for t in rules.LOSSY_CONNECTOR_TYPES}
        assert {k for k in stats.unmapped if k[0] == "connector.power_type"} == {
            ("connector.power_type", p) for p, mode in rules.CHARGING_MODES.items() if mode is None}
        text = document.decode()
        for shape in ("OpenAllHours", "OperatingHoursSpecification", "exceptionPeriod", "validPeriod", "recurringTimePeriodOfDay"):
            assert shape in text
    else:
        assert {s["status"] for s in stations} == set(rules.REFILL_POINT_STATUSES.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_timestamps_utc_and_coordinates_single_precision(generated: WarehouseResource, fmt: Fmt) -> None:
    document, _ = publish(generated, "static", fmt, published_at=datetime(2026, 11, 2, 9, 30, 15, 999, tzinfo=UTC))
    if fmt == "xml":
        root = ET.fromstring(document)
        stamps = [el.text or "" for el in root.iter() if el.tag.endswith(("}lastUpdated", "}publicationTime", "}startOfPeriod", "}endOfPeriod", "}overallStartTime"))
                  and el.text]
        stamps += [el.attrib["version"] for el in root.iter() if "version" in el.attrib]
        coordinates = [el.text or "" for el in root.iter() if el.tag.endswith(("}latitude", "}longitude"))]
        assert root.findtext("{http://datex2.eu/schema/3/common}publicationTime") == "2026-11-02T09:30:15Z"
    else:
        text = document.decode()
        stamps = re.findall(r'"(?:lastUpdated|publicationTime|versionG|overallStartTime|startOfPeriod|endOfPeriod)":"([^"]+)"', text)
        stamps = [s for s in stamps if s != rules.SCHEMA_VERSION]
        coordinates = re.findall(r'"(?:latitude|longitude)":([-0-9.eE]+)', text)
    assert stamps and all(DATETIME.match(s) for s in stamps), [s for s in stamps if not DATETIME.match(s)][:5]
    assert coordinates
    for c in coordinates:  # the shortest text of an IEEE single (xs:float), nothing beyond its precision
        single = struct.unpack("f", struct.pack("f", float(c)))[0]
        assert abs(single - float(c)) < 1e-6 * max(1.0, abs(float(c)))


# ------------------------------------------------------------------------------------------------
# Same objects as the OCPI export; statuses as in mart.evses


@pytest.mark.parametrize("fmt", FORMATS)
def test_static_publication_has_the_ocpi_exports_objects(generated: WarehouseResource, fmt: Fmt) -> None:
    standard_mart().write(generated)  # adds the standard defects to the generated fleet
    document, stats = publish(generated, "static", fmt)
    with generated.get_connection() as con:
        export = build_export(con)
    ocpi_sites: dict[str, dict[str, dict[str, Any]]] = {}
    for body in export.locations:
        location = json.loads(body)
        site_id = f"{location['country_code']}:{location['party_id']}:{location['id']}"
        ocpi_sites[site_id] = {f"{site_id}:{e['uid']}": {
            "point": f"{site_id}:{e['uid']}", "evse_id": e.get("evse_id"),
            "connectors": [rules.CONNECTOR_TYPES[c["standard"]] for c in sorted(e["connectors"], key=lambda c: c["id"])],
        } for e in location["evses"]}
    datex = {site: {sid: {k: s[k] for k in ("point", "evse_id", "connectors")} for sid, s in stations.items()}
             for site, stations in structure(fmt, document).items()}
    assert datex == ocpi_sites
    assert (stats.sites, stats.points, stats.connectors) == (len(export.locations), export.evses, export.connectors)
    # Rejections are the export's (without tariffs, which DATEX II does not publish here).
    assert {(r.object, r.location_id, r.evse_uid, r.connector_id, r.tariff_id) for r in stats.rejected} == {
        (r["object"], r.get("location_id"), r.get("evse_uid"), r.get("connector_id"), r.get("tariff_id")) for r in export.rejections}


@pytest.mark.parametrize("fmt", FORMATS)
def test_status_publication_agrees_with_mart_evses(generated: WarehouseResource, fmt: Fmt) -> None:
    with generated.get_connection() as con:
        con.execute("UPDATE mart.evses SET is_deleted = true WHERE evse_uid = 'LOC-0003-E1'")
        out = io.BytesIO()
        write_publication(con, "status", fmt, out)
        document = out.getvalue()
        mart = {f"{cc}:{pid}:{lid}:{uid}": status for cc, pid, lid, uid, status in con.execute(
            "SELECT country_code, party_id, location_id, evse_uid, CASE WHEN is_deleted THEN 'REMOVED' ELSE status END FROM mart.evses").fetchall()}
    points = {s["point"]: s["status"] for site in structure(fmt, document).values() for s in site.values()}
    assert points and all(points[p] == rules.REFILL_POINT_STATUSES[mart[p]] for p in points)
    assert points["NL:ALF:LOC-0003:LOC-0003-E1"] == "removed"
    assert set(points.values()) <= set(rules.REFILL_POINT_STATUS_VALUES)
    # The same points at the same versions as the static publication; removed ones closed there too.
    static, _ = publish(generated, "static", fmt)
    static_points = {s["point"]: s for site in structure(fmt, static).values() for s in site.values()}
    versions = {s["point"]: s["version"] for site in structure(fmt, document).values() for s in site.values()}
    assert {p: s["version"] for p, s in static_points.items()} == versions
    assert {p for p, s in static_points.items() if s["closed"]} == {p for p, status in points.items() if status == "removed"}


# ------------------------------------------------------------------------------------------------
# Rejections


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_mandatory_element_is_rejected_with_reason_and_absent(warehouse: WarehouseResource, fmt: Fmt) -> None:
    m = standard_mart(n_good=1)
    m.connector(m.evse(m.location(301), 1), 1, max_electric_power=None)                 # maxPowerAtSocket
    odd = m.location(302)
    m.connector(m.evse(odd, 1), 1, standard="SCHUKO_PLUS")                                # no connectorType rule
    m.connector(m.evse(odd, 2), 1)
    m.write(warehouse)
    document, stats = publish(warehouse, "static", fmt)
    assert_valid(fmt, document)
    reasons = {(r.object, r.location_id, r.evse_uid, r.connector_id): r.reasons for r in stats.rejected}
    assert reasons[("Connector", "LOC-0301", "LOC-0301-E1", "1")] == ("max_electric_power missing (AFIR-mandatory)",)
    assert reasons[("Location", "LOC-0301", None, None)] == ("no valid EVSEs",)
    assert reasons[("Connector", "LOC-0302", "LOC-0302-E1", "1")] == ("standard SCHUKO_PLUS has no DATEX II connectorType rule",)
    assert reasons[("Location", "LOC-0101", None, None)] == ("energy_mix missing (AFIR-mandatory)",)
    sites = structure(fmt, document)
    assert "NL:ALF:LOC-0301" not in sites and "NL:ALF:LOC-0101" not in sites
    assert list(sites["NL:ALF:LOC-0302"]) == ["NL:ALF:LOC-0302:LOC-0302-E2"]
    with warehouse.get_connection() as con:
        assert rejections(con) == stats.rejected
        assert all(r.reason for r in rejections(con, ["NLD"]))


def test_nothing_publishable_raises(warehouse: WarehouseResource) -> None:
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con, pytest.raises(EmptyPublicationError):
        write_publication(con, "static", "xml", io.BytesIO(), countries=["DEU"])


# ------------------------------------------------------------------------------------------------
# Mapping rules


@pytest.mark.parametrize(("table", "namespace", "enum"), [
    (rules.CONNECTOR_TYPES, "energyInfrastructure", "ConnectorTypeEnum"),
    (rules.CHARGING_MODES, "energyInfrastructure", "ChargingModeEnum"),
    (rules.CONNECTOR_FORMATS, "energyInfrastructure", "ConnectorFormatTypeEnum"),
    (rules.AUTHENTICATION_METHODS, "energyInfrastructure", "AuthenticationAndIdentificationEnum"),
    (rules.ENERGY_SOURCES, "energyInfrastructure", "ElectricEnergySourceTypeEnum"),
    (rules.WEEKDAYS, "common", "DayEnum"),
])
def test_rules_only_use_the_schemas_enumerations(table: dict[Any, str | None], namespace: str, enum: str) -> None:
    assert {v for v in table.values() if v is not None} <= set(enumeration(namespace, enum))


@pytest.mark.parametrize(("table", "values"), [
    (rules.CONNECTOR_TYPES, ocpi.ConnectorType), (rules.CHARGING_MODES, ocpi.PowerType),
    (rules.REFILL_POINT_STATUSES, ocpi.Status), (rules.AUTHENTICATION_METHODS, ocpi.Capability),
    (rules.ENERGY_SOURCES, ocpi.EnergySourceCategory),
])
def test_every_model_value_has_an_explicit_rule(table: dict[str, str | None], values: Any) -> None:
    assert set(table) == set(get_args(values))


def test_status_rules_use_the_refill_point_status_vocabulary() -> None:
    assert set(rules.REFILL_POINT_STATUSES.values()) <= set(rules.REFILL_POINT_STATUS_VALUES)
    assert {f for f, _ in rules.CONNECTOR_FORMATS} == set(get_args(ocpi.ConnectorFormat))


# ------------------------------------------------------------------------------------------------
# Streaming


class Chunks(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_writer_streams_in_batches_and_chunks(generated: WarehouseResource, monkeypatch: pytest.MonkeyPatch, fmt: Fmt) -> None:
    monkeypatch.setattr(publication_module, "BATCH_ROWS", 5)
    fetched: list[int] = []
    real = publication_module._batches

    def counting(con: Any, sql: str) -> Any:
        cur = con.execute(sql)
        original = cur.fetchmany

        def fetchmany(size: int) -> Any:
            rows = original(size)
            fetched.append(len(rows))
            return rows
        return real(type("C", (), {"execute": lambda self, _sql: type("R", (), {"description": cur.description, "fetchmany": staticmethod(fetchmany)})()})(), sql)

    monkeypatch.setattr(publication_module, "_batches", counting)
    out = Chunks()
    with generated.get_connection() as con:
        stats = write_publication(con, "static", fmt, out)
    assert max(fetched) == 5 and len(fetched) > stats.sites / 5  # one row per finished site fragment
    assert out.writes == stats.sites + 2
    assert_valid(fmt, out.getvalue())


class Discard(io.RawIOBase):
    """A sink that keeps nothing, so only the writer's own memory is measured."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def test_peak_memory_stays_bounded_on_a_large_fleet(warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's peak is one batch of rows and one site, not the document (~10 MB here)."""
    monkeypatch.setattr(publication_module, "BATCH_ROWS", 100)
    generated_mart(1500).write(warehouse)
    sizes = {}
    with warehouse.get_connection() as con:
        for fmt in FORMATS:
            out = Discard()
            tracemalloc.start()
            try:
                stats = write_publication(con, "static", fmt, out)  # type: ignore[arg-type]
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            sizes[fmt] = (stats.bytes, peak)
    for fmt, (size, peak) in sizes.items():
        assert size > 2_000_000, fmt
        assert peak < size / 8, (fmt, size, peak)


# ------------------------------------------------------------------------------------------------
# Chunks: the fleet is selected and rendered a chunk at a time; the result is the whole fleet's


def chunked_mart() -> MartRows:
    """Two parties, rejections at every level, a broken tariff referenced from several chunks, and
    a run of locations of which none can be published (a chunk with no site)."""
    m = generated_mart(12)
    m.tariff("T-BAD", currency="EU")
    for n in (3, 7, 11):  # one connector each, in different chunks, on the broken tariff
        m.connectors[[c["location_id"] for c in m.connectors].index(f"LOC-{n:04d}")]["tariff_ids"] = json.dumps(["T-BAD"])
    m.tariff("T-STD", party="BRV")
    for n in range(20, 26):
        loc = m.location(n, party="BRV", energy_mix=None if n in (20, 21) else json.dumps(ENERGY_MIX))
        m.connector(m.evse(loc, 1, updated=later(n)), 1)
    return m


@pytest.mark.parametrize("rows_from", ["mart", "staged"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_chunks_write_the_whole_fleets_document(warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Any, kind: Kind, fmt: Fmt, rows_from: str) -> None:
    """Chunks reading their rows from the mart, or from Parquet staged once (more chunks than DIRECT_CHUNKS)."""
    chunked_mart().write(warehouse)
    whole, whole_stats = publish(warehouse, kind, fmt)  # one chunk, one render query
    with warehouse.get_connection() as con:
        whole_rejections = rejections(con)
    selected: list[tuple[int, int]] = []  # per chunk: locations in its rows, locations selected
    real_select = publication_module._select

    def select(con: Any, countries: list[str]) -> None:
        real_select(con, countries)
        selected.append((con.execute("SELECT count(*) FROM _dx_locations").fetchone()[0],
                         con.execute("SELECT count(*) FROM _ndw_locations").fetchone()[0]))
    monkeypatch.setattr(publication_module, "_select", select)
    monkeypatch.setattr(publication_module, "CHUNK_LOCATIONS", 2)
    monkeypatch.setattr(publication_module, "SITES_PER_QUERY", 1)
    monkeypatch.setattr(publication_module, "DIRECT_CHUNKS", 100 if rows_from == "mart" else 1)
    staged: list[bool] = []
    real_iter = publication_module._Chunks.__iter__

    def iterate(chunks: Any) -> Any:
        staged.append(any((chunks.directory / table).is_dir() for table in ("locations", "evses", "connectors")))
        return real_iter(chunks)
    monkeypatch.setattr(publication_module._Chunks, "__iter__", iterate)
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(publication_module.tempfile, "tempdir", str(staging))
    chunked, chunked_stats = publish(warehouse, kind, fmt)
    assert selected == [(2, 2)] * 9  # 18 candidate locations, 2 per chunk: no step holds more than its chunk
    assert set(staged) == {rows_from == "staged"}
    assert chunked == whole
    assert_valid(fmt, chunked)
    assert chunked_stats.rejected == whole_stats.rejected
    assert chunked_stats.unmapped == whole_stats.unmapped
    assert chunked_stats.unmapped or kind == "status"  # the generated fleet has lossy static values
    assert (chunked_stats.sites, chunked_stats.stations, chunked_stats.connectors) == (whole_stats.sites, whole_stats.stations, whole_stats.connectors)
    with warehouse.get_connection() as con:
        assert rejections(con) == whole_rejections
    bad = [r for r in whole_stats.rejected if r.object == "Tariff"]
    assert [(r.tariff_id, r.party_id) for r in bad] == [("T-BAD", "ALF")]  # reported once, not once per chunk
    assert {r.location_id for r in whole_stats.rejected if r.object == "Location"} >= {"LOC-0020", "LOC-0021"}
    assert b"NL:ALF:" in whole and b"NL:BRV:" in whole
    assert list(staging.iterdir()) == []  # the staged chunks are removed


def test_staged_chunks_are_removed_when_nothing_is_publishable(warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    m = MartRows()
    m.tariff("T-STD")
    m.connector(m.evse(m.location(1, energy_mix=None), 1), 1)
    m.write(warehouse)
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(publication_module.tempfile, "tempdir", str(staging))
    with warehouse.get_connection() as con:
        with pytest.raises(EmptyPublicationError):
            write_publication(con, "static", "xml", io.BytesIO(), countries=["NLD"])
        assert [r.reason for r in rejections(con)] == ["energy_mix missing (AFIR-mandatory)"]
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '\\_dx\\_%' ESCAPE '\\'").fetchone() == (0,)
    assert list(staging.iterdir()) == []


def test_one_selection_serves_every_document(warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch) -> None:
    chunked_mart().write(warehouse)
    alone = {(kind, fmt): publish(warehouse, kind, fmt)[0] for kind in KINDS for fmt in FORMATS}
    selections: list[list[str]] = []
    real_select = publication_module._select

    def select(con: Any, countries: list[str]) -> None:
        selections.append(countries)
        real_select(con, countries)
    monkeypatch.setattr(publication_module, "_select", select)
    together = {}
    with warehouse.get_connection() as con, Publisher(con) as publisher:
        for kind in KINDS:
            for fmt in FORMATS:
                out = io.BytesIO()
                publisher.write(kind, fmt, out)
                together[(kind, fmt)] = out.getvalue()
        assert publisher.rejections == rejections(con)
    assert len(selections) == 1 + 1  # the publisher's, then rejections()'s
    assert together == alone
