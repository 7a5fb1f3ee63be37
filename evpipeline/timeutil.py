"""UTC everywhere: parsing provider timestamps and formatting them for each wire format."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

import pandas as pd


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_utc(values: pd.Series | list[object]) -> tuple[pd.Series, pd.Series]:
    """ISO-8601 strings -> tz-aware UTC timestamps, plus a mask of non-empty values that failed.

    Zone-less values (Zaptec's `2023-06-09T13:35:24.583`) are UTC, as their APIs document.
    """
    raw = pd.Series(values, dtype=object)
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    failed = raw.notna() & (raw.astype(str).str.strip() != "") & parsed.isna()
    return parsed, failed


def http_date(when: datetime) -> str:
    """RFC 7231 date (If-Modified-Since): `Sun, 22 Nov 2026 03:08:47 GMT`."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ocpi_datetime(when: datetime | pd.Timestamp) -> str:
    """OCPI DateTime: UTC with `Z`, whole seconds (never `+00:00`, never over 25 characters)."""
    return pd.Timestamp(when).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
