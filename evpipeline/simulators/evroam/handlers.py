"""EVRoam's HTTP routes, as the Consumer API behind Azure API Management answers them."""

from __future__ import annotations

import hmac
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from evpipeline.simulators.evroam.fleet import Record
from evpipeline.simulators.evroam.push import EVRoamPush, Subscription
from evpipeline.simulators.toolkit import HttpReply, Request, Response, paginate

API = "/consumer/api"


class EVRoamHandlers(EVRoamPush):
    """Sites and charging stations (paged, `If-Modified-Since`), the webhook subscription, push files."""

    subscription_key: str
    page_size: int

    def _add_routes(self) -> None:
        self.route("GET", f"{API}/Site", self._list_sites)
        self.route("GET", f"{API}/ChargingStation", self._list_stations)
        self.route("POST", f"{API}/Notification", self._subscribe)
        self.route("GET", r"/notifications/(?P<name>[\w.\-]+)", self._download)

    def _authorize(self, request: Request) -> None:
        key = request.header("Ocp-Apim-Subscription-Key") or request.arg("subscription-key")
        if not key:
            raise HttpReply(
                Response.json(
                    {
                        "statusCode": 401,
                        "message": "Access denied due to missing subscription key. Make sure to include "
                        "subscription key when making requests to an API.",
                    },
                    401,
                )
            )
        if not self.credential_ok(key, self.subscription_key):
            raise HttpReply(
                Response.json(
                    {
                        "statusCode": 401,
                        "message": "Access denied due to invalid subscription key. Make sure to provide a "
                        "valid key for an active subscription.",
                    },
                    401,
                )
            )

    def _since(self, request: Request) -> datetime | None:
        value = request.header("If-Modified-Since")
        if not value:
            return None
        try:
            since = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise HttpReply(
                Response.json({"statusCode": 400, "message": "Invalid If-Modified-Since header."}, 400)
            ) from None
        return since if since.tzinfo else since.replace(tzinfo=UTC)

    def _page(self, request: Request, table: dict[str, Record], key: str) -> Response:
        self._authorize(request)
        since = self._since(request)
        try:
            page = request.int_arg("resultPage", 1)
        except ValueError:
            return Response.json({"statusCode": 400, "message": "resultPage must be an integer."}, 400)
        if page < 1:
            return Response.json({"statusCode": 400, "message": "resultPage must be 1 or more."}, 400)
        with self.lock:
            # HTTP-dates have whole seconds: anything changed during the named second is included.
            matching = [r.body for r in table.values() if since is None or r.modified >= since]
            chunk = paginate(matching, (page - 1) * self.page_size, self.page_size)
            # Serialized under the lock: evolve must not change a record half-written.
            return Response.json({key: chunk, "hasMoreResults": page * self.page_size < len(matching)})

    def _list_sites(self, request: Request) -> Response:
        return self._page(request, self.sites, "sites")

    def _list_stations(self, request: Request) -> Response:
        return self._page(request, self.stations, "chargingStations")

    def _subscribe(self, request: Request) -> Response:
        self._authorize(request)
        try:
            body = request.json()
        except ValueError:
            return Response.json({"statusCode": 400, "message": "Body must be JSON."}, 400)
        endpoint = (body or {}).get("webHookEndPoint")
        if not endpoint or not str(endpoint).startswith(("http://", "https://")):
            return Response.json({"statusCode": 400, "message": "webHookEndPoint is required."}, 400)
        # One subscription per API key: subscribing again replaces the endpoint.
        self.subscription = Subscription(
            endpoint=endpoint,
            include_sites=bool(body.get("inlcudeSiteChanges", body.get("includeSiteChanges", False))),
            include_stations=bool(body.get("includeChargingStationChanges", False)),
            include_availability=bool(body.get("includeChargingStationAvailabilityChanges", False)),
        )
        threading.Thread(target=self._handshake, args=(self.subscription,), daemon=True).start()
        return Response.json(f"Subscription created with end point {endpoint}")

    def _download(self, request: Request) -> Response:
        name = request.params["name"]
        expiry = request.arg("se") or ""
        if not hmac.compare_digest(request.arg("sig") or "", self._sign(name, expiry)):
            return self._blob_error(403, "AuthenticationFailed", "Signature did not match.")
        stored = self.files.get(name)
        if stored is None:
            return self._blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        body, expires = stored
        if self.clock.now() >= expires:
            return self._blob_error(403, "AuthenticationFailed", "Signed expiry time has passed.")
        return Response.json(body)

    def _blob_error(self, status: int, code: str, message: str) -> Response:
        xml = (
            '<?xml version="1.0" '
            f'encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
        )
        return Response.text(xml, status, "application/xml")
