"""pandera schemas of the TomTom tables: what a row must satisfy to be merged.

Counts are non-negative integers and add up (checked while normalizing, where the reason can be
named); power levels are required because they are part of the key. Connector types are an open
vocabulary here: v2 documents 14, newer TomTom APIs add more, and an unseen type is data.
"""

import pandas as pd
import pandera.pandas as pa

UTC_TS = pd.DatetimeTZDtype("ns", "UTC")
MATCH_STATUSES = ["matched", "no_live_data", "ambiguous", "unmatched"]
STATUSES = ["AVAILABLE", "OCCUPIED", "RESERVED", "OUT_OF_SERVICE", "UNKNOWN"]
OUTCOMES = ["data", "no_data", "error"]


def _text(nullable: bool = True, checks: pa.Check | None = None) -> pa.Column:
    return pa.Column(str, checks=checks, nullable=nullable)


def _id() -> pa.Column:
    return _text(False, checks=pa.Check.str_length(min_value=1))


def _count() -> pa.Column:
    return pa.Column(pd.Int64Dtype(), pa.Check.ge(0), nullable=False, coerce=True)


_COUNTS = {
    name: _count() for name in ("total", "available", "occupied", "reserved", "unknown", "out_of_service")
}
_POWER = pa.Column(float, pa.Check.ge(0), nullable=False, coerce=True)
_LAT = pa.Column(float, pa.Check.in_range(-90, 90), nullable=True, coerce=True)
_LON = pa.Column(float, pa.Check.in_range(-180, 180), nullable=True, coerce=True)
_UPDATED = {"last_updated": pa.Column(UTC_TS, nullable=False, coerce=True)}

MAPPING = pa.DataFrameSchema(
    {
        "country_code": _id(),
        "party_id": _id(),
        "location_id": _id(),
        "source": _text(),
        "location_name": _text(),
        "latitude": _LAT,
        "longitude": _LON,
        "connector_types": _text(),
        "match_status": _text(False, checks=pa.Check.isin(MATCH_STATUSES)),
        "availability_id": _text(),
        "poi_id": _text(),
        "poi_name": _text(),
        "poi_latitude": _LAT,
        "poi_longitude": _LON,
        "distance_m": pa.Column(float, pa.Check.ge(0), nullable=True, coerce=True),
        "connector_overlap": pa.Column(float, pa.Check.in_range(0, 1), nullable=True, coerce=True),
        "candidates": pa.Column(pd.Int64Dtype(), pa.Check.ge(0), nullable=True, coerce=True),
        "runner_up_poi_id": _text(),
        "runner_up_distance_m": pa.Column(float, pa.Check.ge(0), nullable=True, coerce=True),
        "reason": _text(),
        "searched_at": pa.Column(UTC_TS, nullable=True, coerce=True),
        **_UPDATED,
    },
    strict=True,
)

SNAPSHOTS = pa.DataFrameSchema(
    {
        "availability_id": _id(),
        "connector_type": _id(),
        "power_kw": _POWER,
        "polled_at": pa.Column(UTC_TS, nullable=False, coerce=True),
        "tracking_id": _text(),
        **_COUNTS,
        **_UPDATED,
    },
    strict=True,
)

LATEST = pa.DataFrameSchema(
    {
        "availability_id": _id(),
        "connector_type": _id(),
        "power_kw": _POWER,
        "status": _text(False, checks=pa.Check.isin(STATUSES)),
        **_COUNTS,
        **_UPDATED,
    },
    strict=True,
)

POLLS = pa.DataFrameSchema(
    {
        "availability_id": _id(),
        "polled_at": pa.Column(UTC_TS, nullable=False, coerce=True),
        "tracking_id": _text(),
        "wire_format": _text(checks=pa.Check.isin(["json", "xml"])),
        "http_status": pa.Column(pd.Int64Dtype(), nullable=True, coerce=True),
        "outcome": _text(False, checks=pa.Check.isin(OUTCOMES)),
        "connector_types": pa.Column(pd.Int64Dtype(), pa.Check.ge(0), nullable=True, coerce=True),
        "error": _text(),
        **_UPDATED,
    },
    strict=True,
)
