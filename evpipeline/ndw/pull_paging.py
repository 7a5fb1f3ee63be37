"""OCPI on the wire for the pull server: envelopes around pre-serialised data, and the paging
parameters (`offset`, `limit`, `date_from`, `date_to`, `snapshot`) with their validation."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response

from evpipeline.ndw.pull_snapshot import epoch_micros

# OCPI DateTime (RFC 3339, UTC implied without a designator). A numeric offset is tolerated and
# converted; a space where the `+` was (an unencoded `+` in a query string) is read as `+`.
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+\- ]\d{2}:\d{2})?$"
)
_INTEGER = re.compile(r"^[0-9]+$")

_stamp_cache: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """Envelope timestamp, OCPI DateTime in UTC with Z (formatted once per second)."""
    global _stamp_cache
    second = int(time.time())
    if _stamp_cache[0] != second:
        _stamp_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _stamp_cache[1]


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _envelope(data: bytes | None, status_code: int = 1000, message: str = "Success") -> bytes:
    head = b'{"data":' + data + b"," if data is not None else b"{"
    tail = (
        f'"status_code":{status_code},"status_message":{json.dumps(message)},"timestamp":"{_timestamp()}"}}'
    )
    return head + tail.encode()


def ocpi_response(
    data: bytes | None,
    *,
    http_status: int = 200,
    status_code: int = 1000,
    message: str = "Success",
    headers: dict[str, str] | None = None,
) -> Response:
    """An OCPI envelope around already-serialised `data` (None: no data field)."""
    return Response(
        _envelope(data, status_code, message),
        status_code=http_status,
        headers=headers,
        media_type="application/json",
    )


def ocpi_error(
    http_status: int, status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return ocpi_response(
        None, http_status=http_status, status_code=status_code, message=message, headers=headers
    )


class BadParameter(ValueError):
    """A query parameter OCPI defines, with a value it does not allow (HTTP 400, OCPI 2001)."""


def parse_datetime(name: str, value: str) -> int:
    """An OCPI DateTime query value -> microseconds since the epoch (UTC)."""
    match = _DATETIME.match(value.strip())
    if not match:
        raise BadParameter(f"{name} is not an OCPI DateTime (e.g. 2026-11-01T08:00:00Z): {value[:40]!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    micros = int((match.group(7) or "0").ljust(6, "0")[:6])
    try:
        when = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError:
        raise BadParameter(f"{name} is not a valid date and time: {value[:40]!r}") from None
    zone = match.group(8)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        when -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return epoch_micros(when)


def _non_negative(name: str, value: str) -> int:
    if not _INTEGER.match(value):
        raise BadParameter(f"{name} must be a non-negative integer, got {value[:40]!r}")
    return (
        int(value) if len(value) <= 18 else 10**18
    )  # no giant int parsing; anything that big is "past the end"


@dataclass(frozen=True)
class PageQuery:
    offset: int
    limit: int  # effective: min(requested, cap)
    date_from: int | None
    date_to: int | None
    filters: dict[str, str]  # date_from/date_to as the client sent them, for the next Link
    snapshot: str | None


def parse_page_query(params: Any, cap: int) -> PageQuery:
    """OCPI paging parameters; empty values count as absent, unknown parameters are ignored."""
    raw = {k: params.get(k, "") for k in ("offset", "limit", "date_from", "date_to", "snapshot")}
    offset = _non_negative("offset", raw["offset"]) if raw["offset"] else 0
    limit = cap
    if raw["limit"]:
        requested = _non_negative("limit", raw["limit"])
        if requested == 0:
            # An empty last page would tell a client that nothing exists ("all pages together are
            # the new truth"): refuse rather than risk a client dropping every object.
            raise BadParameter("limit must be at least 1")
        limit = min(requested, cap)
    date_from = parse_datetime("date_from", raw["date_from"]) if raw["date_from"] else None
    date_to = parse_datetime("date_to", raw["date_to"]) if raw["date_to"] else None
    filters = {k: raw[k] for k in ("date_from", "date_to") if raw[k]}
    return PageQuery(offset, limit, date_from, date_to, filters, raw["snapshot"] or None)
