"""The DATEX II receiver simulator over real HTTP: the profile's schema sets wired for real, the
receiver's reading of a static table and of status deltas/snapshots, physics, auth and faults.

Expected values are literals (read off the profile's examples and the documents below), never
computed by the code under test."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import requests

from evpipeline import settings, simulators
from evpipeline.simulators.datex2 import Datex2Simulator, schema_errors
from evpipeline.simulators.toolkit import SimClock
from evpipeline_tests.typed import present, running

TOKEN = "test-datex2-token"
PUB = "$.payload.aegiEnergyInfrastructureTablePublication"
SITE0 = f"{PUB}.energyInfrastructureTable[0].energyInfrastructureSite[0]"
STATION0 = f"{SITE0}.energyInfrastructureStation[0]"
POINT0 = f"{STATION0}.refillPoint[0].aegiElectricChargingPoint"
POINT1 = f"{STATION0}.refillPoint[1].aegiElectricChargingPoint"
STATUS_PUB = "$.messageContainer.payload[0].aegiEnergyInfrastructureStatusPublication"
STATUS_SITE = f"{STATUS_PUB}.energyInfrastructureSiteStatus[0]"
STATUS_STATION = f"{STATUS_SITE}.energyInfrastructureStationStatus[0]"
STATUS_POINT = f"{STATUS_STATION}.refillPointStatus[0].aegiElectricChargingPointStatus"


@pytest.fixture(scope="module")
def _receiver() -> Iterator[Datex2Simulator]:
    # One server per module (stopping one costs the toolkit's poll interval); reset for every test.
    with running(Datex2Simulator(clock=SimClock(), token=TOKEN)) as sim:
        yield sim


@pytest.fixture
def nap(_receiver: Datex2Simulator, clock: SimClock) -> Datex2Simulator:
    _receiver.reset(clock)
    _receiver.max_body_bytes = 64 * 1024 * 1024
    _receiver.set_retry_after(1)
    return _receiver


def post(
    sim: Datex2Simulator,
    endpoint: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    raw: bytes | None = None,
    content_type: str | None = "application/json",
) -> requests.Response:
    headers = {
        **({"Authorization": f"Bearer {token}"} if token is not None else {}),
        **({"Content-Type": content_type} if content_type else {}),
    }
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(f"{sim.url}/datex2/{endpoint}", data=data, headers=headers, timeout=10)


def example(name: str) -> Any:
    folder = resources.files("evpipeline.simulators.datex2").joinpath("profile", "examples")
    return json.loads(folder.joinpath(name).read_text(encoding="utf-8"))


def official_static() -> Any:
    return example("EnergyInfrastructureTablePublication_rev2.json")


def official_status() -> Any:
    return example("EnergyInfrastructureStatusPublication_rev2.json")


def misspell_first(document: Any, key: str, wrong: str) -> Any:
    return json.loads(json.dumps(document).replace(f'"{key}"', f'"{wrong}"', 1))


# --------------------------------------------------------------------------------------------
# Our own small documents (literals)


def small_static() -> dict[str, Any]:
    """One site, one station, two charging points with connectors, an adHoc energy rate; the
    operator defined once (site) and referenced (station)."""
    return {
        "payload": {
            "modelBaseVersionG": "3",
            "profileNameG": "AFIR Energy Infrastructure",
            "profileVersionG": "01-00-00",
            "aegiEnergyInfrastructureTablePublication": {
                "lang": "nl",
                "publicationTime": "2026-11-01T11:59:00Z",
                "publicationCreator": {"country": "NL", "nationalIdentifier": "NL-EVP"},
                "energyInfrastructureTable": [
                    {
                        "idG": "TABLE-NL",
                        "versionG": "3",
                        "energyInfrastructureSite": [
                            {
                                "idG": "SITE-UTR-1",
                                "versionG": "2",
                                "lastUpdated": "2026-10-31T09:00:00Z",
                                "locationReference": {
                                    "locPointLocation": {
                                        "pointByCoordinates": {
                                            "pointCoordinates": {"latitude": 52.0907, "longitude": 5.1214}
                                        }
                                    }
                                },
                                "operator": {
                                    "afacReferenceableOrganisation": {
                                        "idG": "OP-EVB",
                                        "versionG": "1",
                                        "name": {"values": [{"lang": "nl", "value": "EV Bedrijf"}]},
                                        "legalName": {"values": [{"lang": "nl", "value": "EV Bedrijf B.V."}]},
                                    }
                                },
                                "energyInfrastructureStation": [
                                    {
                                        "idG": "STATION-UTR-1",
                                        "versionG": "1",
                                        "lastUpdated": "2026-10-31T09:00:00Z",
                                        "totalMaximumPower": 172000,
                                        "numberOfRefillPoints": 2,
                                        "serviceType": [{"serviceType": {"value": "unattended"}}],
                                        "operator": {
                                            "afacOrganisationByReference": {
                                                "organisationReference": {
                                                    "targetClass": "afacIdentifiableOrganisation",
                                                    "idG": "OP-EVB",
                                                    "versionG": "1",
                                                }
                                            }
                                        },
                                        "refillPoint": [
                                            {
                                                "aegiElectricChargingPoint": {
                                                    "idG": "NL*EVB*E1",
                                                    "versionG": "4",
                                                    "lastUpdated": "2026-10-31T09:00:00Z",
                                                    "deliveryUnit": {"value": "kWh"},
                                                    "currentType": {"value": "ac"},
                                                    "chargingMode": {"value": "mode3AC3p"},
                                                    "numberOfConnectors": 1,
                                                    "availableChargingPower": [22000, 11000],
                                                    "connector": [
                                                        {
                                                            "connectorType": {"value": "iec62196T2"},
                                                            "maxPowerAtSocket": 22000,
                                                            "voltage": 230,
                                                            "maximumCurrent": 32,
                                                        }
                                                    ],
                                                    "electricEnergy": [
                                                        {
                                                            "energyRate": [
                                                                {
                                                                    "idG": "RATE-ADHOC-AC",
                                                                    "ratePolicy": {"value": "adHoc"},
                                                                    "lastUpdated": "2026-10-30T08:00:00Z",
                                                                    "applicableCurrency": ["EUR"],
                                                                    "energyPrice": [
                                                                        {
                                                                            "priceType": {
                                                                                "value": "pricePerKWh"
                                                                            },
                                                                            "value": 0.59,
                                                                        }
                                                                    ],
                                                                }
                                                            ]
                                                        }
                                                    ],
                                                }
                                            },
                                            {
                                                "aegiElectricChargingPoint": {
                                                    "idG": "NL*EVB*E2",
                                                    "versionG": "1",
                                                    "lastUpdated": "2026-10-31T09:00:00Z",
                                                    "deliveryUnit": {"value": "kWh"},
                                                    "currentType": {"value": "dc"},
                                                    "chargingMode": {"value": "mode4DC"},
                                                    "numberOfConnectors": 1,
                                                    "availableChargingPower": [150000],
                                                    "connector": [
                                                        {
                                                            "connectorType": {"value": "iec62196T2COMBO"},
                                                            "maxPowerAtSocket": 150000,
                                                            "voltage": 920,
                                                            "maximumCurrent": 200,
                                                        }
                                                    ],
                                                    "electricEnergy": [
                                                        {
                                                            "energyRateByReference": [
                                                                {
                                                                    "targetClass": "aegiEnergyRate",
                                                                    "idG": "RATE-ADHOC-AC",
                                                                }
                                                            ]
                                                        }
                                                    ],
                                                }
                                            },
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


def point_status(
    point_id: str = "NL*EVB*E1",
    version: str = "4",
    status: str = "charging",
    last_updated: str = "2026-11-01T12:00:00Z",
    rate: str | None = None,
    price: float = 0.65,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "aegiElectricChargingPointStatus": {
            "reference": {"targetClass": "FacilityObject", "idG": point_id, "versionG": version},
            "lastUpdated": last_updated,
            "status": {"value": status},
        }
    }
    if rate is not None:
        body["aegiElectricChargingPointStatus"]["energyRateUpdate"] = [
            {
                "lastUpdated": last_updated,
                "energyRateReference": {"targetClass": "EnergyRate", "idG": rate},
                "energyPrice": [{"priceType": {"value": "pricePerKWh"}, "value": price}],
            }
        ]
    return body


def status_message(
    *points: dict[str, Any], protocol: str = "deltaPush", table_version: str = "3"
) -> dict[str, Any]:
    return {
        "messageContainer": {
            "payload": [
                {
                    "modelBaseVersionG": "3",
                    "profileNameG": "AFIR Energy Infrastructure",
                    "profileVersionG": "01-00-00",
                    "aegiEnergyInfrastructureStatusPublication": {
                        "lang": "nl",
                        "publicationTime": "2026-11-01T12:00:05Z",
                        "publicationCreator": {"country": "NL", "nationalIdentifier": "NL-EVP"},
                        "tableReference": [
                            {
                                "targetClass": "EnergyInfrastructureTable",
                                "idG": "TABLE-NL",
                                "versionG": table_version,
                            }
                        ],
                        "energyInfrastructureSiteStatus": [
                            {
                                "reference": {
                                    "targetClass": "FacilityObject",
                                    "idG": "SITE-UTR-1",
                                    "versionG": "2",
                                },
                                "energyInfrastructureStationStatus": [
                                    {
                                        "reference": {
                                            "targetClass": "FacilityObject",
                                            "idG": "STATION-UTR-1",
                                            "versionG": "1",
                                        },
                                        "refillPointStatus": list(points),
                                    }
                                ],
                            }
                        ],
                    },
                }
            ],
            "exchangeInformation": {
                "exchangeContext": {
                    "codedExchangeProtocol": {"value": protocol},
                    "exchangeSpecificationVersion": "3.0",
                    "supplierOrCisRequester": {},
                },
                "dynamicInformation": {
                    "exchangeStatus": {"value": "online"},
                    "messageGenerationTimestamp": "2026-11-01T12:00:05Z",
                },
            },
        }
    }


# --------------------------------------------------------------------------------------------
# The profile's official examples: the schema wiring is real


def test_the_official_examples_validate_against_their_schema_sets() -> None:
    assert schema_errors("static", official_static()) == []
    assert schema_errors("status", official_status()["messageContainer"], "$.messageContainer") == []


def test_a_misspelt_key_in_each_example_is_refused_by_the_schema(nap: Datex2Simulator) -> None:
    static = post(nap, "static", misspell_first(official_static(), "lastUpdated", "lastUpdatd"))
    assert static.status_code == 400 and static.json()["accepted"] is False
    assert static.json()["errors"][0] == (
        f"{SITE0}: Additional properties are not allowed ('lastUpdatd' was unexpected)"
    )
    status = post(
        nap, "status", misspell_first(official_status(), "currentChargingPower", "currentChargingPowr")
    )
    assert status.status_code == 400
    assert status.json()["errors"][0] == (
        "$.messageContainer.payload[0].aegiEnergyInfrastructureStatusPublication.energyInfrastructureSiteStatus[0]"
        ".energyInfrastructureStationStatus[0].refillPointStatus[0].aegiElectricChargingPointStatus: "
        "Additional properties are not allowed ('currentChargingPowr' was unexpected)"
    )
    # And in-process, the same wiring: a required member removed is named.
    container = official_status()["messageContainer"]
    del container["exchangeInformation"]["dynamicInformation"]["messageGenerationTimestamp"]
    assert schema_errors("status", container, "$.messageContainer") == [
        "$.messageContainer.exchangeInformation.dynamicInformation.messageGenerationTimestamp: "
        "required property is missing"
    ]


def test_the_official_static_example_is_schema_valid_but_refused_for_two_meanings(
    nap: Datex2Simulator,
) -> None:
    """Decided and documented (docs/datex2.md): the example is syntactically correct (no schema
    error) and incomplete on purpose. The receiver refuses it for exactly two readings:
    - station 1's energyDistributor refers to grid operator 01B5CCA0-... "already specified
      elsewhere", which this publication never defines (S3);
    - its publicationTime 2025-01-10T11:13:51+01:00 is before energy rate 7F302DA6-...'s
      lastUpdated 2025-06-01T11:30:51+02:00 (S9).
    Station 2's duplicate coordinate (latitude 50.779594 = longitude 50.779594) is within the WGS84
    ranges and passes (a range check cannot see it); its missing AFIR elements (operator, helpdesk,
    address) are not among the receiver's rules."""
    response = post(nap, "static", official_static())
    assert response.status_code == 400
    assert response.json() == {
        "accepted": False,
        "delivery": "static-000001",
        "errors": [
            f"{SITE0}.energyInfrastructureStation[0].energyDistributor.afacOrganisationByReference"
            ".organisationReference.idG: "
            "refers to referenceable organisation '01B5CCA0-E746-4084-9EEB-47F0DB297AB0', "
            "which is not defined in this publication",
            f"{PUB}.publicationTime: 2025-01-10T11:13:51+01:00 is before the newest lastUpdated in the "
            "document (2025-06-01T11:30:51+02:00 at "
            f"{SITE0}.energyInfrastructureStation[1].refillPoint[0].aegiElectricChargingPoint"
            ".electricEnergy[1].energyRate[1].lastUpdated); "
            "publicationTime is when the publication was created",
        ],
    }
    assert nap.accepted_static() is None


