"""What a receiver checks beyond the schema: the same positions, EVSE ids and objects as the OCPI export,
powers and currents as the connectors say, who published when, the operator once per document with
its legal name and operator id, NUTS region and time zone as in mart, the DATEX II-only rejections
with their reasons (and counted), and ad hoc prices equal to the tariffs'. Expected values are literals
or read from mart and the OCPI export, never from the DATEX II code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import pytest

from evpipeline.datex2 import Creator
from evpipeline.ndw.datex2_export import write_publications
from evpipeline.ndw.export import build_export
from evpipeline.ocpi import definition as ocpi_definition
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.fleet import (
    CREATOR,
    Published,
    generated_mart,
    point_statuses,
    points,
    publish,
    sites,
    stations,
    status_publication,
    text,
)
from evpipeline_tests.datex2.normalise import xml_tree
from evpipeline_tests.mart_fixture import MartRows, standard_mart


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> tuple[WarehouseResource, Published]:
    warehouse = WarehouseResource(database=str(tmp_path_factory.mktemp("meaning") / "warehouse.duckdb"))
    generated_mart().write(warehouse)
    return warehouse, publish(warehouse)


def ocpi_locations(warehouse: WarehouseResource) -> dict[str, dict[str, Any]]:
    """The OCPI export's locations by site id (CC:PARTY:LOCATION)."""
    with warehouse.get_connection() as con:
        export = build_export(con)
    found = {}
    for body in export.locations:
        location = json.loads(body)
        found[f"{location['country_code']}:{location['party_id']}:{location['id']}"] = location
    return found


def coordinates(location_reference: dict[str, Any]) -> tuple[float, float]:
    point = location_reference["locPointLocation"]["pointByCoordinates"]["pointCoordinates"]
    return point["latitude"], point["longitude"]


def test_coordinates_are_the_ocpi_exports_at_full_precision(
    state: tuple[WarehouseResource, Published],
) -> None:
    warehouse, published = state
    ocpi = ocpi_locations(warehouse)
    static = published.json("static")
    assert sorted(s["idG"] for s in sites(static)) == sorted(ocpi)  # the same locations
    checked = 0
    for site, station in stations(static):
        location = ocpi[site["idG"]]
        expected = (float(location["coordinates"]["latitude"]), float(location["coordinates"]["longitude"]))
        assert coordinates(site["locationReference"]) == pytest.approx(expected, abs=1e-9), site["idG"]
        # A station stands where its first charging point's EVSE (by uid) says, else at the location.
        uids = sorted(
            p["aegiElectricChargingPoint"]["idG"].removeprefix(site["idG"] + ":")
            for p in station["refillPoint"]
        )
        evse = next(e for e in location["evses"] if e["uid"] == uids[0])
        where = evse.get("coordinates") or location["coordinates"]
        assert coordinates(station["locationReference"]) == pytest.approx(
            (float(where["latitude"]), float(where["longitude"])), abs=1e-9
        ), station["idG"]
        checked += coordinates(station["locationReference"]) != coordinates(site["locationReference"])
    assert checked == 18  # the odd locations' second EVSE is a station of its own with its own position
    # Literally: LOC-0001 at 52.001003, 4.901009 (mart's 6 decimals, not a float's approximation).
    first = next(s for s in sites(static) if s["idG"] == "NL:ALF:LOC-0001")
    assert coordinates(first["locationReference"]) == (52.001003, 4.901009)
    assert (
        b"<loc:latitude>52.001003</loc:latitude><loc:longitude>4.901009</loc:longitude>"
        in published.documents[("static", "xml")]
    )


