"""The AFIR DATEX II publications: the validators are real, every document of the standard mart and of
a generated fleet with every value is valid (the profile's JSON Schema sets, DATEX II 3.7's XSD, the
status XML well-formed), every reference resolves and ids are distinct per kind, the rule tables only
use the schemas' enumerations, and the writer streams chunk by chunk with the one-chunk bytes."""

from __future__ import annotations

import copy
import io
import json
import tracemalloc
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, cast, get_args

import pytest

from evpipeline.datex2 import EmptyPublicationError, Publisher, rejections, rules, write_publication
from evpipeline.datex2 import document as document_module
from evpipeline.datex2 import publication as publication_module
from evpipeline.datex2 import rates as rates_module
from evpipeline.datex2 import selection as selection_module
from evpipeline.model.reference import PAYMENT_MEANS
from evpipeline.ocpi import definition as ocpi
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.fleet import (
    CREATOR,
    DOCUMENTS,
    PUBLISHED_AT,
    Published,
    generated_mart,
    ids_by_kind,
    point_statuses,
    points,
    publish,
    reference_problems,
    sites,
    stations,
    walk,
)
from evpipeline_tests.datex2.schemas import (
    assert_valid,
    enumeration,
    json_errors,
    profile_enumeration,
    status_xml_errors,
    xml_errors,
)
from evpipeline_tests.mart_fixture import ENERGY_MIX, MartRows, standard_mart


def example(name: str) -> Any:
    folder = resources.files("evpipeline.simulators.datex2").joinpath("profile", "examples")
    return json.loads(folder.joinpath(name).read_text(encoding="utf-8"))


STATIC_EXAMPLE = "EnergyInfrastructureTablePublication_rev2.json"
STATUS_EXAMPLE = "EnergyInfrastructureStatusPublication_rev2.json"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The generated fleet's four documents (one warehouse for the module: the tests only read)."""
    warehouse = WarehouseResource(database=str(tmp_path_factory.mktemp("fleet") / "warehouse.duckdb"))
    generated_mart().write(warehouse)
    return publish(warehouse)


# ------------------------------------------------------------------------------------------------
# The validators are real


def test_the_profiles_official_examples_validate_with_our_wiring() -> None:
    assert json_errors("static", example(STATIC_EXAMPLE)) == []
    assert json_errors("status", example(STATUS_EXAMPLE)) == []


def test_a_misspelt_key_fails_the_wiring() -> None:
    static = example(STATIC_EXAMPLE)
    site = static["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
        "energyInfrastructureSite"
    ][0]
    site["lastUpdate"] = site.pop("lastUpdated")
    found = json_errors("static", static)
    assert found and any("lastUpdate" in e for e in found), found
    status = example(STATUS_EXAMPLE)
    point = point_statuses(status)[0][2]
    point["lastUpdate"] = point.pop("lastUpdated")
    found = json_errors("status", status)
    assert found and any("lastUpdate" in e for e in found), found
    assert json_errors("status", {"payload": status["messageContainer"]["payload"]})  # not the status body


def test_the_xml_checks_are_real(fleet: Published) -> None:
    static = fleet.documents[("static", "xml")]
    assert xml_errors(static) == []
    broken = static.replace(b"<egi:connectorType>", b"<egi:connectorKind>", 1).replace(
        b"</egi:connectorType>", b"</egi:connectorKind>", 1
    )
    assert xml_errors(broken)
    status = fleet.documents[("status", "xml")]
    assert status_xml_errors(status) == []
    assert status_xml_errors(status[:-40])  # cut short: not well-formed


# ------------------------------------------------------------------------------------------------
# Valid documents


@pytest.mark.parametrize(("kind", "fmt"), DOCUMENTS)
def test_standard_mart_publications_validate(warehouse: WarehouseResource, kind: str, fmt: str) -> None:
    standard_mart().write(warehouse)
    published = publish(warehouse)
    assert_valid(kind, fmt, published.documents[(kind, fmt)])
    stats = published.stats[(kind, fmt)]
    # 5 good locations of 2 EVSEs x 2 connectors, LOC-0102 (1 EVSE), LOC-0103 (1 connector), LOC-0106
    # (2 EVSEs).
    assert (stats.sites, stats.stations, stats.points) == (8, 14, 14)
    assert stats.connectors == (24 if kind == "static" else 0)
    assert stats.bytes == len(published.documents[(kind, fmt)])


