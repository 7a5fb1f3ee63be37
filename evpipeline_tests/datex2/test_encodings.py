"""XML and JSON say the same, element by element, in every document: both are turned into one tree by
the XML rule (`normalise`, written independently of the encoder) and compared. Also: where the XML
puts what (3.7 placement vs the `afir:` extension), and the time formats of both encodings."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.fleet import KINDS, Published, generated_mart, publish
from evpipeline_tests.datex2.normalise import first_difference, json_tree, xml_tree
from evpipeline_tests.datex2.schemas import xsd
from evpipeline_tests.mart_fixture import standard_mart


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Published]:
    found = {}
    for name, mart in (("standard", standard_mart()), ("generated", generated_mart())):
        warehouse = WarehouseResource(database=str(tmp_path_factory.mktemp(name) / "warehouse.duckdb"))
        mart.write(warehouse)
        found[name] = publish(warehouse)
    return found


# ------------------------------------------------------------------------------------------------
# The normaliser on documents written by hand (so a mistake in it cannot hide one of the encoder's)

HAND_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<d2:payload xmlns:d2="http://datex2.eu/schema/3/d2Payload" xmlns:com="http://datex2.eu/schema/3/common"
  xmlns:egi="http://datex2.eu/schema/3/energyInfrastructure" xmlns:fac="http://datex2.eu/schema/3/facilities"
  xmlns:loc="http://datex2.eu/schema/3/locationReferencing" xmlns:locx="http://datex2.eu/schema/3/locationExtension"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:afir="urn:evpipeline:datex2:afir:01-00-00"
  xsi:type="egi:EnergyInfrastructureTablePublication" lang="nl" modelBaseVersion="3"
  profileName="AFIR Energy Infrastructure"
  profileVersion="01-00-00">
 <com:publicationTime>2026-11-02T03:00:00Z</com:publicationTime>
 <egi:energyInfrastructureTable id="T" version="4">
  <egi:energyInfrastructureSite id="S" version="2">
   <fac:name><com:values><com:value lang="nl">Laadplein</com:value></com:values></fac:name>
   <fac:operatingHours xsi:type="fac:OpenAllHours"/>
   <fac:locationReference xsi:type="loc:PointLocation">
    <loc:_locationReferenceExtension>
     <loc:facilityLocation><locx:timeZone>+01:00</locx:timeZone></loc:facilityLocation>
     <afir:nutsArea><afir:nutsCodeType>nuts1Code</afir:nutsCodeType><afir:nutsCode>NL3</afir:nutsCode></afir:nutsArea>
    </loc:_locationReferenceExtension>
    <loc:pointByCoordinates><loc:pointCoordinates><loc:latitude>52.1</loc:latitude></loc:pointCoordinates></loc:pointByCoordinates>
   </fac:locationReference>
   <egi:energyInfrastructureStation id="ST" version="1">
    <egi:refillPoint id="P" version="3" xsi:type="egi:ElectricChargingPoint">
     <egi:connector><egi:maxPowerAtSocket>22000.0</egi:maxPowerAtSocket></egi:connector>
     <egi:connector><egi:maxPowerAtSocket>11000</egi:maxPowerAtSocket></egi:connector>
     <egi:_electricChargingPointExtension>
      <afir:externalIdentifier><afir:identifier>NL*ALF*E1</afir:identifier>
       <afir:typeOfIdentifier _extendedValue="evseId">_extended</afir:typeOfIdentifier>
      </afir:externalIdentifier>
      <afir:currentType>ac</afir:currentType>
      <afir:electricEnergy><afir:isGreenEnergy>true</afir:isGreenEnergy>
       <afir:energyRateByReference targetClass="EnergyRate" id="R"/></afir:electricEnergy>
     </egi:_electricChargingPointExtension>
    </egi:refillPoint>
   </egi:energyInfrastructureStation>
   <egi:_energyInfrastructureSiteExtension>
    <afir:operator><afir:afacOrganisationByReference>
     <afir:organisationReference targetClass="ReferenceableOrganisation" id="O" version="1"/>
    </afir:afacOrganisationByReference></afir:operator>
   </egi:_energyInfrastructureSiteExtension>
  </egi:energyInfrastructureSite>
 </egi:energyInfrastructureTable>
</d2:payload>"""

