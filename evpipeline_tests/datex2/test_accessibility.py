"""AFIR Annex A6, A8, A16, A19 in the static publication: a site's facilities, a station's floor, the
vehicles its bays take and its parking spaces for people with disabilities (and customers), read the
way a receiver reads them. Expected values are written out here from the OCPI rows and the profile's
enumerations, never taken from the publication code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.fleet import Published, publish, sites, stations
from evpipeline_tests.datex2.test_versions import at, changed, day, merge, of
from evpipeline_tests.mart_fixture import MartRows


def accessibility_mart() -> MartRows:
    """LOC-0001: a hotel with Wi-Fi by a bus stop, sport and a recreation area; station ST-A (two EVSEs on
    floor -1, both EV only, one bay for people with disabilities, one for customers) and a motorcycle
    EVSE with no floor that may only be parked at while charging."""
    m = MartRows()
    m.operator("ALF")
    m.tariff("T-STD")
    loc = m.location(1, facilities=json.dumps(["HOTEL", "WIFI", "BUS_STOP", "SPORT", "RECREATION_AREA"]))
    for n, restrictions in ((1, ["EV_ONLY", "DISABLED"]), (2, ["EV_ONLY", "CUSTOMERS"])):
        evse = m.evse(
            loc, n, station_id="ST-A", floor_level="-1", parking_restrictions=json.dumps(restrictions)
        )
        m.connector(evse, 1, tariffs=["T-STD"])
    moto = m.evse(loc, 3, floor_level=None, parking_restrictions=json.dumps(["MOTORCYCLES", "PLUGGED"]))
    m.connector(moto, 1, tariffs=["T-STD"])
    return m


SITE = "NL:ALF:LOC-0001"
STATION_A = f"{SITE}:station:ST-A"
STATION_MOTO = f"{SITE}:station:LOC-0001-E3"


@pytest.fixture
def published(warehouse: WarehouseResource) -> Published:
    accessibility_mart().write(warehouse)
    return day(warehouse, 1)


def _stations(published: Published) -> dict[str, dict[str, Any]]:
    return {station["idG"]: station for _, station in stations(published.json("static"))}


def test_a_sites_facilities_are_its_supplemental_facilities(published: Published) -> None:
    (site,) = sites(published.json("static"))
    assert site["supplementalFacility"] == [
        {
            "afacSupplementalEquipment": {
                "idG": f"{SITE}:facility:internetWireless",
                "versionG": "1",
                "equipmentType": {"value": "internetWireless"},
            }
        },
        {
            "afacSupplementalServiceFacility": {
                "idG": f"{SITE}:facility:hotel",
                "versionG": "1",
                "serviceFacilityType": {"value": "hotel"},
            }
        },
        # SPORT and RECREATION_AREA are both leisure activities: one facility
        {
            "afacSupplementalServiceFacility": {
                "idG": f"{SITE}:facility:leisureActivities",
                "versionG": "1",
                "serviceFacilityType": {"value": "leisureActivities"},
            }
        },
    ]  # BUS_STOP has no facility type: left out and counted
    assert published.stats[("static", "json")].unmapped[("location.facilities", "BUS_STOP")] == 1


def test_a_stations_floor_vehicles_and_dedicated_spaces(published: Published) -> None:
    found = _stations(published)
    a, moto = found[STATION_A], found[STATION_MOTO]
    location = a["locationReference"]["locPointLocation"]
    assert location["supplementaryPositionalDescription"] == {
        "locationDescription": {"values": [{"lang": "nl", "value": "Verdieping -1"}]}
    }
    assert a["applicableForVehicles"] == [{"fuelType": [{"value": "battery"}]}]
    assert a["dedicatedParkingSpaces"] == [
        {
            "idG": f"{STATION_A}:parking:customers",
            "versionG": "1",
            "numberOfSpaces": 1,
            "userSpecific": [{"value": "customers"}],
        },
        {
            "idG": f"{STATION_A}:parking:personsWithDisabilities",
            "versionG": "1",
            "numberOfSpaces": 1,
            "userSpecific": [{"value": "personsWithDisabilities"}],
        },
    ]
    assert (
        "supplementaryPositionalDescription" not in moto["locationReference"]["locPointLocation"]
    )  # no floor given
    assert moto["applicableForVehicles"] == [{"vehicleType": [{"value": "motorcycle"}]}]
    assert "dedicatedParkingSpaces" not in moto
    assert published.stats[("static", "json")].unmapped[("evse.parking_restrictions", "PLUGGED")] == 1


def test_one_unrestricted_bay_opens_the_station_to_any_vehicle(
    warehouse: WarehouseResource, published: Published
) -> None:
    evse = accessibility_mart().evses[1]  # LOC-0001-E2: EV_ONLY, CUSTOMERS -> CUSTOMERS only
    merge(warehouse, evses=[at(evse, 30, parking_restrictions=json.dumps(["CUSTOMERS"]))])
    second = day(warehouse, 2)
    assert "applicableForVehicles" not in _stations(second)[STATION_A]
    # The station's content changed, its charging points' did not.
    assert changed(of(published), of(second)) == {
        ("station", STATION_A): (("1", "2026-11-01T08:00:00Z"), ("2", "2026-11-01T08:30:00Z"))
    }


def test_a_second_bay_for_people_with_disabilities_is_counted(
    warehouse: WarehouseResource, published: Published
) -> None:
    evse = accessibility_mart().evses[1]
    merge(
        warehouse, evses=[at(evse, 45, parking_restrictions=json.dumps(["EV_ONLY", "CUSTOMERS", "DISABLED"]))]
    )
    spaces = {
        d["idG"]: (d["numberOfSpaces"], d["versionG"])
        for d in _stations(day(warehouse, 2))[STATION_A]["dedicatedParkingSpaces"]
    }
    assert spaces == {
        f"{STATION_A}:parking:customers": (1, "2"),
        f"{STATION_A}:parking:personsWithDisabilities": (2, "2"),
    }


def test_the_xml_carries_them_in_the_extensions(warehouse: WarehouseResource, published: Published) -> None:
    text = publish(warehouse, documents_=(("static", "xml"),)).documents[("static", "xml")].decode()
    assert (
        f'<afir:supplementalFacility><afir:afacSupplementalEquipment id="{SITE}:facility:internetWireless" '
        'version="1">'
        "<afir:equipmentType>internetWireless</afir:equipmentType>"
    ) in text
    assert (
        "<afir:supplementaryPositionalDescription><afir:locationDescription><com:values>"
        '<com:value lang="nl">Verdieping -1</com:value></com:values></afir:locationDescription>'
    ) in text
    assert (
        f'<afir:dedicatedParkingSpaces id="{STATION_A}:parking:personsWithDisabilities" version="1">'
        "<afir:numberOfSpaces>1</afir:numberOfSpaces><afir:userSpecific>personsWithDisabilities</afir:userSpecific>"
    ) in text
