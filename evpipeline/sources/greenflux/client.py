"""GreenFlux CLM API client: offset/limit pages filtered by date_from, OCPI status codes, both list shapes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from pydantic import Field

from evpipeline.http import (
    HttpClient,
    OffsetPaginator,
    TokenAuth,
    shared_limiter,
)
from evpipeline.ocpi.status import ocpi_check
from evpipeline.resources import ApiResource
from evpipeline.timeutil import iso_utc, parse_http_date, utcnow

LOCATIONS = "api/2.0/Locations"
CHARGE_STATIONS = "api/2.0/ChargeStations"
# GreenFlux's CLM docs name no tariffs path; this is the Platform's OCPI 2.1.1-style one (docs/sources.md).
TARIFFS = "api/1.0/tariffs"


@dataclass
class Page:
    """One page of objects, where it started, and the server's time when it was produced."""

    records: list[dict[str, Any]]
    offset: int
    server_time: datetime


def page_time(body: Any, response: requests.Response) -> datetime:
    """The OCPI envelope's `timestamp`, else the HTTP `Date`, else our clock."""
    stamp = body.get("timestamp") if isinstance(body, dict) else None
    if isinstance(stamp, str):
        try:
            parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return parse_http_date(response.headers.get("Date")) or utcnow()


def ocpi_data(body: Any) -> Any:
    """The list in a body: an OCPI envelope's `data`, or the body itself (GreenFlux's SDKs disagree)."""
    return body.get("data") if isinstance(body, dict) else body


def date_param(when: datetime) -> str:
    """`yyyy-MM-ddTHH:mm:ssZ`, rounded down to the second (date_from is inclusive: never skip)."""
    return iso_utc(when.replace(microsecond=0))


class GreenFluxClient:
    """Calls the GreenFlux CLM API through the shared HTTP layer."""

    def __init__(self, api: HttpClient, limit: int, tariffs_path: str = TARIFFS) -> None:
        self.api, self.limit, self.tariffs_path = api, limit, tariffs_path
        self.paging = OffsetPaginator(limit)  # offset/limit until a short page, honouring X-Limit
        self._check = ocpi_check(api)

    def pages(
        self,
        path: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[Page]:
        """Every object of a list endpoint (changed since `since`), page by page until a short page.

        Pages are yielded as they arrive so the caller can normalize and drop each one. The
        list may be an OCPI envelope or a bare array (GreenFlux's SDKs disagree); the server may
        cap `limit` (OCPI `X-Limit`), in which case a page of that size is not the last.
        """
        query = dict(params or {})
        if since is not None:
            query["date_from"] = date_param(since)
        if until is not None:
            query["date_to"] = date_param(until)
        for page in self.api.paginate(
            path,
            self.paging,
            params=query,
            select=ocpi_data,
            what="a list of objects (an OCPI envelope's data, or a bare array)",
            check=self._check,
        ):
            yield Page(page.records, page.query["offset"], page_time(page.body, page.response))

    def locations(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Page]:
        return self.pages(LOCATIONS, since=since, until=until)

    def charge_stations(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Page]:
        return self.pages(CHARGE_STATIONS, since=since, until=until)

    def tariffs(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Page]:
        return self.pages(self.tariffs_path, since=since, until=until)

    def location(self, location_id: str) -> dict[str, Any]:
        """One location (for support and tests; batch syncs use `date_from`, as GreenFlux asks)."""
        body, response = self.api.get_json(f"{LOCATIONS}/{location_id}", check=self._check)
        # A location is an object itself: only an object with an OCPI status_code is an envelope.
        data = body.get("data") if isinstance(body, dict) and "status_code" in body else body
        return self.api.expect(data, dict, "one location", response)


class GreenFluxResource(ApiResource):
    """GreenFlux Charge-Location Management API: Locations v2, Charge Stations and tariffs."""

    base_url: str = Field(description="Platform base URL, e.g. https://platform.greenflux.com")
    token: str = Field(description="API token, sent as `Authorization: Token …` (secret: use dg.EnvVar)")
    page_limit: int = Field(
        default=1000, description="Objects per page (`limit`); large pages keep a bootstrap short"
    )
    tariffs_path: str = Field(
        default=TARIFFS, description="Tariffs list endpoint (an assumption, see docs/sources.md)"
    )
    requests_per_second: float = Field(default=10.0, description="Proactive client-side rate limit")
    live_poll_seconds: float = Field(
        default=5.0,
        description="Real-time lane: seconds between Locations deltas (0: off); a status change reaches NDW "
        "within this plus a cycle (goal: 10 s p95); one request when quiet",
    )
    live_tariff_poll_seconds: float = Field(
        default=60.0,
        description="Real-time lane: seconds between tariff deltas (ad hoc prices change rarely; "
        "AFIR allows a minute)",
    )
    read_timeout: float = Field(default=60.0, description="Seconds to wait for an answer (large pages)")
    max_attempts: int = 6

    def client(self) -> GreenFluxClient:
        api = HttpClient(
            "greenflux",
            self.base_url,
            auth=TokenAuth(self.token),  # OCPI 2.1.1 style: the raw token, not base64
            limiter=shared_limiter(
                f"greenflux:{self.base_url}",
                self.requests_per_second,
                burst=max(1.0, self.requests_per_second),
            ),
            retry=self.retry_policy(),
            timeout=self.timeouts(),
            **self.limits(),
        )
        return GreenFluxClient(api, self.page_limit, self.tariffs_path)
