"""What the DATEX II tests publish: a generated fleet with every value the mapping has to carry, and
the four documents of a warehouse state written by the real publisher.

The fleet (`generated_mart`) cycles over every OCPI connector type, connector format, power type,
EVSE status and capability, the four opening-hours shapes OCPI allows, and one tariff of each shape
the ad hoc price conversion knows (ENERGY, TIME, FLAT without VAT, PARKING_TIME, times of day and
weekdays with a fallback element, kWh and duration bounds, minimum and maximum price, a date range),
facilities, floor levels and parking restrictions of each kind;
two CPOs with operator entries; stations of one and of two charging points. Two EVSEs are unpublishable on
purpose: one whose only tariff DATEX II cannot express (`T-BAD`, restricted by power) and one with a REGULAR
(contract) tariff only.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from evpipeline.datex2 import Creator, Publisher, Rejection
from evpipeline.ocpi import definition as ocpi
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.mart_fixture import ENERGY_MIX, HOURS_247, MartRows, later

Kind = Literal["static", "status"]
Fmt = Literal["xml", "json"]
KINDS: tuple[Kind, ...] = ("static", "status")
FORMATS: tuple[Fmt, ...] = ("xml", "json")
DOCUMENTS: tuple[tuple[Kind, Fmt], ...] = tuple((k, f) for k in KINDS for f in FORMATS)
CREATOR = Creator("NL", "evpipeline-test")
PUBLISHED_AT = datetime(2026, 11, 2, 3, 0, 0, tzinfo=UTC)

# Every opening-hours shape our model (OCPI Hours) allows: open all hours; open all hours with a
# closing; regular hours every day; split regular hours with an exceptional opening and closing.
HOURS_SHAPES: list[dict[str, Any]] = [
    HOURS_247,
    {
        "twentyfourseven": True,
        "exceptional_closings": [
            {"period_begin": "2026-12-25T00:00:00Z", "period_end": "2026-12-26T00:00:00Z"}
        ],
    },
    {
        "twentyfourseven": False,
        "regular_hours": [
            {"weekday": d, "period_begin": "07:00", "period_end": "23:00"} for d in range(1, 8)
        ],
    },
    {
        "twentyfourseven": False,
        "regular_hours": [
            *({"weekday": d, "period_begin": "08:00", "period_end": "12:30"} for d in range(1, 6)),
            *({"weekday": d, "period_begin": "13:30", "period_end": "18:00"} for d in range(1, 6)),
            {"weekday": 6, "period_begin": "10:00", "period_end": "16:00"},
        ],
        "exceptional_openings": [
            {"period_begin": "2026-12-06T10:00:00Z", "period_end": "2026-12-06T14:00:00Z"}
        ],
        "exceptional_closings": [
            {"period_begin": "2026-12-24T16:00:00Z", "period_end": "2026-12-27T08:00:00Z"}
        ],
    },
]
CONNECTOR_TYPES: list[str] = list(get_args(ocpi.ConnectorType))
POWER_TYPES: list[str] = list(get_args(ocpi.PowerType))
CONNECTOR_FORMATS: list[str] = list(get_args(ocpi.ConnectorFormat))
STATUSES: list[str] = list(get_args(ocpi.Status))
CAPABILITIES: list[str] = list(get_args(ocpi.Capability))
# Facilities and parking restrictions cycled per location (a DISABLED bay on the first EVSE only).
FACILITY_SHAPES: list[list[str]] = [
    ["SUPERMARKET"],
    ["HOTEL", "RESTAURANT", "WIFI"],
    [],
    ["TRAIN_STATION", "CAFE"],
    ["SPORT", "RECREATION_AREA"],
]
PARKING_SHAPES: list[list[str]] = [
    ["EV_ONLY"],
    ["EV_ONLY", "DISABLED"],
    [],
    ["MOTORCYCLES"],
    ["CUSTOMERS", "PLUGGED"],
]
FLOORS: list[str | None] = ["-1", "0", None]
MIX_WITH_IMPACT = {
    **ENERGY_MIX,
    "is_green_energy": False,
    "energy_product_name": "Grijze Stroom",
    "environ_impact": [
        {"category": "CARBON_DIOXIDE", "amount": 372.5},
        {"category": "NUCLEAR_WASTE", "amount": 0.0003},
    ],
}


def _energy(price: float, vat: float | None = 21.0, **restrictions: Any) -> dict[str, Any]:
    component = {
        "type": "ENERGY",
        "price": price,
        "step_size": 1,
        **({"vat": vat} if vat is not None else {}),
    }
    return {"price_components": [component], **({"restrictions": restrictions} if restrictions else {})}


# One tariff per shape the conversion knows (tariff id -> mart.tariffs overrides).
TARIFF_SHAPES: dict[str, dict[str, Any]] = {
    "T-STD": {"elements": [_energy(0.35)]},
    "T-TIME": {
        "elements": [{"price_components": [{"type": "TIME", "price": 3.0, "vat": 21.0, "step_size": 60}]}]
    },
    "T-FLAT": {
        "type": None,
        "elements": [{"price_components": [{"type": "FLAT", "price": 1.5, "step_size": 1}]}],
    },
    "T-PARK": {
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.3, "vat": 21.0, "step_size": 1},
                    {"type": "PARKING_TIME", "price": 6.0, "vat": 21.0, "step_size": 300},
                ]
            }
        ]
    },
    "T-TOD": {
        "elements": [
            _energy(0.25, start_time="22:00", end_time="06:00", day_of_week=["SATURDAY", "SUNDAY"]),
            _energy(0.4),
        ]
    },
    "T-KWH": {
        "elements": [
            _energy(0.3, min_kwh=2.0, max_kwh=20.0),
            {
                "price_components": [{"type": "TIME", "price": 2.4, "vat": 21.0, "step_size": 60}],
                "restrictions": {"min_duration": 3600, "max_duration": 7200},
            },
        ]
    },
    "T-MINMAX": {
        "elements": [_energy(0.5)],
        "min_price": {"excl_vat": 1.0, "incl_vat": 1.21},
        "max_price": {"excl_vat": 25.0, "incl_vat": 30.25},
    },
    "T-WINTER": {"elements": [_energy(0.33, start_date="2026-11-01", end_date="2027-03-31")]},
    "T-ENDING": {
        "elements": [_energy(0.31)],
        "start_date_time": datetime(2026, 10, 1, tzinfo=UTC),
        "end_date_time": datetime(2027, 1, 1, tzinfo=UTC),
    },
}
UNPUBLISHABLE_TARIFFS: dict[str, dict[str, Any]] = {
    "T-BAD": {"elements": [_energy(0.45, max_power=11.0)]},  # a power restriction: no DATEX II form
    "T-REG": {"type": "REGULAR", "elements": [_energy(0.3)]},  # a contract price only: no ad hoc price
}


def generated_mart(n_locations: int = 36) -> MartRows:
    """`n_locations` locations of 2 EVSEs x 2 connectors cycling over every value (see the module
    docstring), plus LOC-0901 (one EVSE on T-BAD) and LOC-0902 (one EVSE on T-REG only)."""
    m = MartRows()
    m.operator("ALF")
    m.operator(
        "BRV",
        staffed=True,
        helpdesk_phone="+31 20 555 0101",
        helpdesk_email=None,
        helpdesk_name="Bravo Service",
        payment_means=json.dumps(["paymentCreditCard", "nfc"]),
        website=None,
    )
    for party in ("ALF", "BRV"):
        for tariff_id, shape in {**TARIFF_SHAPES, **UNPUBLISHABLE_TARIFFS}.items():
            columns: dict[str, Any] = {
                k: json.dumps(v) if k in ("elements", "min_price", "max_price") else v
                for k, v in shape.items()
            }
            m.tariff(
                tariff_id,
                party=party,
                tariff_alt_text=json.dumps([{"language": "nl", "text": f"Tarief {tariff_id}"}]),
                **columns,
            )
    shapes = list(TARIFF_SHAPES)
    k = 0
    for n in range(1, n_locations + 1):
        party = "BRV" if n % 5 == 0 else "ALF"
        loc = m.location(
            n,
            party=party,
            opening_times=json.dumps(HOURS_SHAPES[n % len(HOURS_SHAPES)]),
            energy_mix=json.dumps(MIX_WITH_IMPACT if n % 2 else ENERGY_MIX),
            latitude=round(52.0 + n / 997, 6),
            longitude=round(4.9 + n / 991, 6),
            address=f"Kerkstraat {n}" if n % 3 else f"Stationsplein {n}a",
            updated=later(n % 50),
            facilities=json.dumps(FACILITY_SHAPES[n % len(FACILITY_SHAPES)]),
        )
        for e in (1, 2):
            i = 2 * n + e
            power_type = POWER_TYPES[i % len(POWER_TYPES)]
            evse = m.evse(
                loc,
                e,
                status=STATUSES[i % len(STATUSES)],
                updated=later(n % 60),
                capabilities=json.dumps(CAPABILITIES[(n + e) % len(CAPABILITIES) :]) if e == 1 else None,
                station_id=f"ST-{n:04d}" if n % 2 == 0 else None,
                floor_level=FLOORS[n % len(FLOORS)],
                parking_restrictions=json.dumps(
                    [r for r in PARKING_SHAPES[n % len(PARKING_SHAPES)] if r != "DISABLED" or e == 1]
                ),
                latitude=round(loc["latitude"] + 0.000123, 6) if e == 2 else None,
                longitude=round(loc["longitude"] - 0.000099, 6) if e == 2 else None,
            )
            for c in (1, 2):
                k += 1
                phases = ocpi.PHASES[power_type]
                voltage, amperage = (
                    (400, 125 if c == 1 else 60) if power_type == "DC" else (230, 16 if c == 1 else 10)
                )
                m.connector(
                    evse,
                    c,
                    standard=CONNECTOR_TYPES[k % len(CONNECTOR_TYPES)],
                    format=CONNECTOR_FORMATS[(k // 2) % len(CONNECTOR_FORMATS)],
                    power_type=power_type,
                    max_voltage=voltage,
                    max_amperage=amperage,
                    max_electric_power=voltage * amperage * phases,
                    tariffs=[shapes[k % len(shapes)]],
                )
    for n, tariff in ((901, "T-BAD"), (902, "T-REG")):
        loc = m.location(n)
        m.connector(m.evse(loc, 1), 1, tariffs=[tariff])
        m.connector(m.evse(loc, 2), 1, tariffs=["T-STD"])
    return m


# ------------------------------------------------------------------------------------------------
# Publishing


@dataclass
class Published:
    """The four documents of one warehouse state and what the publisher reported."""

    documents: dict[tuple[str, str], bytes]
    rejections: list[Rejection]
    stats: dict[tuple[str, str], Any] = field(default_factory=dict)
    table_id: str = ""
    table_version: str = ""
    changes: Any = None  # the versions this publication gave that the ledger lacks (a pyarrow Table)

    def json(self, kind: str) -> Any:
        return json.loads(self.documents[(kind, "json")])


def publish(
    warehouse: WarehouseResource,
    *,
    countries: list[str] | None = None,
    creator: Creator = CREATOR,
    published_at: datetime = PUBLISHED_AT,
    documents_: tuple[tuple[Kind, Fmt], ...] = DOCUMENTS,
) -> Published:
    """The four documents (or `documents_`) from one Publisher (one selection),
    as the daily export writes them."""
    with warehouse.get_connection() as con, Publisher(con, countries or ["NLD"], creator) as publisher:
        documents: dict[tuple[str, str], bytes] = {}
        stats: dict[tuple[str, str], Any] = {}
        for kind, fmt in documents_:
            out = io.BytesIO()
            stats[(kind, fmt)] = publisher.write(kind, fmt, out, published_at=published_at)
            documents[(kind, fmt)] = out.getvalue()
        return Published(
            documents,
            publisher.rejections,
            stats,
            publisher.table_id,
            publisher.table_version,
            publisher.version_changes(),
        )


# ------------------------------------------------------------------------------------------------
# Reading the profile's JSON (as a receiver walks it)


def table(static: dict[str, Any]) -> dict[str, Any]:
    publication = static["payload"]["aegiEnergyInfrastructureTablePublication"]
    (only,) = publication["energyInfrastructureTable"]
    return dict(only)


def sites(static: dict[str, Any]) -> list[dict[str, Any]]:
    return list(table(static)["energyInfrastructureSite"])


def stations(static: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(site, station) pairs in document order."""
    return [(site, station) for site in sites(static) for station in site["energyInfrastructureStation"]]