def test_the_official_status_example_is_accepted_against_the_corrected_official_static(
    nap: Datex2Simulator,
) -> None:
    static = official_static()
    publication = static["payload"]["aegiEnergyInfrastructureTablePublication"]
    publication["publicationTime"] = "2025-06-01T11:30:51+02:00"
    station = publication["energyInfrastructureTable"][0]["energyInfrastructureSite"][0][
        "energyInfrastructureStation"
    ][0]
    station["energyDistributor"] = {
        "afacReferenceableOrganisation": {
            "idG": "01B5CCA0-E746-4084-9EEB-47F0DB297AB0",
            "versionG": "1",
            "name": {"values": [{"lang": "de", "value": "Netzbetreiber"}]},
        }
    }
    assert post(nap, "static", static).json() == {"accepted": True, "delivery": "static-000001"}
    assert present(nap.accepted_static())["counts"] == {
        "tables": 1,
        "sites": 1,
        "stations": 2,
        "charging_points": 4,
        "connectors": 6,
        "energy_rates": 7,
        "organisations": 3,
    }

    response = post(nap, "status", official_status())
    assert response.json() == {"accepted": True, "delivery": "status-000002"}
    held = present(nap.point_status("73ABE928-707D-4A99-8043-4293EE685504"))
    assert (held["status"], held["versionG"], held["lastUpdated"]) == (
        "charging",
        "2",
        "2025-02-02T12:51:03.012+01:00",
    )
    assert held["energyRateUpdates"] == {
        "74034E3E-9D2F-4410-BE6F-CAA3176D69B4": {
            "lastUpdated": "2025-02-02T12:51:03.012+01:00",
            "energyPrice": [{"priceType": {"value": "pricePerKWh"}, "value": 0.37}],
        }
    }
    assert present(nap.last_delivery()).protocol == "snapshotPush"


