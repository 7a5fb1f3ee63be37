"""Zaptec JSON -> typed frames: installations, circuits (from hierarchies), chargers, observations.

Every Zaptec value arrives as a string (`ValueAsString`) and every timestamp without a zone (UTC,
as Zaptec documents). Both are parsed here; a value that does not parse as its observation's type
flags the row for quarantine instead of being guessed. Keys we do not model stay in an `extra`
JSON column. The charger list's live fields (OperatingMode, IsOnline, meter values) are state:
they are tracked in `charger_states` (from /state and messages), not in the static charger row,
so an hourly refresh does not rewrite every charger.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from evpipeline.normalize import Rows, extra_json, list_or_empty, stamp
from evpipeline.timeutil import parse_utc
from evpipeline.validation import flag_invalid

EMPTY_CHARGER_ID = "00000000-0000-0000-0000-000000000000"

# ChargerOperationMode (state 710; the charger list calls it OperatingMode). 4 is unused.
OPERATION_MODES = {
    0: "Unknown",
    1: "Disconnected",
    2: "Connected_Requesting",
    3: "Connected_Charging",
    5: "Connected_Finished",
}
STATE_NAMES = {
    -3: "IsOcppConnected",
    -2: "IsOnline",
    -1: "Pulse",
    1: "OfflineMode",
    120: "AuthenticationRequired",
    150: "CommunicationMode",
    151: "PermanentCableLock",
    201: "TemperatureInternal5",
    202: "TemperatureInternal6",
    270: "Humidity",
    501: "VoltagePhase1",
    502: "VoltagePhase2",
    503: "VoltagePhase3",
    507: "CurrentPhase1",
    508: "CurrentPhase2",
    509: "CurrentPhase3",
    510: "ChargerMaxCurrent",
    511: "ChargerMinCurrent",
    512: "ActivePhases",
    513: "TotalChargePower",
    519: "SetPhases",
    520: "MaxPhases",
    522: "ChargerOfflinePhase",
    523: "ChargerOfflineCurrent",
    553: "TotalChargePowerSession",
    554: "SignedMeterValue",
    555: "SignedMeterValueInterval",
    702: "ChargeMode",
    707: "ChargeCurrentInstallationMaxLimit",
    708: "ChargeCurrentSet",
    710: "ChargerOperationMode",
    711: "IsEnabled",
    712: "IsStandAlone",
    714: "CableType",
    715: "NetworkType",
    716: "DetectedCar",
    718: "FinalStopActive",
    721: "SessionIdentifier",
    722: "ChargerCurrentUserUuid",
    723: "CompletedSession",
    751: "AuthenticationListVersion",
    760: "Location",
    761: "TimeZone",
    763: "NextScheduleEvent",
    800: "InstallationId",
    804: "Warnings",
    809: "CommunicationSignalStrength",
    908: "SmartComputerSoftwareApplicationVersion",
    911: "SmartMainboardSoftwareApplicationVersion",
}
# Numeric observations and their unit (None: a count or code).
NUMERIC: dict[int, str | None] = {
    201: "Cel",
    202: "Cel",
    270: "%",
    501: "V",
    502: "V",
    503: "V",
    507: "A",
    508: "A",
    509: "A",
    510: "A",
    511: "A",
    512: None,
    513: "W",
    519: None,
    520: None,
    522: None,
    523: "A",
    553: "kWh",
    707: "A",
    708: "A",
    809: "dBm",
}
BOOLEAN = {-3, -2, 1, 120, 151, 711, 712, 718}
OPERATION_MODE = 710
# Blobs the Home Assistant integration also leaves out as too large to be useful.
EXCLUDED_STATES = {854, 877, 900, 980}

# The fallback for an installation's country, from its IANA time zone: used only when its CountryId
# (Zaptec's own GUID) is not in the Countries of /api/constants. A zone is configured, not located:
# a Dutch site may well run on Brussels time.
COUNTRY_BY_ZONE = {
    "Europe/Oslo": "NOR",
    "Europe/Amsterdam": "NLD",
    "Europe/Stockholm": "SWE",
    "Europe/Copenhagen": "DNK",
    "Europe/Helsinki": "FIN",
    "Europe/Berlin": "DEU",
    "Europe/Brussels": "BEL",
    "Europe/Luxembourg": "LUX",
    "Europe/Paris": "FRA",
    "Europe/Zurich": "CHE",
    "Europe/Vienna": "AUT",
    "Europe/London": "GBR",
    "Europe/Dublin": "IRL",
    "Atlantic/Reykjavik": "ISL",
    "Europe/Madrid": "ESP",
    "Europe/Rome": "ITA",
}
MODELS = {
    "Pro": ("ZCS", "ZPR", "ZCH", "ZPG"),
    "Go": ("ZAP", "ZGB", "ZAG"),
    "Go2": ("GPN", "GPG"),
    "Sense": ("APH", "APG", "APM"),
}

INSTALLATION_KEYS = {
    "Id",
    "Name",
    "Address",
    "ZipCode",
    "City",
    "CountryId",
    "InstallationType",
    "NetworkType",
    "AuthenticationType",
    "IsRequiredAuthentication",
    "CurrentUserRoles",
    "Active",
    "MaxCurrent",
    "AvailableCurrentPhase1",
    "AvailableCurrentPhase2",
    "AvailableCurrentPhase3",
    "UseLoadBalancing",
    "MessagingEnabled",
    "TimeZoneIanaName",
    "ActiveChargerCount",
    "CreatedOnDate",
    "UpdatedOn",
    "Latitude",
    "Longitude",
}
CIRCUIT_KEYS = {"Id", "Name", "MaxCurrent", "IsActive", "InstallationId", "Chargers"}
CHARGER_KEYS = {
    "Id",
    "InstallationId",
    "CircuitId",
    "DeviceId",
    "MID",
    "SerialNo",
    "Name",
    "DeviceType",
    "Active",
    "IsAuthorizationRequired",
    "AuthenticationType",
    "CurrentUserRoles",
    "InstallationName",
    "CreatedOnDate",
}
LIVE_CHARGER_KEYS = {"OperatingMode", "IsOnline", "SignedMeterValueKwh", "SignedMeterValue"}


def classify(record: dict[str, Any]) -> tuple[bool, str]:
    """Public business site or private home? Private unless the record positively says otherwise.

    A Zaptec Pro installation that makes drivers authenticate is a business site open to the
    public; a Home/Smart installation, or one anyone plugged in may charge at, is somebody's home.
    Missing fields count as private: a home must never reach a public export by accident.
    """
    if record.get("InstallationType") != 0:
        return False, "private: Zaptec Home/Smart installation"
    if record.get("IsRequiredAuthentication") is not True:
        return False, "private: no authentication required (home-style installation)"
    return True, "public: Pro installation requiring authentication"


def country_of(
    record: dict[str, Any], countries: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """(ISO alpha-3, source): the CountryId looked up in `countries` (GUID -> code), else the time zone's."""
    country_id = record.get("CountryId")
    if countries and isinstance(country_id, str) and (code := countries.get(country_id.strip().lower())):
        return code, "country_id"
    if code := COUNTRY_BY_ZONE.get(str(record.get("TimeZoneIanaName"))):
        return code, "time_zone"
    return None, None


