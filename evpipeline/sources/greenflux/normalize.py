"""GreenFlux JSON objects -> typed frames: locations, EVSEs, connectors, charge stations, tariffs.

Called once per page, so a large bootstrap never holds more than a page of dicts. Each frame
comes with the raw payload of every row (same positions) for quarantine. Field names stay as
GreenFlux sends them; nested objects become JSON text; keys we do not model go to `extra`.
Every object carries its own change time (`last_updated`, or `modified` for charge stations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evpipeline.normalize import Rows, extra_json, json_text, object_or_empty
from evpipeline.timeutil import parse_utc
from evpipeline.validation import flag_invalid

# Field kinds: how a JSON value becomes a column value.
TEXT, VALUE, JSON, TIME = "text", "value", "json", "time"

LOCATION_FIELDS = {
    "cpo_id": TEXT,
    "type": TEXT,
    "publish": VALUE,
    "access_type": TEXT,
    "name": TEXT,
    "address": TEXT,
    "address_line_2": TEXT,
    "city": TEXT,
    "postal_code": TEXT,
    "country": TEXT,
    "time_zone": TEXT,
    "opening_times": JSON,
    "charging_when_closed": VALUE,
    "energy_mix": JSON,
    "directions": JSON,
    "facilities": JSON,
    "operator": JSON,
    "suboperator": JSON,
    "owner": JSON,
    "auth_rules": JSON,
    "custom_groups": JSON,
    "customised_fields": JSON,
    "maintenance_info": TEXT,
    "remarks": TEXT,
    "payment_provider": JSON,
    "wallet_id": TEXT,
    "cpo_customer_external_id": TEXT,
    "etag": TEXT,
    "created_by": TEXT,
    "modified_by": TEXT,
    "created": TIME,
    "modified": TIME,
}
EVSE_FIELDS = {
    "evse_id": TEXT,
    "status": TEXT,
    "status_schedule": JSON,
    "capabilities": JSON,
    "floor_level": TEXT,
    "physical_reference": TEXT,
    "directions": JSON,
    "parking_restrictions": JSON,
    "images": JSON,
    "evse_sequence_number": VALUE,
}
CONNECTOR_FIELDS = {
    "standard": TEXT,
    "format": TEXT,
    "power_type": TEXT,
    "voltage": VALUE,
    "amperage": VALUE,
    "max_electric_power": VALUE,
    "tariff_id": TEXT,
    "reimbursement_tariff_id": TEXT,
    "terms_and_conditions": TEXT,
}
CHARGE_STATION_FIELDS = {
    "location_id": TEXT,
    "name": TEXT,
    "deploy_state": TEXT,
    "installation_date": TIME,
    "default_charge_station_tariff_id": TEXT,
    "default_charge_station_reimbursement_tariff_id": TEXT,
    "default_charge_station_directions": JSON,
    "default_charge_station_floor_level": TEXT,
    "driver_id": TEXT,
    "customer_id": TEXT,
    "evses": JSON,
    "maintenance_info": TEXT,
    "remarks": TEXT,
    "contactless_terminal_serial_number": TEXT,
    "contactless_terminal_auth_amount": VALUE,
    "contactless_type": TEXT,
    "status_schedule": JSON,
    "auth_rules": JSON,
    "tap_to_stop": VALUE,
    "stop_on_parking": VALUE,
    "grid_connection_id": TEXT,
    "dynamic_time_based_tariffs": VALUE,
    "time_of_use_tariffs": VALUE,
    "exclude_vat": VALUE,
    "charger_type": TEXT,
    "charge_station_template_id": TEXT,
    "etag": TEXT,
    "created_by": TEXT,
    "modified_by": TEXT,
    "status": TEXT,
    "charging_speed": TEXT,
    "created": TIME,
    "heartbeat_interval": VALUE,
    "charge_point_model": TEXT,
    "charge_point_vendor": TEXT,
    "charge_point_serial_number": TEXT,
    "charge_box_serial_number": TEXT,
    "client_ip_address": TEXT,
    "firmware_version": TEXT,
    "iccid": TEXT,
    "imsi": TEXT,
    "meter_serial_number": TEXT,
    "meter_type": TEXT,
    "remote_manageable": VALUE,
    "connectivity_status": TEXT,
    "protocol_version": TEXT,
    "endpoint": TEXT,
}
TARIFF_FIELDS = {
    "cpo_id": TEXT,
    "currency": TEXT,
    "tariff_alt_text": JSON,
    "tariff_alt_url": TEXT,
    "elements": JSON,
    "energy_mix": JSON,
}
# Keys read into dedicated columns (or child tables), so they are not repeated in `extra`.
LOCATION_KEYS = {"id", "coordinates", "evses", "last_updated", *LOCATION_FIELDS}
EVSE_KEYS = {"uid", "coordinates", "connectors", "last_updated", *EVSE_FIELDS}
CONNECTOR_KEYS = {"id", "last_updated", *CONNECTOR_FIELDS}
CHARGE_STATION_KEYS = {"charge_station_id", "modified", *CHARGE_STATION_FIELDS}
TARIFF_KEYS = {"id", "last_updated", *TARIFF_FIELDS}


@dataclass
class LocationRows:
    locations: Rows
    evses: Rows
    connectors: Rows


def _text(value: Any) -> Any:
    # Numbers where text is documented (ids sent as 11 instead of "11") are the same id.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _columns(records: list[dict[str, Any]], fields: dict[str, str]) -> dict[str, Any]:
    convert: dict[str, Callable[[Any], Any]] = {
        TEXT: _text,
        VALUE: lambda v: v,
        JSON: json_text,
        TIME: lambda v: v,
    }
    return {name: [convert[kind](r.get(name)) for r in records] for name, kind in fields.items()}


def _times(frame: pd.DataFrame, fields: dict[str, str], what: str) -> None:
    """Parse TIME columns in place; unparseable values mark the row invalid (quarantine)."""
    for name, kind in fields.items():
        if kind == TIME:
            frame[name], bad = parse_utc(frame[name].tolist())
            flag_invalid(frame, bad, f"{what}.{name}: not an ISO-8601 timestamp")


def _stamp(frame: pd.DataFrame, values: list[Any], source_field: str) -> None:
    """`last_updated` column: the object's own change time (from `source_field`), required."""
    frame["last_updated"], bad = parse_utc(values)
    flag_invalid(
        frame, bad | frame["last_updated"].isna(), f"{source_field}: missing or not an ISO-8601 timestamp"
    )