@pytest.mark.parametrize(("kind", "fmt"), DOCUMENTS)
def test_the_generated_fleet_validates(fleet: Published, kind: str, fmt: str) -> None:
    assert_valid(kind, fmt, fleet.documents[(kind, fmt)])
    stats = fleet.stats[(kind, fmt)]
    # 36 locations + LOC-0901/0902 (one EVSE each left); even locations have one station of two points.
    assert (stats.sites, stats.stations, stats.points) == (38, 56, 74)
    assert stats.connectors == (146 if kind == "static" else 0)


def test_the_generated_fleet_carries_every_value(fleet: Published) -> None:
    static, status = fleet.json("static"), fleet.json("status")
    all_points = [p for _, _, p in points(static)]
    connectors = [c for p in all_points for c in p["connector"]]
    # Every OCPI standard in the fleet, as DATEX II names it (literals: the schema's ConnectorTypeEnum
    # spelling of the same plug); GB/T, ChaoJi and the NEMA sockets have no value and are `other`.
    assert {c["connectorType"]["value"] for c in connectors} == {
        "chademo",
        "domesticA",
        "domesticB",
        "domesticC",
        "domesticD",
        "domesticE",
        "domesticF",
        "domesticG",
        "domesticH",
        "domesticI",
        "domesticJ",
        "domesticK",
        "domesticL",
        "domesticM",
        "domesticN",
        "domesticO",
        "iec60309x2single16",
        "iec60309x2three16",
        "iec60309x2three32",
        "iec60309x2three64",
        "iec62196T1",
        "iec62196T1COMBO",
        "iec62196T2",
        "iec62196T2COMBO",
        "iec62196T3A",
        "iec62196T3C",
        "pantographBottomUp",
        "pantographTopDown",
        "teslaR",
        "teslaS",
        "other",
    }
    assert {c["connectorFormat"]["value"] for c in connectors} == {"socket", "cableMode3", "otherCable"}
    assert {p["currentType"]["value"] for p in all_points} == {"ac", "dc"}
    assert {p["chargingMode"]["value"] for p in all_points if "chargingMode" in p} == {"mode3AC3p", "mode4DC"}
    assert {s["status"]["value"] for _, _, s in point_statuses(status)} == {
        "available",
        "blocked",
        "charging",
        "inoperative",
        "outOfOrder",
        "planned",
        "removed",
        "reserved",
        "unknown",
    }
    assert {
        a["value"] for _, st in stations(static) for a in st.get("authenticationAndIdentificationMethods", [])
    } == {"rfid", "creditCard", "debitCard", "nfc", "pinpad", "apps"}
    assert Counter(st["numberOfRefillPoints"] for _, st in stations(static)) == {1: 38, 2: 18}
    # The four opening-hours shapes.
    hours = [s["operatingHours"] for s in sites(static)]
    assert {"afacOpenAllHours": {}} in hours
    specs = [
        h["afacOperatingHoursSpecification"]["overallPeriod"]
        for h in hours
        if "afacOperatingHoursSpecification" in h
    ]
    assert any("exceptionPeriod" in p and "validPeriod" not in p for p in specs)  # 24/7 with a closing
    assert any(
        len(p.get("validPeriod", [])) == 1 and "exceptionPeriod" not in p for p in specs
    )  # every day 07-23
    assert any(
        len(p.get("validPeriod", [])) == 4 and "exceptionPeriod" in p for p in specs
    )  # split + opening + closing
    # Every tariff shape: the price types, VAT or none, periods, applicabilities, fees, parking fee.
    prices = [
        price
        for _, _, p in points(static)
        for e in p["electricEnergy"]
        for r in e.get("energyRate", [])
        for price in r["energyPrice"]
    ]
    assert {p["priceType"]["value"] for p in prices} == {"pricePerKWh", "pricePerMinute", "basePrice"}
    assert {(p["taxIncluded"], p.get("taxRate")) for p in prices} == {(False, 21.0), (True, None)}
    assert {key for p in prices for key in p} >= {
        "overallPeriod",
        "timeBasedApplicability",
        "energyBasedApplicability",
    }
    assert any("exceptionPeriod" in p.get("overallPeriod", {}) for p in prices)
    rates = [r for _, _, p in points(static) for e in p["electricEnergy"] for r in e.get("energyRate", [])]
    assert any(r.get("combinationWithParkingFee") for r in rates)
    assert any("minimumDeliveryFee" in r and "maximumDeliveryFee" in r for r in rates)