# --------------------------------------------------------------------------------------------
# Static: accepted, held, and the receiver's reading


def test_a_small_valid_static_is_accepted_and_held(nap: Datex2Simulator) -> None:
    response = post(nap, "static", small_static())
    assert response.status_code == 200
    assert response.json() == {"accepted": True, "delivery": "static-000001"}
    held = present(nap.accepted_static())
    assert held["counts"] == {
        "tables": 1,
        "sites": 1,
        "stations": 1,
        "charging_points": 2,
        "connectors": 2,
        "energy_rates": 1,
        "organisations": 1,
    }
    assert held["tables"] == {"TABLE-NL": {"versionG": "3"}}
    assert held["sites"] == {"SITE-UTR-1": {"versionG": "2", "table": "TABLE-NL"}}
    assert held["stations"] == {
        "STATION-UTR-1": {"versionG": "1", "site": "SITE-UTR-1", "chargingPoints": ["NL*EVB*E1", "NL*EVB*E2"]}
    }
    assert held["chargingPoints"] == {
        "NL*EVB*E1": {"versionG": "4", "station": "STATION-UTR-1", "currentType": "ac"},
        "NL*EVB*E2": {"versionG": "1", "station": "STATION-UTR-1", "currentType": "dc"},
    }
    assert held["energyRates"] == {
        "RATE-ADHOC-AC": {
            "ratePolicy": {"value": "adHoc"},
            "lastUpdated": "2026-10-30T08:00:00Z",
            "applicableCurrency": ["EUR"],
            "energyPrice": [{"priceType": {"value": "pricePerKWh"}, "value": 0.59}],
        }
    }
    assert held["organisations"] == {"OP-EVB": {"versionG": "1"}}
    assert held["publicationTime"] == "2026-11-01T11:59:00Z"
    assert nap.static_document() == small_static()
    delivery = present(nap.last_delivery())
    assert (delivery.kind, delivery.accepted, delivery.errors, delivery.received_at) == (
        "static",
        True,
        [],
        nap.clock.now(),
    )