def test_powers_currents_and_evse_ids_are_the_connectors_and_the_exports(
    state: tuple[WarehouseResource, Published],
) -> None:
    warehouse, published = state
    ocpi = ocpi_locations(warehouse)
    with warehouse.get_connection() as con:
        power_types = {
            f"{cc}:{p}:{loc}:{uid}": set(types)
            for cc, p, loc, uid, types in con.execute(
                "SELECT country_code, party_id, location_id, evse_uid, list(DISTINCT power_type) "
                "FROM mart.connectors GROUP BY ALL"
            ).fetchall()
        }
    for site, _, point in points(published.json("static")):
        powers = point["availableChargingPower"]
        assert powers[0] == max(powers) == max(c["maxPowerAtSocket"] for c in point["connector"]), point[
            "idG"
        ]
        (kind,) = power_types[point["idG"]]
        assert point["currentType"] == {"value": "dc" if kind == "DC" else "ac"}, point["idG"]
        assert point["numberOfConnectors"] == len(point["connector"])
        uid = point["idG"].removeprefix(site["idG"] + ":")
        (evse,) = [e for e in ocpi[site["idG"]]["evses"] if e["uid"] == uid]
        assert point["externalIdentifier"] == [
            {
                "identifier": evse["evse_id"],
                "typeOfIdentifier": {"value": "extendedG", "extendedValueG": "evseId"},
            }
        ]
    # Literally: LOC-0002-E1 is AC_1_PHASE (230 V x 16 A and 230 V x 10 A).
    (point,) = [
        p for _, _, p in points(published.json("static")) if p["idG"] == "NL:ALF:LOC-0002:LOC-0002-E1"
    ]
    assert (point["availableChargingPower"], point["availableVoltage"], point["currentType"]) == (
        [3680.0, 2300.0],
        [230.0],
        {"value": "ac"},
    )
    assert point["externalIdentifier"][0]["identifier"] == "NL*ALF*E00021"


def test_energy_is_the_locations_energy_mix(state: tuple[WarehouseResource, Published]) -> None:
    _, published = state
    energy = {
        p["idG"]: {
            k: v
            for k, v in p["electricEnergy"][0].items()
            if k not in ("energyRate", "energyRateByReference")
        }
        for _, _, p in points(published.json("static"))
    }
    # Odd locations: fleet.MIX_WITH_IMPACT; even ones: mart_fixture.ENERGY_MIX (no environmental impact).
    assert energy["NL:ALF:LOC-0001:LOC-0001-E2"] == {
        "energyProductName": {"values": [{"lang": "nl", "value": "Grijze Stroom"}]},
        "isGreenEnergy": False,
        "carbonDioxideImpact": 372.5,
        "nuclearWasteImpact": 0.0003,
    }
    assert energy["NL:ALF:LOC-0002:LOC-0002-E1"] == {
        "energyProductName": {"values": [{"lang": "nl", "value": "HollandseWind"}]},
        "isGreenEnergy": True,
    }


def test_publication_time_and_creator_are_the_ones_given(warehouse: WarehouseResource) -> None:
    standard_mart().write(warehouse)
    creator = Creator("NL", "NDW-LEVERANCIER-42")
    # 04:30:15.999 at +02:00, long before the data's own times: publicationTime is when it was published.
    published = publish(
        warehouse,
        creator=creator,
        published_at=datetime(2026, 11, 2, 4, 30, 15, 999_000, tzinfo=timezone(timedelta(hours=2))),
    )
    static, status = published.json("static"), published.json("status")
    publication = static["payload"]["aegiEnergyInfrastructureTablePublication"]
    assert publication["publicationTime"] == "2026-11-02T02:30:15Z"
    assert publication["publicationCreator"] == {"country": "NL", "nationalIdentifier": "NDW-LEVERANCIER-42"}
    assert status_publication(status)["publicationTime"] == "2026-11-02T02:30:15Z"
    assert status_publication(status)["publicationCreator"] == {
        "country": "NL",
        "nationalIdentifier": "NDW-LEVERANCIER-42",
    }
    exchange = status["messageContainer"]["exchangeInformation"]
    assert exchange["dynamicInformation"]["messageGenerationTimestamp"] == "2026-11-02T02:30:15Z"
    assert exchange["exchangeContext"]["supplierOrCisRequester"] == {"name": "NDW-LEVERANCIER-42"}
    assert exchange["exchangeContext"]["codedExchangeProtocol"] == {"value": "snapshotPush"}
    for kind in ("static", "status"):
        tree = xml_tree(published.documents[(kind, "xml")])
        body = (
            tree["payload"][0]["aegiEnergyInfrastructureTablePublication"][0]
            if kind == "static"
            else tree["messageContainer"][0]["payload"][0]["aegiEnergyInfrastructureStatusPublication"][0]
        )
        assert body["publicationTime"] == ["2026-11-02T02:30:15Z"]
        assert body["publicationCreator"] == [
            {"country": ["NL"], "nationalIdentifier": ["NDW-LEVERANCIER-42"]}
        ]
    # The table's id names the publisher and the access point's countries.
    assert published.table_id == "NL:NDW-LEVERANCIER-42:table:NLD"


