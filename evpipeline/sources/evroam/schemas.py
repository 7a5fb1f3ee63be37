"""pandera schemas of the EVRoam tables: what a row must satisfy to be merged.

Closed vocabularies the API documents (`current`, `installationStatus`) are enforced; open ones
(connector types) are not: an unseen connector type is data, and the canonical model reports
what it cannot map instead of this layer dropping the row.
"""

import pandas as pd
import pandera.pandas as pa

UTC_TS = pd.DatetimeTZDtype("ns", "UTC")
INSTALLATION_STATUSES = [
    "Proposed",
    "Planned",
    "Under Construction",
    "Commissioned",
    "Decommissioned",
    "Abandoned",
]


def _text(nullable: bool = True, checks: pa.Check | None = None) -> pa.Column:
    return pa.Column(str, checks=checks, nullable=nullable)


_LAT = pa.Column(float, pa.Check.in_range(-90, 90), nullable=True, coerce=True)
_LON = pa.Column(float, pa.Check.in_range(-180, 180), nullable=True, coerce=True)
_BOOL = pa.Column(pd.BooleanDtype(), nullable=True, coerce=True)
_COMMON = {
    "is_deleted": pa.Column(bool, coerce=True),
    "last_updated": pa.Column(UTC_TS, nullable=False, coerce=True),
}

SITES = pa.DataFrameSchema(
    {
        "site_id": _text(False, checks=pa.Check.str_length(min_value=1)),
        "name": _text(),
        "operator": _text(),
        "address": _text(),
        "is_24_hours": _BOOL,
        "car_park_count": pa.Column(pd.Int64Dtype(), pa.Check.ge(0), nullable=True, coerce=True),
        "has_carpark_cost": _BOOL,
        "max_time_limit": _text(),
        "has_tourist_attraction": _BOOL,
        "latitude": _LAT,
        "longitude": _LON,
        "access_locations": _text(),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

STATIONS = pa.DataFrameSchema(
    {
        "charging_station_id": _text(False, checks=pa.Check.str_length(min_value=1)),
        "site_id": _text(),
        "operator": _text(),
        "owner": _text(),
        "asset_id": _text(),
        "current": _text(checks=pa.Check.isin(["AC", "DC"])),
        "has_charging_cost": _BOOL,
        "kw_rated": pa.Column(float, pa.Check.ge(0), nullable=True, coerce=True),
        "date_first_operational": pa.Column(UTC_TS, nullable=True, coerce=True),
        "next_planned_outage": _text(),
        "installation_status": _text(checks=pa.Check.isin(INSTALLATION_STATUSES)),
        "floor_level": _text(),
        "manufacturer": _text(),
        "model": _text(),
        "images": _text(),
        "latitude": _LAT,
        "longitude": _LON,
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

CONNECTORS = pa.DataFrameSchema(
    {
        "charging_station_id": _text(False, checks=pa.Check.str_length(min_value=1)),
        "connector_id": _text(False, checks=pa.Check.str_length(min_value=1)),
        "connector_type": _text(),
        "operation_status": _text(checks=pa.Check.isin(["Operative", "Inoperative", "Unknown"])),
        "extra": _text(),
        **_COMMON,
    },
    strict=True,
)

AVAILABILITY = pa.DataFrameSchema(
    {
        "charging_station_id": _text(False, checks=pa.Check.str_length(min_value=1)),
        "operator": _text(),
        "availability_status": _text(False, checks=pa.Check.str_length(min_value=1)),
        "kw_available": pa.Column(float, pa.Check.ge(0), nullable=True, coerce=True),
        "availability_time": pa.Column(UTC_TS, nullable=False, coerce=True),
        "last_updated": pa.Column(UTC_TS, nullable=False, coerce=True),
    },
    strict=True,
)