def test_the_generated_fleet_leaves_out_exactly_its_two_unpublishable_points(fleet: Published) -> None:
    assert [(r.object, r.location_id, r.evse_uid, r.reasons) for r in fleet.rejections] == [
        (
            "EVSE",
            "LOC-0901",
            "LOC-0901-E1",
            (
                "ad hoc tariff T-BAD has no DATEX II form: element 1 is restricted by max_power, "
                "which DATEX II prices cannot express",
            ),
        ),
        (
            "EVSE",
            "LOC-0902",
            "LOC-0902-E1",
            ("no ad hoc price: none of its tariffs is AD_HOC_PAYMENT or untyped (AFIR: ad hoc price)",),
        ),
    ]
    kept = {
        s["idG"]: [st["idG"] for st in s["energyInfrastructureStation"]] for s in sites(fleet.json("static"))
    }
    assert kept["NL:ALF:LOC-0901"] == ["NL:ALF:LOC-0901:station:LOC-0901-E2"]
    assert kept["NL:ALF:LOC-0902"] == ["NL:ALF:LOC-0902:station:LOC-0902-E2"]
    # The parking fee each CPO's T-PARK loses is counted, with the values 3.7 and the profile have no rule
    # for.
    unmapped = fleet.stats[("static", "json")].unmapped
    assert (
        unmapped[
            (
                "tariff.price_component",
                "PARKING_TIME price (no DATEX II price type; combinationWithParkingFee set)",
            )
        ]
        == 2
    )
    assert {v for f, v in unmapped if f == "connector.power_type"} == {
        "AC_1_PHASE",
        "AC_2_PHASE",
        "AC_2_PHASE_SPLIT",
    }
    assert {v for f, v in unmapped if f == "connector.standard"} == {
        "CHAOJI",
        "GBT_AC",
        "GBT_DC",
        "NEMA_5_20",
        "NEMA_6_30",
        "NEMA_6_50",
        "NEMA_10_30",
        "NEMA_10_50",
        "NEMA_14_30",
        "NEMA_14_50",
    }


# ------------------------------------------------------------------------------------------------
# References resolve, ids are distinct


@pytest.mark.parametrize("mart", ["standard", "generated"])
def test_every_reference_resolves(warehouse: WarehouseResource, fleet: Published, mart: str) -> None:
    if mart == "standard":
        standard_mart().write(warehouse)
        published = publish(warehouse)
    else:
        published = fleet
    static, status = published.json("static"), published.json("status")
    assert reference_problems(static, status) == []
    # Every published point has its status, once; the status references the points the static table holds.
    assert sorted(p["reference"]["idG"] for _, _, p in point_statuses(status)) == sorted(
        p["idG"] for _, _, p in points(static)
    )
    assert (
        sum(1 for path, _ in walk(static) if path[-1:] == ("energyRateByReference",)) > 0
    )  # references were checked
    assert sum(1 for path, _ in walk(static) if path[-1:] == ("organisationReference",)) > 0


def test_the_reference_check_finds_what_a_receiver_refuses(fleet: Published) -> None:
    static, status = fleet.json("static"), fleet.json("status")
    broken = copy.deepcopy(status)
    point_statuses(broken)[0][2]["reference"]["versionG"] = "7"
    point_statuses(broken)[1][2]["energyRateUpdate"][0]["energyRateReference"]["idG"] = "NL:ALF:rate:T-NONE"
    assert len(reference_problems(static, broken)) == 2
    moved = copy.deepcopy(static)
    first = sites(moved)[0]
    first["operator"] = {
        "afacOrganisationByReference": {
            "organisationReference": {
                "targetClass": "ReferenceableOrganisation",
                "idG": "NL:ALF:operator",
                "versionG": "1",
            }
        }
    }
    assert reference_problems(moved, status)  # the definition now comes after its first reference (or never)


