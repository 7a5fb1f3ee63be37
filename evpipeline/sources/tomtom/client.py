"""TomTom client: category search near a point, and charging availability per id,
polled concurrently within QPS.

The API has no batch call, so a poll is one request per availability id. They run on a small
thread pool whose workers all wait on one token bucket (`shared_limiter`, burst 1) set a little
under the key's QPS: in any 1 s window at most `1 + rate` requests leave, which stays within QPS
while keeping throughput above 90 % of it. Every request carries its own `Tracking-ID` (a UUID),
logged with its outcome and stored with the rows, so a support case can name the exact call.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from pydantic import Field

from evpipeline.http import (
    AuthError,
    HttpClient,
    HttpError,
    QueryKeyAuth,
    ResponseFormatError,
    RetryableResponse,
    select_data,
    shared_limiter,
)
from evpipeline.progress import Progress
from evpipeline.resources import ApiResource
from evpipeline.sources.tomtom.wire import Poll, WireFormat, parse_availability_xml
from evpipeline.timeutil import parse_http_date, utcnow

log = logging.getLogger("evpipeline.sources.tomtom")

AVAILABILITY_PATH = "search/2/chargingAvailability.{ext}"
# Category search for "electric vehicle station" (category 7309) around a point.
SEARCH_PATH = "search/2/categorySearch/electric%20vehicle%20station.json"
EV_CATEGORY = "7309"
K = TypeVar("K", bound=Hashable)


@dataclass
class PollBatch:
    """Every poll of one run (in the order the ids were given) and how long it took."""

    polls: list[Poll] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Poll]:
        return [p for p in self.polls if p.outcome == "error"]

    def count(self, outcome: str) -> int:
        return sum(1 for p in self.polls if p.outcome == outcome)


class TomTomClient:
    """Calls TomTom Search and EV Charging Stations Availability v2 through the shared HTTP layer."""

    def __init__(
        self, api: HttpClient, *, concurrency: int = 8, search_radius_m: float = 150.0, search_limit: int = 20
    ) -> None:
        self.api, self.concurrency = api, max(1, concurrency)
        self.search_radius_m, self.search_limit = search_radius_m, search_limit

    # -- availability ------------------------------------------------------------------------
    def availability(
        self,
        availability_id: str,
        *,
        wire_format: WireFormat = "json",
        connector_set: Sequence[str] | None = None,
        min_power_kw: float | None = None,
        max_power_kw: float | None = None,
        tracking_id: str | None = None,
    ) -> Poll:
        """Availability of one id; an unknown id is an empty `connectors` list, not an error."""
        tracking_id = tracking_id or str(uuid.uuid4())
        params: dict[str, Any] = {"chargingAvailability": availability_id}
        if connector_set:
            params["connectorSet"] = ",".join(connector_set)
        if min_power_kw is not None:
            params["minPowerKW"] = min_power_kw
        if max_power_kw is not None:
            params["maxPowerKW"] = max_power_kw

        parsed: Any = None  # the body of the response that passed `parse`: `request` returns right after it

        def parse(response: requests.Response) -> None:
            nonlocal parsed
            try:
                body = parse_availability_xml(response.content) if wire_format == "xml" else response.json()
            except ValueError as exc:  # truncated or malformed in transit: ask again
                raise RetryableResponse(
                    f"malformed {wire_format}: {exc}", give_up=ResponseFormatError
                ) from None
            self.api.expect(
                select_data(body, "connectors"), list, "an object with a 'connectors' list", response
            )
            parsed = body

        try:
            response = self.api.request(
                "GET",
                AVAILABILITY_PATH.format(ext=wire_format),
                params=params,
                headers={"Tracking-ID": tracking_id, "Accept": f"application/{wire_format}"},
                check=parse,
            )
        except HttpError as exc:
            log.warning(
                "chargingAvailability %s failed (Tracking-ID %s): %s", availability_id, tracking_id, exc
            )
            raise
        echoed = response.headers.get("Tracking-ID")
        if echoed and echoed != tracking_id:
            log.warning(
                "chargingAvailability %s: sent Tracking-ID %s, server echoed %s",
                availability_id,
                tracking_id,
                echoed,
            )
        body = parsed
        log.debug(
            "chargingAvailability %s Tracking-ID %s -> %d, %d connector type(s)",
            availability_id,
            tracking_id,
            response.status_code,
            len(body["connectors"]),
        )
        return Poll(
            availability_id=availability_id,
            tracking_id=tracking_id,
            polled_at=parse_http_date(response.headers.get("Date")) or utcnow(),
            wire_format=wire_format,
            http_status=response.status_code,
            body=body,
        )

    def poll_many(
        self, availability_ids: Iterable[str], *, wire_format: WireFormat = "json", **filters: Any
    ) -> PollBatch:
        """Poll every id concurrently within QPS. A failing id is recorded, not fatal;
        a 403 stops everything."""
        ids = list(dict.fromkeys(availability_ids))  # each id once, in the given order
        tracking = {aid: str(uuid.uuid4()) for aid in ids}

        def one(aid: str) -> Poll:
            try:
                return self.availability(aid, wire_format=wire_format, tracking_id=tracking[aid], **filters)
            except AuthError:
                raise
            except HttpError as exc:
                return Poll(aid, tracking[aid], utcnow(), wire_format, exc.status, None, str(exc))

        started = time.monotonic()
        polls = self._concurrently(ids, one, what="tomtom availability polls", unit="ids")
        return PollBatch([polls[aid] for aid in ids if aid in polls], time.monotonic() - started)

    # -- search ------------------------------------------------------------------------------
    def search(
        self, latitude: float, longitude: float, radius_m: float | None = None
    ) -> list[dict[str, Any]]:
        """Charging POIs (category 7309) within `radius_m` of a point, nearest first."""
        params = {
            "lat": f"{latitude:.7f}",
            "lon": f"{longitude:.7f}",
            "radius": int(round(radius_m or self.search_radius_m)),
            "categorySet": EV_CATEGORY,
            "limit": self.search_limit,
        }
        tracking_id = str(uuid.uuid4())
        body, response = self.api.get_json(SEARCH_PATH, params=params, headers={"Tracking-ID": tracking_id})
        results = self.api.expect(
            select_data(body, "results"), list, "an object with a 'results' list", response
        )
        log.debug(
            "categorySearch %.6f,%.6f Tracking-ID %s -> %d result(s)",
            latitude,
            longitude,
            tracking_id,
            len(results),
        )
        return results

    def search_many(
        self, points: Mapping[K, tuple[float, float]]
    ) -> tuple[dict[K, list[dict[str, Any]]], dict[K, HttpError]]:
        """Search around many points concurrently within QPS: (results per key, errors per key)."""
        errors: dict[K, HttpError] = {}

        def one(key: K) -> list[dict[str, Any]] | None:
            try:
                return self.search(*points[key])
            except AuthError:
                raise
            except HttpError as exc:
                errors[key] = exc
                return None

        found = self._concurrently(list(points), one, what="tomtom location searches", unit="locations")
        return {k: v for k, v in found.items() if v is not None}, errors

    # -- concurrency -------------------------------------------------------------------------
    def _concurrently(
        self,
        keys: list[Any],
        work: Callable[[Any], Any],
        *,
        what: str = "tomtom requests",
        unit: str = "requests",
    ) -> dict[Any, Any]:
        """Run `work` per key on the pool (the limiter paces them); the first AuthError cancels the rest.
        Logs progress (done, rate, ETA) every few seconds on long batches."""
        results: dict[Any, Any] = {}
        progress = Progress(what, unit=unit, total=len(keys))
        stop = threading.Event()

        def guarded(key: Any) -> Any:
            if stop.is_set():
                return None
            try:
                return work(key)
            except AuthError:
                stop.set()  # the key is wrong for every request: do not spend more quota on it
                raise

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="tomtom")
        try:
            futures = {pool.submit(guarded, key): key for key in keys}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                progress.advance()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()
        return results


class TomTomResource(ApiResource):
    """TomTom Search + EV Charging Stations Availability v2 (API key in the query, QPS-limited)."""

    base_url: str = Field(description="API base, e.g. https://api.tomtom.com")
    api_key: str = Field(description="TomTom API key, sent as ?key= (secret: use dg.EnvVar)")
    qps: float = Field(default=20.0, description="Queries per second the key allows (TOMTOM_QPS)")
    qps_headroom: float = Field(
        default=0.05,
        description="Fraction of QPS left unused so network jitter never pushes a second over the limit",
    )
    concurrency: int = Field(
        default=8, description="Requests in flight at once (the limiter still paces them)"
    )
    search_radius_m: float = Field(default=150.0, description="Radius of the search around each location")
    read_timeout: float = Field(default=10.0, description="Seconds to wait for an answer")

    def client(self) -> TomTomClient:
        rate = max(0.1, self.qps * (1 - self.qps_headroom))
        api = HttpClient(
            "tomtom",
            self.base_url,
            auth=QueryKeyAuth("key", self.api_key),
            # Burst 1: requests are evenly spaced, so no 1 s window holds more than 1 + rate of them.
            limiter=shared_limiter(f"tomtom:{self.base_url}", rate, burst=1.0),
            retry=self.retry_policy(),
            timeout=self.timeouts(),
            **self.limits(),
            pool_size=max(self.concurrency, 1),
        )
        return TomTomClient(api, concurrency=self.concurrency, search_radius_m=self.search_radius_m)
