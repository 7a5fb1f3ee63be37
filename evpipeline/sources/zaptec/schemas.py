"""pandera schemas of the Zaptec tables: what a row must satisfy to be merged.

Documented enums (InstallationType, NetworkType, AuthenticationType, ChargerOperationMode) are
enforced; observation ids are open (Zaptec adds new ones), so an unknown StateId is data.
"""

import pandas as pd
import pandera.pandas as pa

from evpipeline.sources.zaptec.normalize import OPERATION_MODES

UTC_TS = pd.DatetimeTZDtype("ns", "UTC")


def _text(nullable: bool = True, checks: pa.Check | None = None) -> pa.Column:
    return pa.Column(str, checks=checks, nullable=nullable)


def _int(*checks: pa.Check, nullable: bool = True) -> pa.Column:
    return pa.Column(pd.Int64Dtype(), list(checks), nullable=nullable, coerce=True)


_ID = _text(False, checks=pa.Check.str_length(min_value=1))
_LAT = pa.Column(float, pa.Check.in_range(-90, 90), nullable=True, coerce=True)
_LON = pa.Column(float, pa.Check.in_range(-180, 180), nullable=True, coerce=True)
_BOOL = pa.Column(pd.BooleanDtype(), nullable=True, coerce=True)
_AMPS = pa.Column(float, pa.Check.ge(0), nullable=True, coerce=True)
_COMMON = {
    "is_deleted": pa.Column(bool, coerce=True),
    "last_updated": pa.Column(UTC_TS, nullable=False, coerce=True),
}

INSTALLATIONS = pa.DataFrameSchema(
    {
        "installation_id": _ID,
        "name": _text(),
        "address": _text(),
        "zip_code": _text(),
        "city": _text(),
        "country_id": _text(),
        "country": _text(checks=pa.Check.str_length(3, 3)),
        "country_source": _text(checks=pa.Check.isin(["country_id", "time_zone"])),
        "latitude": _LAT,
        "longitude": _LON,
        "installation_type": _int(pa.Check.isin([0, 1])),
        "network_type": _int(pa.Check.isin([0, 1, 2, 3, 4])),
        "authentication_type": _int(pa.Check.isin([0, 1, 2])),
        "is_required_authentication": _BOOL,
        "current_user_roles": _int(pa.Check.ge(0)),
        "active": _BOOL,
        "max_current": _AMPS,
        "available_current_phase1": _AMPS,
        "available_current_phase2": _AMPS,
        "available_current_phase3": _AMPS,
        "use_load_balancing": _BOOL,
        "messaging_enabled": _BOOL,
        "time_zone": _text(),
        "active_charger_count": _int(pa.Check.ge(0)),
        "created_on": pa.Column(UTC_TS, nullable=True, coerce=True),
        "updated_on": pa.Column(UTC_TS, nullable=True, coerce=True),
        "is_public": pa.Column(bool, coerce=True),
        "visibility_reason": _text(False),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

CIRCUITS = pa.DataFrameSchema(
    {
        "circuit_id": _ID,
        "installation_id": _ID,
        "name": _text(),
        "max_current": _AMPS,
        "is_active": _BOOL,
        "charger_ids": _text(),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

CHARGERS = pa.DataFrameSchema(
    {
        "charger_id": _ID,
        "installation_id": _text(),
        "circuit_id": _text(),
        "device_id": _text(),
        "mid": _text(),
        "serial_no": _text(),
        "name": _text(),
        "device_type": _int(pa.Check.in_range(0, 7)),
        "model": _text(),
        "active": _BOOL,
        "is_authorization_required": _BOOL,
        "authentication_type": _int(pa.Check.isin([0, 1, 2])),
        "current_user_roles": _int(pa.Check.ge(0)),
        "installation_name": _text(),
        "created_on": pa.Column(UTC_TS, nullable=True, coerce=True),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

STATES = pa.DataFrameSchema(
    {
        "charger_id": _ID,
        "state_id": _int(nullable=False),
        "state_name": _text(),
        "value_as_string": _text(),
        "value_number": pa.Column(float, nullable=True, coerce=True),
        "value_bool": _BOOL,
        "unit": _text(),
        "operation_mode": _text(checks=pa.Check.isin(list(OPERATION_MODES.values()))),
        "last_updated": pa.Column(UTC_TS, nullable=False, coerce=True),
    },
    strict=True,
)