@pytest.mark.parametrize("mart", ["standard", "generated"])
def test_ids_are_distinct_per_kind(warehouse: WarehouseResource, fleet: Published, mart: str) -> None:
    if mart == "standard":
        standard_mart().write(warehouse)
        published = publish(warehouse)
    else:
        published = fleet
    ids = ids_by_kind(published.json("static"))
    assert {k: len(v) - len(set(v)) for k, v in ids.items()} == dict.fromkeys(ids, 0)
    assert not set(ids["station"]) & set(ids["point"])
    counts = {k: len(v) for k, v in ids.items()}
    if mart == "standard":  # one CPO, two ad hoc tariffs in use (T-STD, T-FAST), 24/7 everywhere
        assert counts == {
            "table": 1,
            "site": 8,
            "station": 14,
            "point": 14,
            "operator": 1,
            "helpdesk": 1,
            "rate": 2,
            "hours": 0,
        }
    else:  # two CPOs, each using all eight tariff shapes; 27 of 38 sites have an hours specification
        assert counts == {
            "table": 1,
            "site": 38,
            "station": 56,
            "point": 74,
            "operator": 2,
            "helpdesk": 2,
            "rate": 18,
            "hours": 27,
        }


# ------------------------------------------------------------------------------------------------
# Rule tables: only the schemas' values


@pytest.mark.parametrize(
    ("table_", "enum", "xsd"),
    [
        (rules.CONNECTOR_TYPES, "ConnectorTypeEnum", ("energyInfrastructure", "ConnectorTypeEnum")),
        (
            rules.CONNECTOR_FORMATS,
            "ConnectorFormatTypeEnum",
            ("energyInfrastructure", "ConnectorFormatTypeEnum"),
        ),
        (
            rules.AUTHENTICATION_METHODS,
            "AuthenticationAndIdentificationEnum",
            ("energyInfrastructure", "AuthenticationAndIdentificationEnum"),
        ),
        (rules.WEEKDAYS, "DayEnum", ("common", "DayEnum")),
        (rates_module.WEEKDAYS, "DayEnum", ("common", "DayEnum")),
        # In the extension (profile only), though 3.7 knows the enumeration on its Connector.
        (rules.CHARGING_MODES, "ChargingModeEnum", ("energyInfrastructure", "ChargingModeEnum")),
        # Profile only (no 3.7 element): the status publication, prices, payment means.
        (rules.REFILL_POINT_STATUSES, "RefillPointStatusEnum", None),
        (rules.SERVICE_FACILITIES, "ServiceFacilityTypeEnum", None),
        (rules.EQUIPMENT_FACILITIES, "EquipmentTypeEnum", None),
        (rules.VEHICLE_FUEL_TYPES, "FuelTypeEnum", ("common", "FuelTypeEnum")),
        (rules.VEHICLE_TYPES, "VehicleTypeEnum", ("common", "VehicleTypeEnum")),
        (rules.PARKING_USERS, "UserTypeEnum", None),
        ({k: v for k, (v, _) in rates_module.PRICE_TYPES.items()}, "PriceTypeEnum", None),
        (dict.fromkeys(PAYMENT_MEANS, "x") and {m: m for m in PAYMENT_MEANS}, "MeansOfPaymentEnum", None),
    ],
)
def test_rule_tables_only_use_the_schemas_enumerations(
    table_: dict[Any, str | None], enum: str, xsd: tuple[str, str] | None
) -> None:
    values = {v for v in table_.values() if v is not None}
    assert values <= set(profile_enumeration(enum)), values - set(profile_enumeration(enum))
    if xsd:
        assert values <= set(enumeration(*xsd)), values - set(enumeration(*xsd))