def test_static_meaning_rules_name_every_problem(nap: Datex2Simulator) -> None:
    doc = small_static()
    site = doc["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
        "energyInfrastructureSite"
    ][0]
    station = site["energyInfrastructureStation"][0]
    second = station["refillPoint"][1]["aegiElectricChargingPoint"]
    second["idG"] = "NL*EVB*E1"  # the same id as the first point
    second["electricEnergy"][0]["energyRateByReference"][0]["idG"] = "RATE-NOWHERE"
    station["operator"]["afacOrganisationByReference"]["organisationReference"]["versionG"] = "2"
    station["helpdesk"] = {
        "afacReferenceableOrganisation": copy.deepcopy(site["operator"]["afacReferenceableOrganisation"])
    }
    station["refillPoint"][0]["aegiElectricChargingPoint"]["availableChargingPower"] = [11000, 22000]
    station["numberOfRefillPoints"] = 3
    site["locationReference"]["locPointLocation"]["pointByCoordinates"]["pointCoordinates"]["longitude"] = (
        185.5
    )
    del station["refillPoint"][1]["aegiElectricChargingPoint"]["currentType"]
    response = post(nap, "static", doc)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        f"{POINT1}.currentType: required property is missing",
        f"{POINT1}.idG: charging point id 'NL*EVB*E1' is not unique (also at {POINT0})",
        f"{STATION0}.operator.afacOrganisationByReference.organisationReference.versionG: "
        "refers to version '2' of referenceable organisation 'OP-EVB', "
        f"but this publication defines version '1' (at {SITE0}.operator.afacReferenceableOrganisation)",
        f"{POINT1}.electricEnergy[0].energyRateByReference[0].idG: refers to energy rate 'RATE-NOWHERE', "
        "which is not defined in this publication",
        f"{STATION0}.helpdesk.afacReferenceableOrganisation.idG: referenceable organisation 'OP-EVB' is "
        f"defined again (identical content; first at {SITE0}.operator.afacReferenceableOrganisation): "
        "define it once and refer to it with afacOrganisationByReference",
        f"{POINT0}.availableChargingPower: the first value (11000) must be the maximum (22000)",
        f"{STATION0}.numberOfRefillPoints: 3, but the station has 2 refill points (refillPoint + "
        "refillPointByReference)",
        f"{SITE0}.locationReference.locPointLocation.pointByCoordinates.pointCoordinates.longitude: "
        "185.5 is outside the WGS84 range -180..180",
    ]
    assert nap.accepted_static() is None