def organisations(
    static: dict[str, Any], role: str
) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    """(definitions, (site id, reference)) of a site role (operator, helpdesk)."""
    defined, referenced = [], []
    for site in sites(static):
        organisation = site[role]
        if "afacReferenceableOrganisation" in organisation:
            defined.append(organisation["afacReferenceableOrganisation"])
        else:
            referenced.append(
                (site["idG"], organisation["afacOrganisationByReference"]["organisationReference"])
            )
    return defined, referenced


def test_the_operator_and_helpdesk_appear_once_per_document(
    state: tuple[WarehouseResource, Published],
) -> None:
    _, published = state
    static = published.json("static")
    operators, references = organisations(static, "operator")
    assert [
        (o["idG"], o["versionG"], text(o["name"]), text(o["legalName"]), o["externalIdentifier"])
        for o in operators
    ] == [
        (
            "NL:ALF:operator",
            "1",
            "Allego",
            "Allego B.V.",
            [
                {
                    "identifier": "NL*ALF",
                    "typeOfIdentifier": {"value": "extendedG", "extendedValueG": "operatorId"},
                }
            ],
        ),
        (
            "NL:BRV:operator",
            "1",
            "Operator BRV",
            "Operator BRV B.V.",
            [
                {
                    "identifier": "NL*BRV",
                    "typeOfIdentifier": {"value": "extendedG", "extendedValueG": "operatorId"},
                }
            ],
        ),
    ]
    assert (
        operators[0]["linkToGeneralInformation"] == "https://www.allego.eu"
        and "linkToGeneralInformation" not in operators[1]
    )
    # Defined at each CPO's first site, referenced (id and version) by all its others.
    assert sites(static)[0]["operator"] == {"afacReferenceableOrganisation": operators[0]}
    assert len(references) == 38 - 2
    assert {(site.split(":")[1], r["idG"], r["versionG"], r["targetClass"]) for site, r in references} == {
        ("ALF", "NL:ALF:operator", "1", "ReferenceableOrganisation"),
        ("BRV", "NL:BRV:operator", "1", "ReferenceableOrganisation"),
    }
    helpdesks, _ = organisations(static, "helpdesk")
    assert [(h["idG"], text(h["name"]), h["organisationUnit"]) for h in helpdesks] == [
        (
            "NL:ALF:helpdesk",
            "Allego",
            [
                {
                    "contactInformation": [
                        {
                            "afacContactInformation": {
                                "telephoneNumber": "+31 88 033 3033",
                                "eMail": "service@allego.eu",
                            }
                        }
                    ]
                }
            ],
        ),
        (
            "NL:BRV:helpdesk",
            "Bravo Service",
            [{"contactInformation": [{"afacContactInformation": {"telephoneNumber": "+31 20 555 0101"}}]}],
        ),
    ]
    # On-site staff per CPO, the CPO's ad hoc payment means on its rates.
    assert {
        (site["idG"].split(":")[1], station["serviceType"][0]["serviceType"]["value"])
        for site, station in stations(static)
    } == {("ALF", "unattended"), ("BRV", "physicalAttendance")}
    means = {
        (site["idG"].split(":")[1], tuple(m["value"] for m in r["payment"]["paymentMeans"]))
        for site, _, p in points(static)
        for e in p["electricEnergy"]
        for r in e.get("energyRate", [])
    }
    assert means == {("ALF", ("emv", "website")), ("BRV", ("paymentCreditCard", "nfc"))}