def test_the_fixed_values_written_are_the_profiles() -> None:
    """Values the declarations write as literals, and the extended identifier types."""
    for value, enum in (
        ("kWh", "DeliveryUnitEnum"),
        ("ac", "CurrentTypeEnum"),
        ("dc", "CurrentTypeEnum"),
        ("adHoc", "RatePolicyEnum"),
        ("physicalAttendance", "ServiceTypeEnum"),
        ("unattended", "ServiceTypeEnum"),
        ("street", "AddressLineTypeEnum"),
        ("houseNumber", "AddressLineTypeEnum"),
        ("nuts1Code", "NutsCodeTypeEnum"),
    ):
        assert value in profile_enumeration(enum), (value, enum)
    # TypeOfIdentifierEnum has no value of its own: the profile's identifier types are extended values.
    assert profile_enumeration("TypeOfIdentifierEnum") == []
    assert document_module.TYPES_OF_IDENTIFIER == (
        "evseId",
        "stationIdBNetzA",
        "operatorIdBNetzA",
        "operatorId",
        "providerId",
    )
    assert (
        tuple(sorted(profile_enumeration("RefillPointStatusEnum"), key=str.lower))
        == rules.REFILL_POINT_STATUS_VALUES
    )


@pytest.mark.parametrize(
    ("table_", "values"),
    [
        (rules.CONNECTOR_TYPES, ocpi.ConnectorType),
        (rules.CHARGING_MODES, ocpi.PowerType),
        (rules.REFILL_POINT_STATUSES, ocpi.Status),
        (rules.AUTHENTICATION_METHODS, ocpi.Capability),
    ],
)
def test_every_model_value_has_an_explicit_rule(table_: dict[str, str | None], values: Any) -> None:
    assert set(table_) == set(get_args(values))
    assert {f for f, _ in rules.CONNECTOR_FORMATS} == set(get_args(ocpi.ConnectorFormat))
    assert set(rates_module.WEEKDAYS) == set(get_args(ocpi.DayOfWeek))
    assert not set(rules.SERVICE_FACILITIES) & set(rules.EQUIPMENT_FACILITIES)
    assert set(rules.SERVICE_FACILITIES) | set(rules.EQUIPMENT_FACILITIES) == set(get_args(ocpi.Facility))
    restrictions = [
        rules.VEHICLE_FUEL_TYPES,
        rules.VEHICLE_TYPES,
        rules.PARKING_USERS,
        rules.PARKING_WITHOUT_ELEMENT,
    ]
    assert sum(len(r) for r in restrictions) == len(get_args(ocpi.ParkingRestriction))
    assert set().union(*restrictions) == set(get_args(ocpi.ParkingRestriction))


# ------------------------------------------------------------------------------------------------
# Rejections, nothing publishable


def test_rejections_are_the_ocpi_exports_and_datex_iis_own(warehouse: WarehouseResource) -> None:
    m = standard_mart(n_good=1)
    m.connector(m.evse(m.location(301), 1), 1, max_electric_power=None)
    m.write(warehouse)
    published = publish(warehouse)
    reasons = {
        (r.object, r.location_id, r.evse_uid, r.connector_id, r.tariff_id): r.reasons
        for r in published.rejections
    }
    assert reasons == {
        ("Connector", "LOC-0103", "LOC-0103-E1", "2", None): (
            "standard unmapped (see mart.unmapped_values)",
        ),
        ("Connector", "LOC-0103", "LOC-0103-E1", "3", None): (
            "tariff_ids reference tariffs not in tariffs.json: T-GHOST",
        ),
        ("Connector", "LOC-0104", "LOC-0104-E1", "1", None): (
            "tariff_ids reference tariffs not in tariffs.json: T-BROKEN",
        ),
        ("Connector", "LOC-0301", "LOC-0301-E1", "1", None): ("max_electric_power missing (AFIR-mandatory)",),
        ("EVSE", "LOC-0102", "LOC-0102-E2", None, None): ("parking_restrictions missing (AFIR-mandatory)",),
        ("EVSE", "LOC-0104", "LOC-0104-E1", None, None): ("no valid connectors",),
        ("EVSE", "LOC-0301", "LOC-0301-E1", None, None): ("no valid connectors",),
        ("Location", "LOC-0101", None, None, None): ("energy_mix missing (AFIR-mandatory)",),
        ("Location", "LOC-0104", None, None, None): ("no valid EVSEs",),
        ("Location", "LOC-0105", None, None, None): ("address missing or longer than 45 characters",),
        ("Location", "LOC-0301", None, None, None): ("no valid EVSEs",),
        ("Tariff", None, None, None, "T-BROKEN"): ("no tariff elements",),
    }
    assert {s["idG"] for s in sites(published.json("static"))} == {
        "NL:ALF:LOC-0001",
        "NL:ALF:LOC-0102",
        "NL:ALF:LOC-0103",
        "NL:ALF:LOC-0106",
    }
    with warehouse.get_connection() as con:
        assert rejections(con, ["NLD"], CREATOR) == published.rejections