HAND_JSON: dict[str, Any] = {
    "payload": {
        "modelBaseVersionG": "3",
        "profileNameG": "AFIR Energy Infrastructure",
        "profileVersionG": "01-00-00",
        "aegiEnergyInfrastructureTablePublication": {
            "lang": "nl",
            "publicationTime": "2026-11-02T03:00:00Z",
            "energyInfrastructureTable": [
                {
                    "idG": "T",
                    "versionG": "4",
                    "energyInfrastructureSite": [
                        {
                            "idG": "S",
                            "versionG": "2",
                            "name": {"values": [{"lang": "nl", "value": "Laadplein"}]},
                            "operatingHours": {"afacOpenAllHours": {}},
                            "locationReference": {
                                "locPointLocation": {
                                    "locLocationExtensionG": {
                                        "FacilityLocation": {
                                            "timeZone": "+01:00",
                                            "nutsArea": [
                                                {"nutsCodeType": {"value": "nuts1Code"}, "nutsCode": "NL3"}
                                            ],
                                        }
                                    },
                                    "pointByCoordinates": {"pointCoordinates": {"latitude": 52.1}},
                                }
                            },
                            "operator": {
                                "afacOrganisationByReference": {
                                    "organisationReference": {
                                        "targetClass": "ReferenceableOrganisation",
                                        "idG": "O",
                                        "versionG": "1",
                                    }
                                }
                            },
                            "energyInfrastructureStation": [
                                {
                                    "idG": "ST",
                                    "versionG": "1",
                                    "refillPoint": [
                                        {
                                            "aegiElectricChargingPoint": {
                                                "idG": "P",
                                                "versionG": "3",
                                                "externalIdentifier": [
                                                    {
                                                        "identifier": "NL*ALF*E1",
                                                        "typeOfIdentifier": {
                                                            "value": "extendedG",
                                                            "extendedValueG": "evseId",
                                                        },
                                                    }
                                                ],
                                                "currentType": {"value": "ac"},
                                                "connector": [
                                                    {"maxPowerAtSocket": 22000},
                                                    {"maxPowerAtSocket": 11000.0},
                                                ],
                                                "electricEnergy": [
                                                    {
                                                        "isGreenEnergy": True,
                                                        "energyRateByReference": [
                                                            {"targetClass": "EnergyRate", "idG": "R"}
                                                        ],
                                                    }
                                                ],
                                            }
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }
}


def test_the_normaliser_reads_a_hand_written_pair_as_the_same_tree() -> None:
    assert first_difference(xml_tree(HAND_XML), json_tree(HAND_JSON)) is None
    assert xml_tree(HAND_XML)["payload"][0]["aegiEnergyInfrastructureTablePublication"][0][
        "energyInfrastructureTable"
    ][0]["energyInfrastructureSite"][0]["locationReference"][0]["locPointLocation"][0][
        "FacilityLocation"
    ] == [{"timeZone": ["+01:00"], "nutsArea": [{"nutsCodeType": ["nuts1Code"], "nutsCode": ["NL3"]}]}]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<afir:currentType>ac<", b"<afir:currentType>dc<"),  # a value
        (b'<com:value lang="nl">', b'<com:value lang="en">'),  # a language
        (b'id="P" version="3"', b'id="P" version="4"'),  # a version
        (b'xsi:type="fac:OpenAllHours"', b'xsi:type="fac:UnknownOperatingHours"'),  # a subtype
        (b'_extendedValue="evseId"', b'_extendedValue="stationId"'),  # an extended value
        (b"<afir:nutsCode>NL3</afir:nutsCode>", b""),  # a missing element
        (
            b"<egi:connector><egi:maxPowerAtSocket>11000</egi:maxPowerAtSocket></egi:connector>",
            b"",
        ),  # a missing list item
    ],
)
def test_the_normaliser_finds_a_difference(old: bytes, new: bytes) -> None:
    assert old in HAND_XML
    assert first_difference(xml_tree(HAND_XML.replace(old, new)), json_tree(HAND_JSON)) is not None


# ------------------------------------------------------------------------------------------------
# Every document: the same content in both encodings


@pytest.mark.parametrize("mart", ["standard", "generated"])
@pytest.mark.parametrize("kind", KINDS)
def test_xml_and_json_carry_the_same_content(documents: dict[str, Published], mart: str, kind: str) -> None:
    published = documents[mart]
    from_xml = xml_tree(published.documents[(kind, "xml")])
    from_json = json_tree(json.loads(published.documents[(kind, "json")]))
    assert first_difference(from_xml, from_json) is None
    assert from_xml == from_json


# ------------------------------------------------------------------------------------------------
# Where the XML puts what

NS = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "egi": "http://datex2.eu/schema/3/energyInfrastructure",
    "fac": "http://datex2.eu/schema/3/facilities",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "locx": "http://datex2.eu/schema/3/locationExtension",
}
AFIR = "urn:evpipeline:datex2:afir:01-00-00"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def _qname(prefixed: str) -> str:
    prefix, _, name = prefixed.partition(":")
    return f"{{{NS[prefix]}}}{name}"


def placement(document: bytes) -> tuple[set[tuple[str, str]], set[str]]:
    """Walking the static XML with 3.7's types: (3.7 type, element) of every extension child whose name
    the type has in 3.7 too, and the namespaces of the elements in 3.7 placement."""
    schema = xsd()
    shared: set[tuple[str, str]] = set()
    namespaces: set[str] = set()

    def walk(element: ET.Element, xtype: Any) -> None:
        if XSI_TYPE in element.attrib:
            xtype = schema.maps.types[_qname(element.attrib[XSI_TYPE])]
        names = (
            {e.name: e for e in xtype.content.iter_elements()}
            if xtype.is_complex() and not xtype.has_simple_content()
            else {}
        )
        for child in element:
            local = child.tag.rsplit("}", 1)[-1]
            if local.startswith("_") and local.endswith("Extension"):
                for inner in child:
                    inner_local = inner.tag.rsplit("}", 1)[-1]
                    if inner.tag.startswith(f"{{{AFIR}}}") and any(
                        n and n.rsplit("}", 1)[-1] == inner_local for n in names
                    ):
                        shared.add((str(xtype.local_name), inner_local))
                continue
            namespaces.add(child.tag.split("}")[0][1:])
            declared = names.get(child.tag)
            if declared is not None:
                walk(child, declared.type)

    root = ET.fromstring(document)
    walk(root, schema.maps.types[_qname(root.attrib[XSI_TYPE])])
    return shared, namespaces


def test_profile_properties_go_into_extensions_only_where_3_7_has_no_place_for_them(
    documents: dict[str, Published],
) -> None:
    shared, namespaces = placement(documents["generated"].documents[("static", "xml")])
    # The only profile properties in an extension although 3.7's type has an element of that name: 3.7's
    # is of another type (externalIdentifier: a string, not the profile's typed identifier list; operator:
    # an organisation without the profile's referenceable/by-reference choice; supplementalFacility: 3.7's
    # is abstract and the 3.7 schema set has no concrete type for a service facility or equipment).
    assert shared == {
        ("EnergyInfrastructureSite", "externalIdentifier"),
        ("EnergyInfrastructureStation", "externalIdentifier"),
        ("ElectricChargingPoint", "externalIdentifier"),
        ("EnergyInfrastructureSite", "operator"),
        ("EnergyInfrastructureSite", "supplementalFacility"),
    }
    assert AFIR not in namespaces  # outside the extensions, nothing but 3.7
    text = documents["generated"].documents[("static", "xml")].decode()
    assert "<afir:nutsArea>" in text and text.count("<afir:nutsArea>") == text.count("<loc:facilityLocation>")


def test_the_status_xml_mirrors_the_json_in_the_afir_namespace(documents: dict[str, Published]) -> None:
    root = ET.fromstring(documents["generated"].documents[("status", "xml")])
    assert root.tag == f"{{{AFIR}}}messageContainer"
    assert {element.tag.split("}")[0][1:] for element in root.iter()} == {AFIR}


DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TIME_OF_DAY = re.compile(r"^\d{2}:\d{2}:\d{2}Z$")  # the profile's technical Z: local time, not UTC


@pytest.mark.parametrize("kind", KINDS)
def test_times_are_utc_seconds_and_times_of_day_carry_the_technical_z(
    documents: dict[str, Published], kind: str
) -> None:
    stamps: dict[str, list[str]] = {"datetime": [], "time": []}
    date_keys = (
        "lastUpdated",
        "publicationTime",
        "overallStartTime",
        "overallEndTime",
        "startOfPeriod",
        "endOfPeriod",
        "messageGenerationTimestamp",
    )
    for published in documents.values():
        for element in ET.fromstring(published.documents[(kind, "xml")]).iter():
            local = element.tag.rsplit("}", 1)[-1]
            if local in date_keys:
                stamps["datetime"].append(element.text or "")
            elif local in ("startTimeOfPeriod", "endTimeOfPeriod"):
                stamps["time"].append(element.text or "")
        text = published.documents[(kind, "json")].decode()
        stamps["datetime"] += re.findall(rf'"(?:{"|".join(date_keys)})":"([^"]*)"', text)
        stamps["time"] += re.findall(r'"(?:startTimeOfPeriod|endTimeOfPeriod)":"([^"]*)"', text)
    assert stamps["datetime"] and all(DATETIME.match(s) for s in stamps["datetime"]), [
        s for s in stamps["datetime"] if not DATETIME.match(s)
    ][:5]
    assert all(TIME_OF_DAY.match(s) for s in stamps["time"]), [
        s for s in stamps["time"] if not TIME_OF_DAY.match(s)
    ][:5]
    if kind == "static":
        assert (
            "22:00:00Z" in stamps["time"] and "12:30:00Z" in stamps["time"]
        )  # a tariff's and an opening time