def installations(
    records: list[dict[str, Any]], as_of: datetime, countries: Mapping[str, str] | None = None
) -> Rows:
    """Installation rows; `countries` (lower-case CountryId -> alpha-3) from `ZaptecClient.countries()`."""
    verdicts = [classify(r) for r in records]
    located = [country_of(r, countries) for r in records]
    frame = pd.DataFrame(
        {
            "installation_id": [r.get("Id") for r in records],
            "name": [r.get("Name") for r in records],
            "address": [r.get("Address") for r in records],
            "zip_code": [r.get("ZipCode") for r in records],
            "city": [r.get("City") for r in records],
            "country_id": [r.get("CountryId") for r in records],
            "country": [country for country, _ in located],
            "country_source": [source for _, source in located],
            "latitude": [r.get("Latitude") for r in records],
            "longitude": [r.get("Longitude") for r in records],
            "installation_type": [r.get("InstallationType") for r in records],
            "network_type": [r.get("NetworkType") for r in records],
            "authentication_type": [r.get("AuthenticationType") for r in records],
            "is_required_authentication": [r.get("IsRequiredAuthentication") for r in records],
            "current_user_roles": [r.get("CurrentUserRoles") for r in records],
            "active": [r.get("Active") for r in records],
            "max_current": [r.get("MaxCurrent") for r in records],
            "available_current_phase1": [r.get("AvailableCurrentPhase1") for r in records],
            "available_current_phase2": [r.get("AvailableCurrentPhase2") for r in records],
            "available_current_phase3": [r.get("AvailableCurrentPhase3") for r in records],
            "use_load_balancing": [r.get("UseLoadBalancing") for r in records],
            "messaging_enabled": [r.get("MessagingEnabled") for r in records],
            "time_zone": [r.get("TimeZoneIanaName") for r in records],
            "active_charger_count": [r.get("ActiveChargerCount") for r in records],
            "is_public": [public for public, _ in verdicts],
            "visibility_reason": [reason for _, reason in verdicts],
            "extra": [extra_json(r, INSTALLATION_KEYS) for r in records],
            "is_deleted": False,
        }
    )
    frame["created_on"], bad = parse_utc([r.get("CreatedOnDate") for r in records])
    flag_invalid(frame, bad, "CreatedOnDate: not an ISO-8601 timestamp")
    frame["updated_on"], bad = parse_utc([r.get("UpdatedOn") for r in records])
    flag_invalid(frame, bad, "UpdatedOn: not an ISO-8601 timestamp")
    return Rows(stamp(frame, as_of), list(records))