def _coordinates(frame: pd.DataFrame, records: list[dict[str, Any]], what: str) -> None:
    """OCPI sends coordinates as decimal strings; unparseable ones mark the row invalid."""
    points = [object_or_empty(r.get("coordinates")) for r in records]
    for axis in ("latitude", "longitude"):
        raw = pd.Series([p.get(axis) for p in points], dtype=object)
        frame[axis] = pd.to_numeric(raw, errors="coerce")
        flag_invalid(frame, raw.notna() & frame[axis].isna(), f"{what}.coordinates.{axis}: not a number")


def locations(records: list[dict[str, Any]]) -> LocationRows:
    """Locations, and the EVSEs and connectors nested in them (one page at a time)."""
    frame = pd.DataFrame(
        {"location_id": [_text(r.get("id")) for r in records], **_columns(records, LOCATION_FIELDS)}
    )
    mixes = [object_or_empty(r.get("energy_mix")) for r in records]
    frame["energy_mix_profile_id"] = [_text(m.get("energy_mix_profile_id")) for m in mixes]
    frame["is_green_energy"] = [m.get("is_green_energy") for m in mixes]
    frame["extra"] = [extra_json(r, LOCATION_KEYS) for r in records]
    frame["is_deleted"] = False  # GreenFlux has no delete flag (EVSEs go REMOVED instead)
    _coordinates(frame, records, "location")
    _times(frame, LOCATION_FIELDS, "location")
    _stamp(frame, [r.get("last_updated") for r in records], "location.last_updated")

    evse_records: list[dict[str, Any]] = []
    evse_raw: list[dict[str, Any]] = []
    evse_parents: list[tuple[Any, Any]] = []  # (location_id, location last_updated)
    connector_records: list[dict[str, Any]] = []
    connector_raw: list[dict[str, Any]] = []
    connector_parents: list[tuple[Any, Any, Any]] = []  # (location_id, evse_uid, evse last_updated)
    for record in records:
        location_id = _text(record.get("id"))
        evses = record.get("evses")
        for evse in evses if isinstance(evses, list) else []:
            if not isinstance(evse, dict):
                continue
            evse_stamp = evse.get("last_updated") or record.get("last_updated")
            evse_records.append(evse)
            evse_raw.append({"location_id": location_id, **evse})
            evse_parents.append((location_id, record.get("last_updated")))
            connectors = evse.get("connectors")
            for connector in connectors if isinstance(connectors, list) else []:
                if not isinstance(connector, dict):
                    continue
                connector_records.append(connector)
                connector_raw.append({"location_id": location_id, "evse_uid": evse.get("uid"), **connector})
                connector_parents.append((location_id, _text(evse.get("uid")), evse_stamp))
    return LocationRows(
        Rows(frame, list(records)),
        _evses(evse_records, evse_parents, evse_raw),
        _connectors(connector_records, connector_parents, connector_raw),
    )


