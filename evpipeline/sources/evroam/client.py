"""EVRoam Consumer API client: paged pulls, deltas by If-Modified-Since, webhook subscription, push files."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from evpipeline.http import (
    ClientError,
    HeaderKeyAuth,
    HttpClient,
    NoAuth,
    PageNumberPaginator,
    Pull,
    shared_limiter,
)
from evpipeline.resources import ApiResource
from evpipeline.sources.evroam.push_urls import Origin, PushUrlRefused, parse_origins, vet
from evpipeline.timeutil import http_date, parse_http_date, utcnow

# NZTA's notification files live in one storage account; nothing else is fetched by default.
DEFAULT_PUSH_ORIGIN = "https://evroamstore.blob.core.windows.net"

Stream = Literal["Site", "ChargingStation"]
LIST_KEYS: dict[str, str] = {"Site": "sites", "ChargingStation": "chargingStations"}
# Lists page by `resultPage` (from 1) while `hasMoreResults`; a 304 answers an unchanged delta.
PAGING = PageNumberPaginator(param="resultPage", has_more="hasMoreResults")


class PushFileGone(Exception):  # a state of the world, not a bug
    """The notification's file expired (403) or was deleted (404): fall back to a delta sync."""


class EVRoamClient:
    """Calls the EVRoam Consumer API through the shared HTTP layer."""

    def __init__(self, api: HttpClient, files: HttpClient, allowed_origins: list[Origin]) -> None:
        self.api, self.files, self.allowed_origins = api, files, allowed_origins

    def fetch(self, stream: Stream, since: datetime | None) -> Pull:
        """Every record of `stream` changed since `since` (all records when None), across pages."""
        key = LIST_KEYS[stream]
        headers = {"If-Modified-Since": http_date(since)} if since is not None else {}
        records: list[dict[str, Any]] = []
        server_time: datetime | None = None
        pages = 0
        for page in self.api.paginate(
            stream,
            PAGING,
            select=key,
            what=f"an object with a {key!r} list",
            headers=headers,
            ok=(200, 202, 304),
        ):
            if server_time is None:  # the first response's time: the next delta's watermark
                server_time = parse_http_date(page.response.headers.get("Date")) or utcnow()
            records.extend(page.records)
            pages = page.number
        return Pull(records, server_time or utcnow(), pages)

    def subscribe(
        self, webhook_url: str, *, sites: bool = True, stations: bool = True, availability: bool = True
    ) -> str:
        """Register our webhook (one per API key; registering again replaces it)."""
        response = self.api.request(
            "POST",
            "Notification",
            json_body={
                "webHookEndPoint": webhook_url,
                "inlcudeSiteChanges": sites,  # sic: the API's own spelling
                "includeChargingStationChanges": stations,
                "includeChargingStationAvailabilityChanges": availability,
            },
            ok=(200, 201),
        )
        return str(self.api.decode_json(response))

    def download(self, url: object) -> list[dict[str, Any]]:
        """The records in a push notification's file (PushUrlRefused: not fetched; PushFileGone: expired)."""
        target = vet(url, self.allowed_origins)  # the URL we fetch is the one that was judged
        try:
            body, response = self.files.get_json(target, allow_redirects=False)
        except ClientError as exc:
            if exc.status is not None and 300 <= exc.status < 400:
                raise PushUrlRefused(
                    f"the file URL answered a redirect (HTTP {exc.status}); redirects are refused"
                ) from None
            if exc.status in (403, 404, 410):
                raise PushFileGone(f"push file no longer available (HTTP {exc.status})") from None
            raise
        return self.files.expect(body, list, "a push file with a list of records", response)


class EVRoamResource(ApiResource):
    """EVRoam Consumer API (NZ Transport Agency): sites, charging stations, availability, push."""

    base_url: str = Field(description="API base, e.g. https://evroam.azure-api.net/consumer/api")
    subscription_key: str = Field(description="Ocp-Apim-Subscription-Key (secret: use dg.EnvVar)")
    allowed_push_hosts: str = Field(
        default=DEFAULT_PUSH_ORIGIN,
        description="Comma list of origins (scheme://host[:port]) push files may be downloaded from; "
        "`*.` for subdomains",
    )
    requests_per_second: float = Field(default=5.0, description="Proactive client-side rate limit")
    push_file_deadline: float = Field(
        default=10.0,
        description="Seconds one push-file download may take in all; a file that misses it is replaced "
        "by a delta pull, like an expired one (the lane's cycle waits for nothing slower)",
    )
    push_file_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="Largest push file read; a larger one is replaced by a delta pull",
    )

    def client(self) -> EVRoamClient:
        retry, timeout = self.retry_policy(), self.timeouts()
        api = HttpClient(
            "evroam",
            self.base_url,
            auth=HeaderKeyAuth("Ocp-Apim-Subscription-Key", self.subscription_key),
            limiter=shared_limiter(
                f"evroam:{self.base_url}", self.requests_per_second, burst=max(1.0, self.requests_per_second)
            ),
            retry=retry,
            timeout=timeout,
            **self.limits(),
        )
        # Push files live on blob storage behind their own SAS signature: never send the API key there.
        files = HttpClient(
            "evroam-push-files",
            "",
            auth=NoAuth(),
            retry=retry,
            timeout=timeout,
            deadline=self.push_file_deadline,
            max_bytes=self.push_file_max_bytes,
        )
        return EVRoamClient(api, files, parse_origins(self.allowed_push_hosts))