def test_every_polygon_pair_outside_wgs84_is_named(nap: Datex2Simulator) -> None:
    doc = small_static()
    site = doc["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
        "energyInfrastructureSite"
    ][0]
    site["locationReference"] = {
        "locAreaLocation": {
            "gmlMultiPolygon": {
                "gmlPolygon": [
                    {
                        "exterior": {
                            "srsDimension": 2,
                            "srsName": "EPSG 4326 WGS84",
                            "posList": "52.0907 5.1214 95.5 5.1214 52.0907 190.25 52.0907 5.1214",
                        }
                    }
                ]
            }
        }
    }
    where = f"{SITE0}.locationReference.locAreaLocation.gmlMultiPolygon.gmlPolygon[0].exterior.posList"
    assert post(nap, "static", doc).json()["errors"] == [
        f"{where}: pair 1 (95.5 5.1214) is outside the WGS84 ranges",
        f"{where}: pair 2 (52.0907 190.25) is outside the WGS84 ranges",
    ]


def test_publication_time_and_profile_identity(nap: Datex2Simulator) -> None:
    doc = small_static()
    doc["payload"]["profileVersionG"] = "01-01-00"
    doc["payload"]["aegiEnergyInfrastructureTablePublication"]["publicationTime"] = (
        "2026-10-31T08:59:59+00:00"
    )
    assert post(nap, "static", doc).json()["errors"] == [
        '$.payload.profileVersionG: "01-01-00", but this receiver takes the profile with profileVersionG '
        '"01-00-00"',
        f"{PUB}.publicationTime: 2026-10-31T08:59:59+00:00 is before the newest lastUpdated in the document "
        f"(2026-10-31T09:00:00Z at {SITE0}.lastUpdated); publicationTime is when the publication was created",
    ]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        # 230 V x 16 A x 3 phases = 11040 W < 22000 W
        (
            {"maximumCurrent": 16},
            f"{POINT0}.connector[0].maxPowerAtSocket: 22000 W is above voltage x maximumCurrent x phases "
            "= 230 V x 16 A x 3 = 11040 W (chargingMode mode3AC3p, currentType ac; 1 % tolerance)",
        ),
        # no three-phase mode: one phase, 230 V x 32 A = 7360 W
        (
            {"chargingMode": None},
            f"{POINT0}.connector[0].maxPowerAtSocket: 22000 W is above voltage x maximumCurrent x phases "
            "= 230 V x 32 A x 1 = 7360 W (chargingMode absent, currentType ac; 1 % tolerance)",
        ),
        (
            {"availableChargingPower": [22000, 0]},
            f"{POINT0}.availableChargingPower[1]: 0 W; charging power must be greater than 0",
        ),
    ],
)
def test_physics_violations_are_refused(nap: Datex2Simulator, change: dict[str, Any], error: str) -> None:
    doc = small_static()
    point = doc["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
        "energyInfrastructureSite"
    ][0]["energyInfrastructureStation"][0]["refillPoint"][0]["aegiElectricChargingPoint"]
    for name, value in change.items():
        target = point["connector"][0] if name == "maximumCurrent" else point
        if value is None:
            del target[name]
        else:
            target[name] = value
    response = post(nap, "static", doc)
    assert (response.status_code, response.json()["errors"]) == (400, [error])