def circuits(trees: Iterable[tuple[str, dict[str, Any]]], as_of: datetime) -> Rows:
    """Circuits of each installation's hierarchy (`(installation_id, tree)` pairs)."""
    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    for installation_id, tree in trees:
        for circuit in tree.get("Circuits") or []:
            if not isinstance(circuit, dict):
                continue
            chargers = list_or_empty(circuit.get("Chargers"))
            rows.append(
                {
                    "circuit_id": circuit.get("Id"),
                    "installation_id": circuit.get("InstallationId") or installation_id,
                    "name": circuit.get("Name"),
                    "max_current": circuit.get("MaxCurrent"),
                    "is_active": circuit.get("IsActive"),
                    "charger_ids": json.dumps(
                        sorted(str(c.get("Id")) for c in chargers if isinstance(c, dict))
                    ),
                    "extra": extra_json(circuit, CIRCUIT_KEYS | {"InstallationName"}),
                    "is_deleted": False,
                }
            )
            raw.append(circuit)
    columns = [
        "circuit_id",
        "installation_id",
        "name",
        "max_current",
        "is_active",
        "charger_ids",
        "extra",
        "is_deleted",
    ]
    return Rows(stamp(pd.DataFrame(rows, columns=columns), as_of), raw)


def model_of(device_id: Any) -> str | None:
    prefix = str(device_id or "")[:3].upper()
    return next((model for model, prefixes in MODELS.items() if prefix in prefixes), None)


def chargers(records: list[dict[str, Any]], as_of: datetime) -> Rows:
    frame = pd.DataFrame(
        {
            "charger_id": [r.get("Id") for r in records],
            "installation_id": [r.get("InstallationId") for r in records],
            "circuit_id": [r.get("CircuitId") for r in records],
            "device_id": [r.get("DeviceId") for r in records],
            "mid": [r.get("MID") for r in records],
            "serial_no": [r.get("SerialNo") for r in records],
            "name": [r.get("Name") for r in records],
            "device_type": [r.get("DeviceType") for r in records],
            "model": [model_of(r.get("DeviceId")) for r in records],
            "active": [r.get("Active") for r in records],
            "is_authorization_required": [r.get("IsAuthorizationRequired") for r in records],
            "authentication_type": [r.get("AuthenticationType") for r in records],
            "current_user_roles": [r.get("CurrentUserRoles") for r in records],
            "installation_name": [r.get("InstallationName") for r in records],
            "extra": [extra_json(r, CHARGER_KEYS | LIVE_CHARGER_KEYS) for r in records],
            "is_deleted": False,
        }
    )
    frame["created_on"], bad = parse_utc([r.get("CreatedOnDate") for r in records])
    flag_invalid(frame, bad, "CreatedOnDate: not an ISO-8601 timestamp")
    return Rows(stamp(frame, as_of), list(records))