def test_nothing_publishable_raises_and_leaves_nothing_behind(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    standard_mart().write(warehouse)
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(selection_module.tempfile, "tempdir", str(staging))
    with warehouse.get_connection() as con:
        with pytest.raises(EmptyPublicationError):  # no publishable location in Germany
            write_publication(con, "static", "xml", io.BytesIO(), countries=["DEU"], creator=CREATOR)
        con.execute("UPDATE mart.locations SET energy_mix = NULL")
        with pytest.raises(EmptyPublicationError):
            write_publication(con, "status", "json", io.BytesIO(), countries=["NLD"], creator=CREATOR)
        assert {r.reason for r in rejections(con, ["NLD"], CREATOR) if r.object == "Location"} >= {
            "energy_mix missing (AFIR-mandatory)"
        }
        # The chunks' rows and render input are dropped (the small lookups go with the connection).
        assert (
            con.execute("""SELECT list(table_name) FROM duckdb_tables() WHERE regexp_matches(table_name,
                              '^_dx_(points|stations|sites)_\\d+$|^_dx_(chunk_of|locations|evses|connectors)$')""").fetchone()
            == (None,)
        )
    assert list(staging.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Streaming


class Writes(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)


def test_the_writer_streams_in_batches_one_site_per_write(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated_mart(12).write(warehouse)
    monkeypatch.setattr(publication_module, "BATCH_ROWS", 5)
    fetched: list[int] = []
    real = publication_module._batches

    class Counting:
        def __init__(self, con: Any) -> None:
            self.con = con

        def execute(self, sql: str) -> Any:
            cursor = self.con.execute(sql)

            class Cursor:
                @staticmethod
                def fetchmany(size: int) -> Any:
                    rows = cursor.fetchmany(size)
                    fetched.append(len(rows))
                    return rows

            return Cursor()

    monkeypatch.setattr(publication_module, "_batches", lambda con, sql: real(cast(Any, Counting(con)), sql))
    with warehouse.get_connection() as con, Publisher(con, ["NLD"], CREATOR) as publisher:
        for kind, fmt in DOCUMENTS:
            fetched.clear()
            out = Writes()
            stats = publisher.write(kind, fmt, out, published_at=PUBLISHED_AT)
            assert stats.sites == 14
            assert max(fetched) == 5 and sum(fetched) == 14  # 5 + 5 + 4, then the empty fetch
            assert out.writes == stats.sites + 2  # head, one site each, tail
            assert_valid(kind, fmt, out.getvalue())


class Discard(io.RawIOBase):
    """A sink that keeps nothing, so only the writer's own memory is measured."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def test_peak_memory_stays_bounded_on_a_large_fleet(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's peak is one batch of rows (20 sites here) and one site, not the document (6 MB here)."""
    monkeypatch.setattr(publication_module, "BATCH_ROWS", 20)
    generated_mart(600).write(warehouse)
    sizes = {}
    with warehouse.get_connection() as con, Publisher(con, ["NLD"], CREATOR) as publisher:
        for fmt in ("xml", "json"):
            tracemalloc.start()
            try:
                stats = publisher.write("static", fmt, Discard(), published_at=PUBLISHED_AT)  # type: ignore[arg-type]
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            sizes[fmt] = (stats.bytes, peak)
    for fmt, (size, peak) in sizes.items():
        assert size > 3_000_000, fmt
        assert peak < size / 8, (fmt, size, peak)


# ------------------------------------------------------------------------------------------------
# Chunks: the fleet is selected and rendered a chunk at a time; the documents are the whole fleet's


def chunked_mart() -> MartRows:
    """The generated fleet (two CPOs, every rate used across many chunks) plus a run of locations none of
    which can be published (a chunk without a site)."""
    m = generated_mart(12)
    for n in range(950, 957):
        m.connector(m.evse(m.location(n, energy_mix=None), 1), 1)
    m.location(960, energy_mix=json.dumps(ENERGY_MIX))  # no EVSE at all: a location with no rows below it
    return m


@pytest.mark.parametrize("rows_from", ["mart", "staged"])
@pytest.mark.slow
def test_chunks_write_the_whole_fleets_bytes(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows_from: str
) -> None:
    """Chunks reading their rows from the mart, or from Parquet staged once
    (more chunks than DIRECT_CHUNKS)."""
    chunked_mart().write(warehouse)
    whole = publish(warehouse)  # one chunk
    selected: list[tuple[int, int]] = []  # per chunk: locations in its rows, locations published
    real_select = selection_module.select_chunk

    def select(con: Any, countries: list[str]) -> None:
        real_select(con, countries)
        selected.append(
            (
                con.execute("SELECT count(*) FROM _dx_locations").fetchone()[0],
                con.execute("SELECT count(*) FROM _ndw_locations WHERE len(reasons) = 0").fetchone()[0],
            )
        )

    monkeypatch.setattr(selection_module, "select_chunk", select)
    monkeypatch.setattr(selection_module, "CHUNK_LOCATIONS", 4)
    monkeypatch.setattr(selection_module, "DIRECT_CHUNKS", 100 if rows_from == "mart" else 1)
    monkeypatch.setattr(publication_module, "SITES_PER_QUERY", 2)
    staged: list[bool] = []
    real_iter = selection_module.Chunks.__iter__

    def iterate(chunks: Any) -> Any:
        staged.append(
            chunks.staged
            and any((chunks.directory / t).is_dir() for t in ("locations", "evses", "connectors"))
        )
        return real_iter(chunks)

    monkeypatch.setattr(selection_module.Chunks, "__iter__", iterate)
    staging = tmp_path / "staging"
    staging.mkdir()
    monkeypatch.setattr(selection_module.tempfile, "tempdir", str(staging))
    chunked = publish(warehouse)
    # 12 + 2 + 7 + 1 = 22 candidate locations, 4 per chunk: no step holds more than its chunk.
    assert [rows for rows, _ in selected] == [4] * 5 + [2]
    assert 0 in [published for _, published in selected]  # a chunk with nothing to publish
    assert staged == [rows_from == "staged"]
    for document in DOCUMENTS:
        assert chunked.documents[document] == whole.documents[document], document
    assert chunked.rejections == whole.rejections
    assert {
        d: (s.sites, s.stations, s.points, s.connectors, s.unmapped) for d, s in chunked.stats.items()
    } == {d: (s.sites, s.stations, s.points, s.connectors, s.unmapped) for d, s in whole.stats.items()}
    assert (chunked.table_id, chunked.table_version) == (whole.table_id, whole.table_version)
    assert list(staging.iterdir()) == []  # the staged chunks and kept render input are removed


def test_one_selection_serves_every_document(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated_mart(8).write(warehouse)
    alone = {}
    with warehouse.get_connection() as con:
        for kind, fmt in DOCUMENTS:
            out = io.BytesIO()
            write_publication(
                con, kind, fmt, out, countries=["NLD"], creator=CREATOR, published_at=PUBLISHED_AT
            )
            alone[(kind, fmt)] = out.getvalue()
    calls: list[list[str]] = []
    real_select = selection_module.select_chunk

    def select(con: Any, countries: list[str]) -> None:
        calls.append(countries)
        real_select(con, countries)

    monkeypatch.setattr(selection_module, "select_chunk", select)
    together = publish(warehouse)
    assert calls == [["NLD"]]
    assert together.documents == alone