def test_within_one_percent_is_physics_enough(nap: Datex2Simulator) -> None:
    doc = small_static()
    point = doc["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
        "energyInfrastructureSite"
    ][0]["energyInfrastructureStation"][0]["refillPoint"][0]["aegiElectricChargingPoint"]
    point["connector"][0]["maxPowerAtSocket"] = 22300  # 22080 W + 1 % = 22300.8 W
    assert post(nap, "static", doc).status_code == 200


# --------------------------------------------------------------------------------------------
# Status: delta, snapshot and the refusals


def test_a_delta_push_for_one_point_is_accepted_and_updates_state(nap: Datex2Simulator) -> None:
    post(nap, "static", small_static())
    response = post(nap, "status", status_message(point_status(rate="RATE-ADHOC-AC", price=0.65)))
    assert response.status_code == 200
    assert response.json() == {"accepted": True, "delivery": "status-000002"}
    assert nap.point_status("NL*EVB*E1") == {
        "idG": "NL*EVB*E1",
        "versionG": "4",
        "station": "STATION-UTR-1",
        "site": "SITE-UTR-1",
        "status": "charging",
        "lastUpdated": "2026-11-01T12:00:00Z",
        "energyRateUpdates": {
            "RATE-ADHOC-AC": {
                "lastUpdated": "2026-11-01T12:00:00Z",
                "energyPrice": [{"priceType": {"value": "pricePerKWh"}, "value": 0.65}],
            }
        },
        "delivery": "status-000002",
        "received_at": "2026-11-01T12:00:00.000Z",
    }
    assert nap.point_status("NL*EVB*E2") is None
    assert present(nap.energy_rate("RATE-ADHOC-AC"))["updates"] == {
        "point NL*EVB*E1": {
            "lastUpdated": "2026-11-01T12:00:00Z",
            "energyPrice": [{"priceType": {"value": "pricePerKWh"}, "value": 0.65}],
        }
    }
    delivery = present(nap.last_delivery())
    assert (delivery.kind, delivery.protocol, delivery.counts) == (
        "status",
        "deltaPush",
        {"sites": 1, "stations": 1, "charging_points": 1, "energy_rate_updates": 1},
    )

    # A later delta for the other point leaves the first as it was; its price override stays.
    later = point_status("NL*EVB*E2", "1", "available", "2026-11-01T12:01:00Z")
    assert post(nap, "status", status_message(later)).status_code == 200
    assert set(nap.point_statuses()) == {"NL*EVB*E1", "NL*EVB*E2"}
    assert (
        present(nap.point_status("NL*EVB*E1"))["energyRateUpdates"]["RATE-ADHOC-AC"]["energyPrice"][0][
            "value"
        ]
        == 0.65
    )


def test_a_snapshot_push_replaces_every_status(nap: Datex2Simulator) -> None:
    post(nap, "static", small_static())
    assert (
        post(
            nap,
            "status",
            status_message(point_status("NL*EVB*E1"), point_status("NL*EVB*E2", "1", "available")),
        ).status_code
        == 200
    )
    assert set(nap.point_statuses()) == {"NL*EVB*E1", "NL*EVB*E2"}
    snapshot = status_message(
        point_status("NL*EVB*E2", "1", "outOfOrder", "2026-11-01T12:05:00Z"), protocol="snapshotPush"
    )
    assert post(nap, "status", snapshot).json() == {"accepted": True, "delivery": "status-000003"}
    assert {p: s["status"] for p, s in nap.point_statuses().items()} == {"NL*EVB*E2": "outOfOrder"}
    state = requests.get(f"{nap.url}/control/state", timeout=5).json()
    assert list(state["points"]) == ["NL*EVB*E2"] and state["accepted"] == 3


