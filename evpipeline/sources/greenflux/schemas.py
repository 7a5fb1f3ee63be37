"""pandera schemas of the GreenFlux tables: what a row must satisfy to be merged.

GreenFlux is OCPI-shaped, so OCPI's closed vocabularies (EVSE status, connector standard, format,
power type) are enforced, as are GreenFlux's own enums from its SDK models (deploy state,
connectivity, charger type, ...). Free-form fields and JSON columns are not.
"""

import pandas as pd
import pandera.pandas as pa

UTC_TS = pd.DatetimeTZDtype("ns", "UTC")

EVSE_STATUSES = [
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
]
CONNECTOR_STANDARDS = [
    "CHADEMO",
    "CHAOJI",
    *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKLMNO"),
    "GBT_AC",
    "GBT_DC",
    "IEC_60309_2_single_16",
    "IEC_60309_2_three_16",
    "IEC_60309_2_three_32",
    "IEC_60309_2_three_64",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN",
    "TESLA_R",
    "TESLA_S",
]
POWER_TYPES = ["AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"]
LOCATION_TYPES = ["ON_STREET", "PARKING_GARAGE", "UNDERGROUND_GARAGE", "PARKING_LOT", "OTHER", "UNKNOWN"]


def _text(nullable: bool = True, checks: pa.Check | None = None) -> pa.Column:
    return pa.Column(str, checks=checks, nullable=nullable)


def _key() -> pa.Column:
    return _text(False, checks=pa.Check.str_length(min_value=1, max_value=255))


def _enum(values: list[str]) -> pa.Column:
    return _text(checks=pa.Check.isin(values))


def _int(*checks: pa.Check) -> pa.Column:
    return pa.Column(pd.Int64Dtype(), list(checks), nullable=True, coerce=True)


_BOOL = pa.Column(pd.BooleanDtype(), nullable=True, coerce=True)
_TS = pa.Column(UTC_TS, nullable=True, coerce=True)
_LAT = pa.Column(float, pa.Check.in_range(-90, 90), nullable=True, coerce=True)
_LON = pa.Column(float, pa.Check.in_range(-180, 180), nullable=True, coerce=True)
_COMMON = {
    "is_deleted": pa.Column(bool, coerce=True),
    "last_updated": pa.Column(UTC_TS, nullable=False, coerce=True),
}