def _evses(records: list[dict[str, Any]], parents: list[tuple[Any, Any]], raw: list[dict[str, Any]]) -> Rows:
    frame = pd.DataFrame(
        {
            "location_id": [p[0] for p in parents],
            "evse_uid": [_text(r.get("uid")) for r in records],
            **_columns(records, EVSE_FIELDS),
            "extra": [extra_json(r, EVSE_KEYS) for r in records],
        }
    )
    frame["is_deleted"] = False  # REMOVED is a status, not a delete: the copy stays in its location
    _coordinates(frame, records, "evse")
    # An EVSE without its own time takes its location's (OCPI requires it; not every CPO sends it).
    _stamp(
        frame,
        [r.get("last_updated") or p[1] for r, p in zip(records, parents, strict=True)],
        "evse.last_updated",
    )
    return Rows(frame, raw)


def _connectors(
    records: list[dict[str, Any]], parents: list[tuple[Any, Any, Any]], raw: list[dict[str, Any]]
) -> Rows:
    frame = pd.DataFrame(
        {
            "location_id": [p[0] for p in parents],
            "evse_uid": [p[1] for p in parents],
            "connector_id": [_text(r.get("id")) for r in records],
            **_columns(records, CONNECTOR_FIELDS),
            "extra": [extra_json(r, CONNECTOR_KEYS) for r in records],
        }
    )
    frame["is_deleted"] = False
    _stamp(
        frame,
        [r.get("last_updated") or p[2] for r, p in zip(records, parents, strict=True)],
        "connector.last_updated",
    )
    return Rows(frame, raw)


def charge_stations(records: list[dict[str, Any]]) -> Rows:
    """Charge stations; their EVSEs stay as JSON (statuses come from the Locations, see docs)."""
    frame = pd.DataFrame(
        {
            "charge_station_id": [_text(r.get("charge_station_id")) for r in records],
            **_columns(records, CHARGE_STATION_FIELDS),
        }
    )
    frame["evse_uids"] = [
        json_text([e.get("uid") for e in r["evses"] if isinstance(e, dict)])
        if isinstance(r.get("evses"), list)
        else None
        for r in records
    ]
    frame["extra"] = [extra_json(r, CHARGE_STATION_KEYS) for r in records]
    frame["is_deleted"] = False
    _times(frame, CHARGE_STATION_FIELDS, "charge_station")
    _stamp(frame, [r.get("modified") for r in records], "charge_station.modified")
    return Rows(frame, list(records))


def tariffs(records: list[dict[str, Any]]) -> Rows:
    frame = pd.DataFrame(
        {"tariff_id": [_text(r.get("id")) for r in records], **_columns(records, TARIFF_FIELDS)}
    )
    frame["extra"] = [extra_json(r, TARIFF_KEYS) for r in records]
    frame["is_deleted"] = False
    _stamp(frame, [r.get("last_updated") for r in records], "tariff.last_updated")
    return Rows(frame, list(records))