def _state_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def decode(state_id: int, text: str | None) -> tuple[float | None, bool | None, str | None, str | None]:
    """(value_number, value_bool, operation_mode, problem) of one observation's ValueAsString."""
    if text is None or (text.strip() == "" and state_id != OPERATION_MODE):
        return None, None, None, None
    if state_id == OPERATION_MODE:
        number = _number(text)
        mode = int(number) if number is not None and number.is_integer() else None
        if mode not in OPERATION_MODES:
            return None, None, None, f"ChargerOperationMode: {text!r} is not a defined mode"
        return float(mode), None, OPERATION_MODES[mode], None
    if state_id in BOOLEAN:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "1.000"):
            return 1.0, True, None, None
        if lowered in ("0", "false", "0.000"):
            return 0.0, False, None, None
        return None, None, None, f"{STATE_NAMES.get(state_id, state_id)}: {text!r} is not 0/1"
    if state_id in NUMERIC:
        number = _number(text)
        if number is None:
            return None, None, None, f"{STATE_NAMES.get(state_id, state_id)}: {text!r} is not a number"
        return number, None, None, None
    return None, None, None, None


def observations(records: Iterable[Any]) -> Rows:
    """State observations from /state answers or Service Bus messages, one row per (charger, StateId).

    Each row's own `Timestamp` is its as-of (`last_updated`), so an older observation arriving
    after a newer one changes nothing. Messages about no charger (the all-zero ChargerId) are skipped.
    """
    rows: list[dict[str, Any]] = []
    raw: list[Any] = []
    problems: list[str | None] = []
    for record in records:
        if not isinstance(record, dict):
            record = {"_unparsed": record}
        charger_id = record.get("ChargerId")
        state_id = _state_id(record.get("StateId"))
        if charger_id == EMPTY_CHARGER_ID or state_id in EXCLUDED_STATES:
            continue
        text = record.get("ValueAsString", record.get("Value"))
        text = None if text is None else text if isinstance(text, str) else json.dumps(text)
        problem = None if state_id is not None else f"StateId: {record.get('StateId')!r} is not an integer"
        number = flag = mode = None
        if state_id is not None:
            number, flag, mode, problem = decode(state_id, text)
        if not record.get("Timestamp"):
            problem = "; ".join(p for p in (problem, "Timestamp: missing") if p)
        rows.append(
            {
                "charger_id": None if charger_id is None else str(charger_id),
                "state_id": state_id,
                "state_name": STATE_NAMES.get(state_id) if state_id is not None else None,
                "value_as_string": text,
                "value_number": number,
                "value_bool": flag,
                "unit": NUMERIC.get(state_id)
                if state_id is not None and number is not None and state_id != OPERATION_MODE
                else None,
                "operation_mode": mode,
            }
        )
        raw.append({k: v for k, v in record.items() if not k.startswith("_message")})
        problems.append(problem)
    columns = [
        "charger_id",
        "state_id",
        "state_name",
        "value_as_string",
        "value_number",
        "value_bool",
        "unit",
        "operation_mode",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["state_id"] = frame["state_id"].astype("Int64")
    frame["value_bool"] = frame["value_bool"].astype("boolean")
    frame["last_updated"], bad = parse_utc([r.get("Timestamp") if isinstance(r, dict) else None for r in raw])
    flag_invalid(frame, bad, "Timestamp: not an ISO-8601 timestamp")
    for reason in sorted({p for p in problems if p}):
        flag_invalid(frame, pd.Series([p == reason for p in problems]), reason)
    return Rows(frame, raw)
