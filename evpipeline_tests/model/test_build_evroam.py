"""The canonical model from EVRoam rows: rules, identity, REMOVED, history, unmapped values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pandas as pd
import pytest

import evpipeline.model  # noqa: F401
from evpipeline.model import rules
from evpipeline.model.build import build_mart
from evpipeline.sources.evroam import normalize
from evpipeline.sources.evroam.tables import AVAILABILITY, CONNECTORS, KEYS, SITES, STATIONS, STATUS
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query, scalar

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SITE = {
    "siteId": "site-1",
    "name": "Waitiki Landing",
    "operator": "ChargeNet NZ",
    "address": "9048 Far North Road, Waitiki Landing 0484, NZ",
    "is24Hours": True,
    "carParkCount": 2,
    "hasCarparkCost": False,
    "maxTimeLimit": "Unlimited",
    "hasTouristAttraction": False,
    "accessLocations": [{"lat": -34.517702, "lon": 172.840523}],
    "providerDeleted": False,
}


def station(
    sid: str,
    *,
    connectors: list[tuple[str, str]],
    current: str = "DC",
    kw: float = 50,
    status: str = "Commissioned",
    deleted: bool = False,
    availability: str | None = None,
    site: str = "site-1",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chargingStationId": sid,
        "siteId": site,
        "operator": "ChargeNet NZ",
        "owner": "ChargeNet NZ",
        "assetId": sid,
        "current": current,
        "hasChargingCost": True,
        "kwRated": kw,
        "dateFirstOperational": "2020-01-01T00:00:00Z",
        "nextPlannedOutage": None,
        "installationStatus": status,
        "floorLevel": "Ground",
        "manufacturer": "ABB",
        "model": None,
        "images": [],
        "providerDeleted": deleted,
        "location": {"lat": -34.5177, "lon": 172.8405},
        "connectors": [
            {"connectorId": f"{sid}-c{i}", "connectorType": t, "operationStatus": s, "providerDeleted": False}
            for i, (t, s) in enumerate(connectors, 1)
        ],
    }
    if availability:
        body.update(availabilityStatus=availability, kwAvailable=kw, availabilityTime="2026-11-01T08:59:00Z")
    return body


def load(warehouse: WarehouseResource, sites: list[dict], stations: list[dict], as_of: datetime = T0) -> None:
    site_rows = normalize.sites(sites, as_of)
    rows = normalize.stations(stations, as_of)
    with warehouse.writer("evroam", "load") as w:
        w.merge(site_rows.frame, SITES, KEYS[SITES])
        w.merge(rows.stations.frame.drop(columns=["_invalid"], errors="ignore"), STATIONS, KEYS[STATIONS])
        w.merge(rows.connectors.frame, CONNECTORS, KEYS[CONNECTORS], status_column=STATUS[CONNECTORS])
        w.merge(
            rows.availability.frame.drop(columns=["_invalid"], errors="ignore"),
            AVAILABILITY,
            KEYS[AVAILABILITY],
            status_column=STATUS[AVAILABILITY],
        )


def build(warehouse: WarehouseResource, run: str = "b1", as_of: datetime | None = None) -> Any:
    with warehouse.get_connection() as con:
        return build_mart(con, run_id=run, as_of=as_of)


def evse_status(warehouse: WarehouseResource, uid: str) -> str:
    return scalar(warehouse, "SELECT status FROM mart.evses WHERE evse_uid = ?", [uid])


def test_rule_tables_use_closed_ocpi_values() -> None:
    standards = {"CHADEMO", "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO"}
    assert {s for s, _ in rules.EVROAM_CONNECTORS.values()} <= standards
    assert {f for _, f in rules.EVROAM_CONNECTORS.values()} <= {"SOCKET", "CABLE"}
    statuses = {
        "AVAILABLE",
        "BLOCKED",
        "CHARGING",
        "INOPERATIVE",
        "OUTOFORDER",
        "PLANNED",
        "REMOVED",
        "RESERVED",
        "UNKNOWN",
    }
    assert (
        set(rules.EVROAM_AVAILABILITY.values()) <= statuses
        and set(rules.EVROAM_INSTALLATION.values()) <= statuses
    )
    assert all(len(v) <= 4 for v in rules.EVROAM_FLOORS.values())
    operators = rules.operators()
    assert not operators.duplicated(["source", "operator"]).any()
    assert (
        operators["party_id"].str.fullmatch(r"[A-Z0-9]{3}").all()
        and operators["country_code"].str.fullmatch(r"[A-Z]{2}").all()
    )


def test_site_becomes_location_with_owner_party_and_parsed_address(warehouse: WarehouseResource) -> None:
    load(
        warehouse,
        [SITE],
        [station("st-1", connectors=[("CHAdeMO", "Operative"), ("Type 2 CCS", "Operative")])],
    )
    build(warehouse)
    row = query(
        warehouse,
        "SELECT country_code, party_id, location_id, address, city, postal_code, country, opening_times, "
        "time_zone, source, source_id FROM mart.locations",
    )
    assert row == [
        (
            "NZ",
            "CNZ",
            "site-1",
            "9048 Far North Road",
            "Waitiki Landing",
            "0484",
            "NZL",
            '{"twentyfourseven": true}',
            "Pacific/Auckland",
            "evroam",
            "site-1",
        )
    ]


def test_connector_and_power_rules(warehouse: WarehouseResource) -> None:
    load(
        warehouse,
        [SITE],
        [
            station("dc", connectors=[("CHAdeMO", "Operative"), ("Type 2 CCS", "Operative")], kw=50),
            station(
                "ac",
                connectors=[("Type 2 Socketed", "Operative"), ("Type 1 Tethered", "Operative")],
                current="AC",
                kw=22,
            ),
            station("hpc", connectors=[("Type 2 CCS", "Operative")], kw=300),
        ],
    )
    build(warehouse)
    rows = {
        r[0]: r[1:]
        for r in query(
            warehouse,
            "SELECT connector_id, standard, format, power_type, max_voltage, max_amperage, "
            "max_electric_power FROM mart.connectors",
        )
    }
    assert rows["dc-c1"] == ("CHADEMO", "CABLE", "DC", 500, 100, 50000)
    assert rows["dc-c2"] == ("IEC_62196_T2_COMBO", "CABLE", "DC", 500, 100, 50000)
    assert rows["ac-c1"] == ("IEC_62196_T2", "SOCKET", "AC_3_PHASE", 230, 32, 22000)
    assert rows["ac-c2"] == ("IEC_62196_T1", "CABLE", "AC_1_PHASE", 230, 96, 22000)
    assert rows["hpc-c1"] == ("IEC_62196_T2_COMBO", "CABLE", "DC", 920, 327, 300000)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"availability": "Available"}, "AVAILABLE"),
        ({"availability": "Occupied"}, "CHARGING"),
        ({}, "UNKNOWN"),  # Operative connectors alone do not mean free
        (
            {
                "connectors": [("CHAdeMO", "Inoperative"), ("Type 2 CCS", "Inoperative")],
                "availability": "Available",
            },
            "INOPERATIVE",
        ),
        ({"status": "Under Construction", "availability": "Available"}, "PLANNED"),
        ({"status": "Decommissioned"}, "REMOVED"),
        ({"deleted": True, "availability": "Available"}, "REMOVED"),
    ],
)
def test_evse_status_rules(warehouse: WarehouseResource, kwargs: dict[str, Any], expected: str) -> None:
    spec = {"connectors": [("CHAdeMO", "Operative"), ("Type 2 CCS", "Inoperative")], **kwargs}
    load(warehouse, [SITE], [station("st", **spec)])
    build(warehouse)
    assert evse_status(warehouse, "st") == expected


def test_ids_stable_and_rebuild_changes_nothing(warehouse: WarehouseResource) -> None:
    load(
        warehouse, [SITE], [station("st-1", connectors=[("CHAdeMO", "Operative")], availability="Available")]
    )
    first = build(warehouse, "b1")
    keys = query(warehouse, "SELECT country_code, party_id, location_id, evse_uid FROM mart.evses")
    second = build(warehouse, "b2")
    assert all(c.changed == 0 for c in second.counts.values()) and first.counts["mart.evses"].inserted == 1
    assert query(warehouse, "SELECT country_code, party_id, location_id, evse_uid FROM mart.evses") == keys


def test_deleted_station_stays_removed_and_history_keeps_transitions(warehouse: WarehouseResource) -> None:
    load(
        warehouse, [SITE], [station("st-1", connectors=[("CHAdeMO", "Operative")], availability="Available")]
    )
    build(warehouse, "b1")
    load(
        warehouse,
        [SITE],
        [station("st-1", connectors=[("CHAdeMO", "Operative")], availability="Available", deleted=True)],
        as_of=T0 + timedelta(hours=1),
    )
    build(warehouse, "b2")
    assert evse_status(warehouse, "st-1") == "REMOVED"
    assert scalar(warehouse, "SELECT count(*) FROM mart.connectors WHERE is_deleted") == 1
    history = query(
        warehouse,
        "SELECT evse_uid, old_status, new_status FROM mart.evse_status_history ORDER BY recorded_at",
    )
    assert history == [("st-1", None, "AVAILABLE"), ("st-1", "AVAILABLE", "REMOVED")]


def test_unmapped_values_reported_not_guessed(warehouse: WarehouseResource) -> None:
    stranger = {**SITE, "siteId": "site-2", "operator": "Unknown Charging Co"}
    load(
        warehouse,
        [SITE, stranger],
        [
            station("st-1", connectors=[("Tesla Supercharger", "Operative"), ("CHAdeMO", "Operative")]),
            station("orphan", connectors=[("CHAdeMO", "Operative")], site="no-such-site"),
            station("st-2", connectors=[("CHAdeMO", "Operative")], site="site-2"),
        ],
    )
    result = build(warehouse)
    unmapped = {(r["field"], r["value"]): r["rows"] for r in result.unmapped.to_dict("records")}
    assert unmapped == {
        ("site.operator", "Unknown Charging Co"): 1,
        ("station.site_id (site not found)", "missing site"): 1,
        ("connector.connectorType", "Tesla Supercharger"): 1,
    }
    assert query(warehouse, "SELECT location_id FROM mart.locations") == [("site-1",)]  # no party: not placed
    assert scalar(warehouse, "SELECT count(*) FROM mart.connectors WHERE standard IS NULL") == 1
    assert scalar(warehouse, "SELECT count(*) FROM mart.unmapped_values") == 3


def test_real_sample_rows_map(warehouse: WarehouseResource) -> None:
    seed = resources.files("evpipeline.seed_data.evroam")
    sites = json.loads(seed.joinpath("sites.json").read_text())
    load(warehouse, sites, json.loads(seed.joinpath("chargingStations.json").read_text()))
    result = build(warehouse)
    assert result.counts["mart.locations"].inserted == len(sites)
    # The sample's stations belong to sites outside the sample: reported, none placed.
    assert scalar(warehouse, "SELECT count(*) FROM mart.evses") == 0
    assert ("station.site_id (site not found)", "missing site") in {
        (r["field"], r["value"]) for r in result.unmapped.to_dict("records")
    }
    names = {n for (n,) in query(warehouse, "SELECT name FROM mart.locations")}
    assert "Kaiwaka HPC " in names  # provider noise (trailing space) kept as sent


def test_remapped_party_flags_the_old_identity(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(warehouse, [SITE], [station("st-1", connectors=[("CHAdeMO", "Operative")])])
    build(warehouse, "b1", as_of=T0)
    remapped = rules.operators()
    remapped.loc[remapped["operator"] == "ChargeNet NZ", "party_id"] = "CNX"
    monkeypatch.setattr(rules, "operators", lambda: remapped)
    build(warehouse, "b2", as_of=T0 + timedelta(hours=1))
    rows = query(warehouse, "SELECT party_id, is_deleted FROM mart.evses ORDER BY party_id")
    assert rows == [("CNX", False), ("CNZ", True)]  # the old identity is kept, flagged (reads as REMOVED)
    assert pd.notna(scalar(warehouse, "SELECT deleted_at FROM mart.locations WHERE party_id = 'CNZ'"))