def test_nuts_region_and_time_zone_are_marts(warehouse: WarehouseResource) -> None:
    m = standard_mart(n_good=3)
    m.locations[1]["nuts_code"] = "NL2"
    m.locations[2]["time_zone"] = "Europe/London"
    m.write(warehouse)
    static = publish(warehouse).json("static")
    facility = {
        s["idG"]: s["locationReference"]["locPointLocation"]["locLocationExtensionG"]["FacilityLocation"]
        for s in sites(static)
    }
    assert {
        site: (f["timeZone"], f["nutsArea"])
        for site, f in facility.items()
        if site in ("NL:ALF:LOC-0001", "NL:ALF:LOC-0002", "NL:ALF:LOC-0003")
    } == {
        "NL:ALF:LOC-0001": ("+01:00", [{"nutsCodeType": {"value": "nuts1Code"}, "nutsCode": "NL3"}]),
        "NL:ALF:LOC-0002": ("+01:00", [{"nutsCodeType": {"value": "nuts1Code"}, "nutsCode": "NL2"}]),
        "NL:ALF:LOC-0003": ("+00:00", [{"nutsCodeType": {"value": "nuts1Code"}, "nutsCode": "NL3"}]),
    }
    assert facility["NL:ALF:LOC-0002"]["address"] == {
        "postcode": "3511 AB",
        "city": {"values": [{"lang": "nl", "value": "Utrecht"}]},
        "countryCode": "NL",
        "addressLine": [
            {
                "order": 0,
                "type": {"value": "street"},
                "text": {"values": [{"lang": "nl", "value": "Kerkstraat"}]},
            },
            {
                "order": 1,
                "type": {"value": "houseNumber"},
                "text": {"values": [{"lang": "nl", "value": "2"}]},
            },
        ],
    }
    # Every station repeats its site's facility location (the profile wants address and NUTS at the station).
    for site, station in stations(static):
        assert (
            station["locationReference"]["locPointLocation"]["locLocationExtensionG"]["FacilityLocation"]
            == facility[site["idG"]]
        )