@pytest.mark.parametrize(
    ("points", "errors"),
    [
        (
            [point_status(version="3")],
            [
                f"{STATUS_POINT}.reference.versionG: charging point 'NL*EVB*E1' is version '3' here, "
                "but version '4' in the accepted static publication"
            ],
        ),
        (
            [point_status("NL*EVB*E9", "1")],
            [
                f"{STATUS_POINT}.reference.idG: no charging point 'NL*EVB*E9' in the accepted static "
                "publication"
            ],
        ),
        (
            [point_status(rate="RATE-SECRET")],
            [
                f"{STATUS_POINT}.energyRateUpdate[0].energyRateReference.idG: "
                "energy rate 'RATE-SECRET' was not declared in the accepted static publication"
            ],
        ),
        (
            [point_status(last_updated="2026-11-01T11:59:59Z")],
            [
                f"{STATUS_POINT}.lastUpdated: 2026-11-01T11:59:59Z is before 2026-11-01T12:00:00Z, "
                "the lastUpdated of the status the receiver holds for charging point 'NL*EVB*E1' "
                "(lastUpdated never goes backwards)"
            ],
        ),
    ],
    ids=["wrong-versionG", "unknown-point", "undeclared-energy-rate", "lastUpdated-backwards"],
)
def test_status_refusals_name_the_problem(
    nap: Datex2Simulator, points: list[dict[str, Any]], errors: list[str]
) -> None:
    post(nap, "static", small_static())
    assert (
        post(nap, "status", status_message(point_status())).status_code == 200
    )  # held: charging at 12:00:00Z
    before = nap.point_statuses()
    response = post(nap, "status", status_message(*points))
    assert response.status_code == 400
    assert response.json() == {"accepted": False, "errors": errors, "delivery": "status-000003"}
    assert nap.point_statuses() == before  # a refused delivery changes nothing


def test_a_status_before_any_static_is_refused(nap: Datex2Simulator) -> None:
    response = post(nap, "status", status_message(point_status()))
    assert response.status_code == 400
    assert response.json()["errors"] == [
        "$.messageContainer: no static publication has been accepted yet; a status refers to one "
        "(POST the static publication first)"
    ]
    assert nap.point_statuses() == {}


def test_a_wrong_table_version_and_an_unknown_protocol_are_refused(nap: Datex2Simulator) -> None:
    post(nap, "static", small_static())
    response = post(nap, "status", status_message(point_status(), protocol="statefulPush", table_version="2"))
    assert response.json()["errors"] == [
        "$.messageContainer.exchangeInformation.exchangeContext.codedExchangeProtocol.value: "
        '"statefulPush"; this receiver takes snapshotPush (the complete state) or deltaPush (the points it '
        "names)",
        f"{STATUS_PUB}.tableReference[0].versionG: table 'TABLE-NL' is version '2' here, "
        "but version '3' in the accepted static publication",
    ]


def test_a_new_static_drops_the_statuses_of_points_it_no_longer_has(nap: Datex2Simulator) -> None:
    post(nap, "static", small_static())
    post(
        nap, "status", status_message(point_status("NL*EVB*E1"), point_status("NL*EVB*E2", "1", "available"))
    )
    smaller = small_static()
    station = smaller["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
        "energyInfrastructureSite"
    ][0]["energyInfrastructureStation"][0]
    station["refillPoint"] = station["refillPoint"][:1]
    station["numberOfRefillPoints"] = 1
    assert post(nap, "static", smaller).status_code == 200
    assert list(nap.point_statuses()) == ["NL*EVB*E1"]


# --------------------------------------------------------------------------------------------
# Transport: auth, size, media type, JSON


def test_deliveries_without_the_right_bearer_token_are_401(nap: Datex2Simulator) -> None:
    for token, scheme in ((None, None), ("wrong-token", "Bearer"), (TOKEN, "Token")):
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"{scheme} {token}"
        response = requests.post(
            f"{nap.url}/datex2/static", data=json.dumps(small_static()), headers=headers, timeout=5
        )
        assert response.status_code == 401
        assert response.json() == {
            "accepted": False,
            "delivery": response.json()["delivery"],
            "errors": ["Authorization: a valid bearer token is required (Authorization: Bearer <token>)"],
        }
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "wrong-token" not in response.text and TOKEN not in response.text
    assert nap.accepted_static() is None
    assert [d.http_status for d in nap.deliveries()] == [401, 401, 401]


def test_size_media_type_and_malformed_json(nap: Datex2Simulator) -> None:
    nap.max_body_bytes = 100
    too_big = post(nap, "static", small_static())
    assert too_big.status_code == 413 and too_big.json()["accepted"] is False
    nap.max_body_bytes = 64 * 1024 * 1024
    assert post(nap, "static", small_static(), content_type="text/plain").json()["errors"] == [
        "Content-Type: text/plain; this receiver takes application/json (UTF-8)"
    ]
    assert post(nap, "static", small_static(), content_type=None).status_code == 415
    assert (
        post(nap, "static", small_static(), content_type="application/json; charset=iso-8859-1").status_code
        == 415
    )
    assert (
        post(nap, "static", small_static(), content_type="application/json; charset=UTF-8").status_code == 200
    )
    malformed = post(nap, "status", raw=b'{"messageContainer": {"payload": [}')
    assert (malformed.status_code, malformed.json()["errors"]) == (
        400,
        ["$: malformed JSON: Expecting value at line 1 column 35"],
    )
    assert post(nap, "status", raw=b"\xff\xfe{}").json()["errors"] == [
        "$: the body is not UTF-8 (invalid start byte at byte 0)"
    ]
    assert post(nap, "status", raw=b'{"a": NaN}').json()["errors"] == [
        "$: malformed JSON: NaN is not a JSON number"
    ]
    assert [d.http_status for d in nap.deliveries()] == [413, 415, 415, 415, 200, 400, 400, 400]