LOCATIONS = pa.DataFrameSchema(
    {
        "location_id": _key(),
        "cpo_id": _text(checks=pa.Check.str_matches(r"^[A-Za-z]{2}[A-Za-z0-9]{3}$")),
        "type": _enum(LOCATION_TYPES),
        "publish": _BOOL,
        "access_type": _enum(["PUBLIC", "RESTRICTED", "PRIVATE"]),
        "name": _text(),
        "address": _text(),
        "address_line_2": _text(),
        "city": _text(),
        "postal_code": _text(),
        "country": _text(checks=pa.Check.str_matches(r"^[A-Z]{3}$")),  # ISO 3166 alpha-3
        "latitude": _LAT,
        "longitude": _LON,
        "time_zone": _text(),
        "opening_times": _text(),
        "charging_when_closed": _BOOL,
        "energy_mix": _text(),
        "energy_mix_profile_id": _text(),
        "is_green_energy": _BOOL,
        "directions": _text(),
        "facilities": _text(),
        "operator": _text(),
        "suboperator": _text(),
        "owner": _text(),
        "auth_rules": _text(),
        "custom_groups": _text(),
        "customised_fields": _text(),
        "maintenance_info": _text(),
        "remarks": _text(),
        "payment_provider": _text(),
        "wallet_id": _text(),
        "cpo_customer_external_id": _text(),
        "etag": _text(),
        "created_by": _text(),
        "modified_by": _text(),
        "created": _TS,
        "modified": _TS,
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

EVSES = pa.DataFrameSchema(
    {
        "location_id": _key(),
        "evse_uid": _key(),
        "evse_id": _text(),
        "status": _text(False, checks=pa.Check.isin(EVSE_STATUSES)),
        "status_schedule": _text(),
        "capabilities": _text(),
        "floor_level": _text(),
        "latitude": _LAT,
        "longitude": _LON,
        "physical_reference": _text(),
        "directions": _text(),
        "parking_restrictions": _text(),
        "images": _text(),
        "evse_sequence_number": _int(pa.Check.ge(0)),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

CONNECTORS = pa.DataFrameSchema(
    {
        "location_id": _key(),
        "evse_uid": _key(),
        "connector_id": _key(),
        "standard": _text(False, checks=pa.Check.isin(CONNECTOR_STANDARDS)),
        "format": _text(False, checks=pa.Check.isin(["SOCKET", "CABLE"])),
        "power_type": _text(False, checks=pa.Check.isin(POWER_TYPES)),
        "voltage": _int(pa.Check.ge(0)),
        "amperage": _int(pa.Check.ge(0)),
        "max_electric_power": _int(pa.Check.ge(0)),
        "tariff_id": _text(),
        "reimbursement_tariff_id": _text(),
        "terms_and_conditions": _text(),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

CHARGE_STATIONS = pa.DataFrameSchema(
    {
        "charge_station_id": _key(),
        "location_id": _text(),
        "name": _text(),
        "deploy_state": _enum(["Stock", "Production", "Deprecated"]),
        "installation_date": _TS,
        "default_charge_station_tariff_id": _text(),
        "default_charge_station_reimbursement_tariff_id": _text(),
        "default_charge_station_directions": _text(),
        "default_charge_station_floor_level": _text(),
        "driver_id": _text(),
        "customer_id": _text(),
        "evse_uids": _text(),
        "evses": _text(),
        "maintenance_info": _text(),
        "remarks": _text(),
        "contactless_terminal_serial_number": _text(),
        "contactless_terminal_auth_amount": pa.Column(float, pa.Check.ge(0), nullable=True, coerce=True),
        "contactless_type": _text(),
        "status_schedule": _text(),
        "auth_rules": _text(),
        "tap_to_stop": _BOOL,
        "stop_on_parking": _BOOL,
        "grid_connection_id": _text(),
        "dynamic_time_based_tariffs": _BOOL,
        "time_of_use_tariffs": _BOOL,
        "exclude_vat": _BOOL,
        "charger_type": _enum(["Public", "Home", "Business"]),
        "charge_station_template_id": _text(),
        "etag": _text(),
        "created_by": _text(),
        "modified_by": _text(),
        "status": _enum(EVSE_STATUSES),
        "charging_speed": _enum(["Slow", "Fast", "Rapid", "Mix_AC_DC", "Mix_DC"]),
        "created": _TS,
        "heartbeat_interval": _int(pa.Check.ge(0)),
        "charge_point_model": _text(),
        "charge_point_vendor": _text(),
        "charge_point_serial_number": _text(),
        "charge_box_serial_number": _text(),
        "client_ip_address": _text(),
        "firmware_version": _text(),
        "iccid": _text(),
        "imsi": _text(),
        "meter_serial_number": _text(),
        "meter_type": _text(),
        "remote_manageable": _BOOL,
        "connectivity_status": _enum(["Online", "Offline"]),
        "protocol_version": _enum(["Ocpp15", "Ocpp15Soap", "Ocpp16", "Ocpp201"]),
        "endpoint": _text(),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

TARIFFS = pa.DataFrameSchema(
    {
        "tariff_id": _key(),
        "cpo_id": _text(),
        "currency": _text(False, checks=pa.Check.str_matches(r"^[A-Z]{3}$")),
        "tariff_alt_text": _text(),
        "tariff_alt_url": _text(),
        "elements": _text(False),
        "energy_mix": _text(),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)