def points(static: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(site, station, charging point) triples in document order."""
    return [
        (site, station, refill["aegiElectricChargingPoint"])
        for site, station in stations(static)
        for refill in station["refillPoint"]
    ]


def status_publication(status: dict[str, Any]) -> dict[str, Any]:
    (payload,) = status["messageContainer"]["payload"]
    return dict(payload["aegiEnergyInfrastructureStatusPublication"])


def point_statuses(status: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(site status, station status, point status) triples in document order."""
    return [
        (site, station, point["aegiElectricChargingPointStatus"])
        for site in status_publication(status)["energyInfrastructureSiteStatus"]
        for station in site["energyInfrastructureStationStatus"]
        for point in station["refillPointStatus"]
    ]


def text(multilingual: dict[str, Any]) -> str:
    (value,) = multilingual["values"]
    return str(value["value"])


# ------------------------------------------------------------------------------------------------
# What a receiver checks of references and ids


def walk(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every object in document order with the keys leading to it."""
    if isinstance(value, dict):
        yield path, value
        for key, child in value.items():
            yield from walk(child, (*path, key))
    elif isinstance(value, list):
        for child in value:
            yield from walk(child, path)


def ids_by_kind(static: dict[str, Any]) -> dict[str, list[str]]:
    """The idG of every object defined in a static document, by kind."""
    found: dict[str, list[str]] = {
        k: [] for k in ("table", "site", "station", "point", "operator", "helpdesk", "rate", "hours")
    }
    found["table"].append(table(static)["idG"])
    found["site"] += [s["idG"] for s in sites(static)]
    found["station"] += [st["idG"] for _, st in stations(static)]
    found["point"] += [p["idG"] for _, _, p in points(static)]
    for path, obj in walk(static):
        if path[-1:] == ("energyRate",):
            found["rate"].append(obj["idG"])
        elif path[-1:] == ("afacReferenceableOrganisation",):
            found[path[-2]].append(obj["idG"])
        elif path[-1:] == ("afacOperatingHoursSpecification",):
            found["hours"].append(obj["idG"])
    return found


def reference_problems(static: dict[str, Any], status: dict[str, Any]) -> list[str]:
    """What a receiver would refuse: references that do not resolve (see the test below)."""
    problems = []
    rates: set[str] = set()
    organisations: dict[str, str] = {}
    for path, obj in walk(static):  # document order: a reference must follow its definition
        if path[-1:] == ("energyRate",):
            rates.add(obj["idG"])
        elif path[-1:] == ("afacReferenceableOrganisation",):
            organisations[obj["idG"]] = obj["versionG"]
        elif path[-1:] == ("energyRateByReference",) and obj["idG"] not in rates:
            problems.append(f"energyRateByReference {obj['idG']} before (or without) its definition")
        elif path[-1:] == ("organisationReference",) and organisations.get(obj["idG"]) != obj.get("versionG"):
            problems.append(
                f"{path[-3]} reference {obj['idG']}@{obj.get('versionG')} defined as "
                f"{organisations.get(obj['idG'])}"
            )
    held = {
        (s["idG"], s["versionG"]): {
            (st["idG"], st["versionG"]): {
                (p["aegiElectricChargingPoint"]["idG"], p["aegiElectricChargingPoint"]["versionG"])
                for p in st["refillPoint"]
            }
            for st in s["energyInfrastructureStation"]
        }
        for s in sites(static)
    }
    publication = status_publication(status)
    (reference,) = publication["tableReference"]
    if reference != {
        "targetClass": "EnergyInfrastructureTable",
        "idG": table(static)["idG"],
        "versionG": table(static)["versionG"],
    }:
        problems.append(f"tableReference {reference}")
    for site in publication["energyInfrastructureSiteStatus"]:
        site_key = (site["reference"]["idG"], site["reference"]["versionG"])
        if site_key not in held:
            problems.append(f"site {site_key} not in the static table")
            continue
        for station in site["energyInfrastructureStationStatus"]:
            station_key = (station["reference"]["idG"], station["reference"]["versionG"])
            if station_key not in held[site_key]:
                problems.append(f"station {station_key} not under site {site_key}")
                continue
            for refill in station["refillPointStatus"]:
                point = refill["aegiElectricChargingPointStatus"]
                point_key = (point["reference"]["idG"], point["reference"]["versionG"])
                if point_key not in held[site_key][station_key]:
                    problems.append(f"point {point_key} not under station {station_key}")
                for update in point.get("energyRateUpdate", []):
                    if update["energyRateReference"]["idG"] not in rates:
                        problems.append(
                            f"energyRateUpdate of undeclared rate {update['energyRateReference']['idG']}"
                        )
        for ref in (
            site["reference"],
            *(st["reference"] for st in site["energyInfrastructureStationStatus"]),
        ):
            if ref["targetClass"] != "FacilityObject":
                problems.append(f"targetClass {ref['targetClass']}")
    return problems