# --------------------------------------------------------------------------------------------
# Faults and the control surface


def test_an_injected_503_then_success(nap: Datex2Simulator) -> None:
    nap.fail_next(1, 503)
    failed = post(nap, "static", small_static())
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
    assert failed.json() == {"accepted": False, "errors": ["$: injected fault: HTTP 503"]}
    assert nap.accepted_static() is None
    assert post(nap, "static", small_static()).json() == {"accepted": True, "delivery": "static-000002"}
    assert [(d.http_status, d.accepted) for d in nap.deliveries()] == [(503, False), (200, True)]


def test_fault_knobs_over_http(nap: Datex2Simulator) -> None:
    knobs = requests.post(
        f"{nap.url}/control/faults",
        json={"fail": 2, "status": 429, "retry_after": 7, "endpoint": "status"},
        timeout=5,
    )
    assert knobs.json() == {"pending_faults": 2, "latency": 0.0, "retry_after": 7.0}
    assert post(nap, "static", small_static()).status_code == 200  # only /status is scripted
    limited = post(nap, "status", status_message(point_status()))
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert (
        requests.get(f"{nap.url}/control/deliveries", timeout=5).status_code == 200
    )  # control is never faulted
    assert post(nap, "status", status_message(point_status())).status_code == 429
    assert post(nap, "status", status_message(point_status())).status_code == 200
    assert (
        requests.post(f"{nap.url}/control/faults", json={"fail": 1, "status": 418}, timeout=5).status_code
        == 400
    )


def test_latency_and_a_dropped_connection(nap: Datex2Simulator) -> None:
    nap.add_latency(0.3)
    started = time.monotonic()
    assert post(nap, "static", small_static()).status_code == 200
    assert time.monotonic() - started >= 0.3
    nap.add_latency(0)
    nap.drop_connections(1)
    with pytest.raises(requests.exceptions.RequestException):
        post(nap, "status", status_message(point_status()))
    # The receiver processed it before the line dropped: a client retrying must be idempotent.
    assert present(nap.last_delivery()).accepted is True
    assert (
        post(nap, "status", status_message(point_status())).status_code == 200
    )  # the same lastUpdated again


def test_control_deliveries_state_and_reset(nap: Datex2Simulator) -> None:
    post(nap, "static", small_static())
    post(nap, "status", status_message(point_status(version="9")))
    deliveries = requests.get(f"{nap.url}/control/deliveries", timeout=5).json()["deliveries"]
    assert [
        (d["delivery"], d["kind"], d["protocol"], d["http_status"], d["accepted"], d["received_at"])
        for d in deliveries
    ] == [
        ("static-000001", "static", None, 200, True, "2026-11-01T12:00:00.000Z"),
        ("status-000002", "status", "deltaPush", 400, False, "2026-11-01T12:00:00.000Z"),
    ]
    assert deliveries[0]["counts"]["charging_points"] == 2 and len(deliveries[1]["errors"]) == 1
    state = requests.get(f"{nap.url}/control/state", timeout=5).json()
    assert (state["deliveries"], state["accepted"], state["points"]) == (2, 1, {})
    assert state["static"]["chargingPoints"]["NL*EVB*E1"]["versionG"] == "4"
    assert requests.post(f"{nap.url}/control/reset", timeout=5).json() == {"reset": True}
    assert (nap.accepted_static(), nap.deliveries()) == (None, [])


def test_registered_with_its_settings() -> None:
    assert settings.SIMULATOR_PORTS["datex2"] == 8706
    assert settings.DEV["DATEX2_PUSH_URL"] == "http://127.0.0.1:8706/datex2"
    assert settings.ENVIRONMENT["DATEX2_PUSH_URL"][0] == "" and settings.ENVIRONMENT["DATEX2_PUSH_TOKEN"][
        :2
    ] == ("", True)
    sim = simulators.build("datex2", token="from-settings")
    assert isinstance(sim, Datex2Simulator) and sim.token == "from-settings"
    with running(sim):
        assert simulators.env_for({"datex2": sim}) == {"DATEX2_PUSH_URL": f"{sim.url}/datex2"}
        assert post(sim, "static", small_static(), token="from-settings").status_code == 200