def test_what_only_datex_ii_needs_rejects_with_its_reason_and_is_counted(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    m = standard_mart(n_good=2)
    m.tariff("T-STD", party="NOP")
    m.connector(m.evse(m.location(401, party="NOP"), 1), 1)  # no operator entry for NL/NOP
    m.connector(m.evse(m.location(402, nuts_code=None), 1), 1)  # no NUTS-1 region
    m.tariff("T-CONTRACT", type="REGULAR")
    only_contract = m.location(403)
    m.connector(m.evse(only_contract, 1), 1, tariffs=["T-CONTRACT"])  # no ad hoc price
    m.connector(m.evse(only_contract, 2), 1)
    mixed = m.location(404)
    both = m.evse(mixed, 1)  # an AC and a DC connector on one point
    m.connector(both, 1)
    m.connector(both, 2, power_type="DC", max_voltage=400, max_amperage=125, max_electric_power=50000)
    m.connector(m.evse(mixed, 2), 1)
    odd = m.location(405)
    m.connector(m.evse(odd, 1), 1, standard="SCHUKO_PLUS")  # a standard no rule knows
    m.connector(m.evse(odd, 2), 1)
    m.connector(m.evse(m.location(406, time_zone="Mars/Olympus"), 1), 1)  # not an IANA zone
    m.write(warehouse)
    with warehouse.get_connection() as con:
        ocpi = build_export(con)
        files = write_publications(
            con,
            tmp_path / "2026-11-02",
            countries=["NLD"],
            creator=CREATOR,
            published_at=datetime(2026, 11, 2, 3, tzinfo=UTC),
        )
    exported = {json.loads(b)["id"] for b in ocpi.locations}
    assert {
        f"LOC-04{n:02d}" for n in range(1, 7)
    } <= exported  # OCPI's selection has no such rules: only DATEX II leaves them out
    datex_only = [
        r
        for r in json.loads((files.directory / "rejections.json").read_text())
        if r.get("location_id", "").startswith("LOC-04")
    ]
    assert datex_only == [
        {
            "object": "Connector",
            "country_code": "NL",
            "party_id": "ALF",
            "location_id": "LOC-0405",
            "evse_uid": "LOC-0405-E1",
            "connector_id": "1",
            "reasons": ["standard SCHUKO_PLUS has no DATEX II connectorType rule"],
        },
        {
            "object": "EVSE",
            "country_code": "NL",
            "party_id": "ALF",
            "location_id": "LOC-0403",
            "evse_uid": "LOC-0403-E1",
            "reasons": [
                "no ad hoc price: none of its tariffs is AD_HOC_PAYMENT or untyped (AFIR: ad hoc price)"
            ],
        },
        {
            "object": "EVSE",
            "country_code": "NL",
            "party_id": "ALF",
            "location_id": "LOC-0404",
            "evse_uid": "LOC-0404-E1",
            "reasons": ["connectors of both AC and DC: a DATEX II charging point has one currentType"],
        },
        {
            "object": "EVSE",
            "country_code": "NL",
            "party_id": "ALF",
            "location_id": "LOC-0405",
            "evse_uid": "LOC-0405-E1",
            "reasons": ["no valid connectors"],
        },
        {
            "object": "Location",
            "country_code": "NL",
            "party_id": "ALF",
            "location_id": "LOC-0402",
            "reasons": ["NUTS-1 region unknown (reference data: nuts_code)"],
        },
        {
            "object": "Location",
            "country_code": "NL",
            "party_id": "ALF",
            "location_id": "LOC-0406",
            "reasons": ["time_zone Mars/Olympus is not an IANA time zone"],
        },
        {
            "object": "Location",
            "country_code": "NL",
            "party_id": "NOP",
            "location_id": "LOC-0401",
            "reasons": [
                "no operator entry in the reference data for NL/NOP (AFIR: operator id, legal name, helpdesk)"
            ],
        },
    ]
    assert files.body["counts"]["rejected"] == len(ocpi.rejections) + 7 == 16
    static = json.loads((files.directory / "static.json").read_bytes())
    site_ids = {s["idG"] for s in sites(static)}
    assert {"NL:ALF:LOC-0403", "NL:ALF:LOC-0404", "NL:ALF:LOC-0405"} <= site_ids
    assert not {"NL:NOP:LOC-0401", "NL:ALF:LOC-0402", "NL:ALF:LOC-0406"} & site_ids
    kept = {s["idG"]: [st["idG"] for st in s["energyInfrastructureStation"]] for s in sites(static)}
    assert [kept[f"NL:ALF:LOC-04{n:02d}"] for n in (3, 4, 5)] == [
        [f"NL:ALF:LOC-04{n:02d}:station:LOC-04{n:02d}-E2"] for n in (3, 4, 5)
    ]


def test_a_connector_datex_ii_cannot_publish_takes_its_point_and_then_its_site_with_it(
    warehouse: WarehouseResource,
) -> None:
    """The cascade after DATEX II's own connector rule: a point left without a connector is no
    ElectricChargingPoint (the profile needs at least one), a site left without points is no
    EnergyInfrastructureSite; each removal is a rejection with its reason. A point that keeps a
    publishable connector stays (the cascade is about points left empty, not any loss)."""
    m = standard_mart(n_good=1)
    alone = m.location(407)
    m.connector(m.evse(alone, 1), 1, standard="SCHUKO_PLUS")  # the site's only connector: nothing left
    partly = m.location(408)
    point = m.evse(partly, 1)
    m.connector(point, 1, standard="SCHUKO_PLUS")  # the point keeps connector 2
    m.connector(point, 2)
    m.write(warehouse)
    published = publish(warehouse)
    reasons = {
        (r.object, r.location_id, r.evse_uid, r.connector_id): r.reasons
        for r in published.rejections
        if r.location_id in ("LOC-0407", "LOC-0408")
    }
    assert reasons == {
        ("Connector", "LOC-0407", "LOC-0407-E1", "1"): (
            "standard SCHUKO_PLUS has no DATEX II connectorType rule",
        ),
        ("EVSE", "LOC-0407", "LOC-0407-E1", None): ("no valid connectors",),
        ("Location", "LOC-0407", None, None): ("no valid EVSEs",),
        ("Connector", "LOC-0408", "LOC-0408-E1", "1"): (
            "standard SCHUKO_PLUS has no DATEX II connectorType rule",
        ),
    }
    static, status = published.json("static"), published.json("status")
    assert "NL:ALF:LOC-0407" not in {s["idG"] for s in sites(static)}
    # Neither document names anything of the removed site: no dangling station, point or status.
    assert "LOC-0407" not in published.documents[("static", "json")].decode()
    assert "LOC-0407" not in published.documents[("status", "json")].decode()
    kept = {p["idG"]: len(p["connector"]) for _, _, p in points(static) if "LOC-0408" in p["idG"]}
    assert kept == {"NL:ALF:LOC-0408:LOC-0408-E1": 1}
    assert [
        p["reference"]["idG"] for _, _, p in point_statuses(status) if "LOC-0408" in p["reference"]["idG"]
    ] == ["NL:ALF:LOC-0408:LOC-0408-E1"]


# OCPI 2.2.1 EVSE status -> the AFIR profile's RefillPointStatusEnum, written out (never read from
# evpipeline.datex2.rules). The profile's enumeration has a value of the same meaning for each OCPI
# status, so none falls back to a near neighbour: BLOCKED (a physical barrier, e.g. a parked car, in
# front of a free point) is `blocked`, not `occupied` (in use) nor `unavailable`; CHARGING is
# `charging`, not `occupied`; OUTOFORDER (broken) is `outOfOrder`, not `faulted`; INOPERATIVE (not
# yet active or no longer in use) is `inoperative`, not `unavailable`; REMOVED is `removed`.
STATUS_VALUES: list[tuple[str, str]] = [
    ("AVAILABLE", "available"),
    ("BLOCKED", "blocked"),
    ("CHARGING", "charging"),
    ("INOPERATIVE", "inoperative"),
    ("OUTOFORDER", "outOfOrder"),
    ("PLANNED", "planned"),
    ("REMOVED", "removed"),
    ("RESERVED", "reserved"),
    ("UNKNOWN", "unknown"),
]


@pytest.fixture(scope="module")
def status_of_point(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each point's status in the JSON status publication of a mart with one location per OCPI status
    (LOC-0501 AVAILABLE, LOC-0502 BLOCKED, ... in STATUS_VALUES order), one EVSE each."""
    warehouse = WarehouseResource(database=str(tmp_path_factory.mktemp("statuses") / "warehouse.duckdb"))
    m = MartRows()
    m.operator("ALF")
    m.tariff("T-STD")
    for n, (ocpi_status, _) in enumerate(STATUS_VALUES, start=501):
        m.connector(m.evse(m.location(n), 1, status=ocpi_status), 1)
    m.write(warehouse)
    published = publish(warehouse, documents_=(("status", "json"),))
    return {p["reference"]["idG"]: p["status"] for _, _, p in point_statuses(published.json("status"))}


def test_the_status_table_covers_every_ocpi_status() -> None:
    assert sorted(ocpi_status for ocpi_status, _ in STATUS_VALUES) == sorted(get_args(ocpi_definition.Status))


@pytest.mark.parametrize(
    ("n", "ocpi_status", "datex_status"), [(n, o, d) for n, (o, d) in enumerate(STATUS_VALUES, start=501)]
)
def test_each_ocpi_evse_status_is_published_as_its_datex_ii_refill_point_status(
    status_of_point: dict[str, Any], n: int, ocpi_status: str, datex_status: str
) -> None:
    assert status_of_point[f"NL:ALF:LOC-{n:04d}:LOC-{n:04d}-E1"] == {"value": datex_status}, ocpi_status


# The ad hoc prices of the fleet's tariffs (fleet.TARIFF_SHAPES), as the profile writes them.
EXPECTED_PRICES: dict[str, list[dict[str, Any]]] = {
    "T-STD": [{"priceType": {"value": "pricePerKWh"}, "value": 0.35, "taxIncluded": False, "taxRate": 21.0}],
    # 3.00 per hour in OCPI is 0.05 per minute.
    "T-TIME": [
        {"priceType": {"value": "pricePerMinute"}, "value": 0.05, "taxIncluded": False, "taxRate": 21.0}
    ],
    # No VAT applies: the price is what is paid.
    "T-FLAT": [{"priceType": {"value": "basePrice"}, "value": 1.5, "taxIncluded": True}],
    # The parking fee has no price type (combinationWithParkingFee says there is one).
    "T-PARK": [{"priceType": {"value": "pricePerKWh"}, "value": 0.3, "taxIncluded": False, "taxRate": 21.0}],
    # Weekend nights 0.25; otherwise 0.40: the fallback holds except when the first element applies.
    "T-TOD": [
        {
            "priceType": {"value": "pricePerKWh"},
            "value": 0.25,
            "taxIncluded": False,
            "taxRate": 21.0,
            "overallPeriod": {
                "overallStartTime": "2026-11-01T08:00:00Z",
                "validPeriod": [
                    {
                        "recurringTimePeriodOfDay": [
                            {"startTimeOfPeriod": "22:00:00Z", "endTimeOfPeriod": "06:00:00Z"}
                        ],
                        "recurringDayWeekMonthPeriod": [
                            {
                                "comDayWeekMonth": {
                                    "applicableDay": [{"value": "saturday"}, {"value": "sunday"}]
                                }
                            }
                        ],
                    }
                ],
            },
        },
        {
            "priceType": {"value": "pricePerKWh"},
            "value": 0.4,
            "taxIncluded": False,
            "taxRate": 21.0,
            "overallPeriod": {
                "overallStartTime": "2026-11-01T08:00:00Z",
                "exceptionPeriod": [
                    {
                        "recurringTimePeriodOfDay": [
                            {"startTimeOfPeriod": "22:00:00Z", "endTimeOfPeriod": "06:00:00Z"}
                        ],
                        "recurringDayWeekMonthPeriod": [
                            {
                                "comDayWeekMonth": {
                                    "applicableDay": [{"value": "saturday"}, {"value": "sunday"}]
                                }
                            }
                        ],
                    }
                ],
            },
        },
    ],
    "T-KWH": [
        {
            "priceType": {"value": "pricePerKWh"},
            "value": 0.3,
            "taxIncluded": False,
            "taxRate": 21.0,
            "energyBasedApplicability": {"fromKWh": 2.0, "toKWh": 20.0},
        },
        {
            "priceType": {"value": "pricePerMinute"},
            "value": 0.04,
            "taxIncluded": False,
            "taxRate": 21.0,
            "timeBasedApplicability": {"fromMinute": 60, "toMinute": 120},
        },
    ],
    "T-MINMAX": [
        {"priceType": {"value": "pricePerKWh"}, "value": 0.5, "taxIncluded": False, "taxRate": 21.0}
    ],
    # A winter price: its dates bound the overall period (local dates, written as UTC day bounds).
    "T-WINTER": [
        {
            "priceType": {"value": "pricePerKWh"},
            "value": 0.33,
            "taxIncluded": False,
            "taxRate": 21.0,
            "overallPeriod": {
                "overallStartTime": "2026-11-01T00:00:00Z",
                "overallEndTime": "2027-03-31T23:59:59Z",
            },
        }
    ],
    # The tariff's own start and end bound the rate (its overallPeriod, below), not its prices.
    "T-ENDING": [
        {"priceType": {"value": "pricePerKWh"}, "value": 0.31, "taxIncluded": False, "taxRate": 21.0}
    ],
}


def test_ad_hoc_prices_are_the_tariffs(state: tuple[WarehouseResource, Published]) -> None:
    _, published = state
    static, status = published.json("static"), published.json("status")
    defined = {
        r["idG"]: r
        for _, _, p in points(static)
        for e in p["electricEnergy"]
        for r in e.get("energyRate", [])
    }
    assert sorted(defined) == sorted(
        f"NL:{party}:rate:{t}" for party in ("ALF", "BRV") for t in EXPECTED_PRICES
    )
    for tariff, prices in EXPECTED_PRICES.items():
        rate = defined[f"NL:ALF:rate:{tariff}"]
        assert rate["energyPrice"] == prices, tariff
        assert (
            rate["ratePolicy"],
            rate["applicableCurrency"],
            rate["lastUpdated"],
            text(rate["rateName"]),
        ) == ({"value": "adHoc"}, ["EUR"], "2026-11-01T08:00:00Z", f"Tarief {tariff}")
        assert rate.get("combinationWithParkingFee", False) == (tariff == "T-PARK")
        assert (rate.get("minimumDeliveryFee"), rate.get("maximumDeliveryFee")) == (
            (1.0, 25.0) if tariff == "T-MINMAX" else (None, None)
        )
        assert rate.get("overallPeriod") == (
            {"overallStartTime": "2026-10-01T00:00:00Z", "overallEndTime": "2027-01-01T00:00:00Z"}
            if tariff == "T-ENDING"
            else None
        )
    # The status publication repeats each point's current ad hoc prices.
    updates = 0
    for _, _, point in point_statuses(status):
        for update in point.get("energyRateUpdate", []):
            rate_id = update["energyRateReference"]["idG"]
            assert update["energyPrice"] == defined[rate_id]["energyPrice"]
            assert update["lastUpdated"] == defined[rate_id]["lastUpdated"]
            updates += 1
    assert updates == 146  # one per connector's tariff: each connector of the fleet names its own shape
