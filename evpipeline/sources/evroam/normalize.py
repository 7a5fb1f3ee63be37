"""EVRoam JSON records -> typed frames, one row per site, station, connector and availability.

Each frame comes with the raw payload of every row (same positions) so a row that fails
validation is quarantined with exactly what the API sent. Keys we do not model are kept in an
`extra` JSON column, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from evpipeline.normalize import Rows, extra_json, json_text, object_or_empty, stamp
from evpipeline.timeutil import parse_utc
from evpipeline.validation import flag_invalid

SITE_KEYS = {
    "siteId",
    "name",
    "operator",
    "address",
    "is24Hours",
    "carParkCount",
    "hasCarparkCost",
    "maxTimeLimit",
    "hasTouristAttraction",
    "accessLocations",
    "providerDeleted",
}
STATION_KEYS = {
    "chargingStationId",
    "siteId",
    "operator",
    "owner",
    "assetId",
    "current",
    "hasChargingCost",
    "kwRated",
    "dateFirstOperational",
    "nextPlannedOutage",
    "installationStatus",
    "floorLevel",
    "manufacturer",
    "model",
    "images",
    "connectors",
    "providerDeleted",
    "location",
    "availabilityStatus",
    "kwAvailable",
    "availabilityTime",
}
CONNECTOR_KEYS = {"connectorId", "connectorType", "operationStatus", "providerDeleted"}


def _first_location(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return {}


def sites(records: list[dict[str, Any]], as_of: datetime) -> Rows:
    locations = [_first_location(r.get("accessLocations")) for r in records]
    frame = pd.DataFrame(
        {
            "site_id": [r.get("siteId") for r in records],
            "name": [r.get("name") for r in records],
            "operator": [r.get("operator") for r in records],
            "address": [r.get("address") for r in records],
            "is_24_hours": [r.get("is24Hours") for r in records],
            "car_park_count": [r.get("carParkCount") for r in records],
            "has_carpark_cost": [r.get("hasCarparkCost") for r in records],
            "max_time_limit": [r.get("maxTimeLimit") for r in records],
            "has_tourist_attraction": [r.get("hasTouristAttraction") for r in records],
            "latitude": [loc.get("lat") for loc in locations],
            "longitude": [loc.get("lon") for loc in locations],
            "access_locations": [json_text(r.get("accessLocations")) for r in records],
            "extra": [extra_json(r, SITE_KEYS) for r in records],
            "is_deleted": [bool(r.get("providerDeleted", False)) for r in records],
        }
    )
    return Rows(stamp(frame, as_of), list(records))


@dataclass
class StationRows:
    stations: Rows
    connectors: Rows
    availability: Rows


def stations(records: list[dict[str, Any]], as_of: datetime) -> StationRows:
    """Stations, their connectors, and the availability some providers embed in station records."""
    locations = [object_or_empty(r.get("location")) for r in records]
    frame = pd.DataFrame(
        {
            "charging_station_id": [r.get("chargingStationId") for r in records],
            "site_id": [r.get("siteId") for r in records],
            "operator": [r.get("operator") for r in records],
            "owner": [r.get("owner") for r in records],
            "asset_id": [r.get("assetId") or r.get("chargingStationId") for r in records],
            "current": [r.get("current") for r in records],
            "has_charging_cost": [r.get("hasChargingCost") for r in records],
            "kw_rated": [r.get("kwRated") for r in records],
            "next_planned_outage": [
                None if r.get("nextPlannedOutage") is None else str(r.get("nextPlannedOutage"))
                for r in records
            ],
            "installation_status": [r.get("installationStatus") for r in records],
            "floor_level": [r.get("floorLevel") for r in records],
            "manufacturer": [r.get("manufacturer") for r in records],
            "model": [r.get("model") for r in records],
            "images": [json_text(r.get("images")) for r in records],
            "latitude": [loc.get("lat") for loc in locations],
            "longitude": [loc.get("lon") for loc in locations],
            "extra": [extra_json(r, STATION_KEYS) for r in records],
            "is_deleted": [bool(r.get("providerDeleted", False)) for r in records],
        }
    )
    frame["date_first_operational"], bad = parse_utc([r.get("dateFirstOperational") for r in records])
    flag_invalid(frame, bad, "dateFirstOperational: not an ISO-8601 date")

    connector_raw: list[dict[str, Any]] = []
    connector_rows: list[tuple[Any, ...]] = []
    for record in records:
        station_deleted = bool(record.get("providerDeleted", False))
        connectors = record.get("connectors")
        for connector in connectors if isinstance(connectors, list) else []:
            if not isinstance(connector, dict):
                continue
            connector_raw.append({"chargingStationId": record.get("chargingStationId"), **connector})
            connector_rows.append(
                (
                    record.get("chargingStationId"),
                    connector.get("connectorId"),
                    connector.get("connectorType"),
                    connector.get("operationStatus"),
                    extra_json(connector, CONNECTOR_KEYS),
                    # A deleted station takes its connectors with it.
                    station_deleted or bool(connector.get("providerDeleted", False)),
                )
            )
    connector_frame = pd.DataFrame(
        connector_rows,
        columns=[
            "charging_station_id",
            "connector_id",
            "connector_type",
            "operation_status",
            "extra",
            "is_deleted",
        ],
    )
    embedded = [r for r in records if r.get("availabilityStatus") is not None]
    return StationRows(
        stations=Rows(stamp(frame, as_of), list(records)),
        connectors=Rows(stamp(connector_frame, as_of), connector_raw),
        availability=availabilities(embedded),
    )


def availabilities(records: list[dict[str, Any]]) -> Rows:
    """Availability records (push files, or fields embedded in station records);
    their own time is the as-of."""
    frame = pd.DataFrame(
        {
            "charging_station_id": [r.get("chargingStationId") for r in records],
            "operator": [r.get("operator") for r in records],
            "availability_status": [r.get("availabilityStatus") for r in records],
            "kw_available": [r.get("kwAvailable") for r in records],
        }
    )
    frame["availability_time"], bad = parse_utc([r.get("availabilityTime") for r in records])
    flag_invalid(frame, bad, "availabilityTime: not an ISO-8601 timestamp")
    frame["last_updated"] = frame["availability_time"]
    raw = [
        {
            k: r.get(k)
            for k in (
                "operator",
                "chargingStationId",
                "availabilityStatus",
                "kwAvailable",
                "availabilityTime",
            )
        }
        for r in records
    ]
    return Rows(frame, raw)
