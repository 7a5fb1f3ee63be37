"""EVRoam Consumer API simulator (NZ Transport Agency, behind Azure API Management).

Faithful to what production sends (see docs/sources.md): camelCase records, `resultPage` paging
(1-based) with `hasMoreResults`, `Ocp-Apim-Subscription-Key` (401 otherwise), `If-Modified-Since`
returning only records changed since, `providerDeleted` soft deletes at site, station and
connector level, hard deletes that make a soft-deleted record vanish later, and push: one webhook
subscription per key, an Azure Event Grid validation handshake, then every 5 minutes events whose
`data.url` points at a JSON file of the changed records that expires (403) after ~1 hour.

The fleet starts from the real EVRoam rows bundled in `evpipeline/seed_data/evroam/` (noise
included: orphan stations, a 3 kW "DC" station, null models) and grows synthetically with `scale`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import random
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import Any

from evpipeline.simulators.toolkit import (
    ChargingPark,
    HttpReply,
    Request,
    Response,
    SimClock,
    SimServer,
    det_uuid,
    iso_z,
    random_place,
    weighted,
)

API = "/consumer/api"
OPERATORS = ["ChargeNet NZ", "Vector", "Z Energy", "Meridian Energy", "BP pulse", "Contact Energy", "Jolt"]
# DC stations carry CCS/CHAdeMO; a few carry an AC plug (real provider data has such noise too).
DC_CONNECTORS = [("Type 2 CCS", 60), ("CHAdeMO", 35), ("Type 2 Tethered", 5)]
AC_CONNECTORS = [("Type 2 Socketed", 60), ("Type 2 Tethered", 30), ("Type 1 Tethered", 10)]
KW_BY_CURRENT = {"AC": [7, 11, 22], "DC": [25, 50, 75, 150, 300]}
AVAILABILITY = [("Available", 60), ("Occupied", 30), ("Unknown", 7), ("Unavailable", 3)]
STREAMS = {"sites": "sites", "chargingstations": "chargingStations", "availabilities": "availabilities"}


def load_seed(name: str) -> list[dict[str, Any]]:
    return json.loads(resources.files("evpipeline.seed_data.evroam").joinpath(name).read_text())


@dataclass
class Record:
    body: dict[str, Any]
    modified: datetime
    soft_deleted_at: datetime | None = None


@dataclass
class Subscription:
    endpoint: str
    include_sites: bool
    include_stations: bool
    include_availability: bool
    validated: bool = False
    deliveries: list[dict[str, Any]] = field(default_factory=list)


class EVRoamSimulator(SimServer):
    """The EVRoam Consumer API with a changing fleet and push notifications."""

    name = "evroam"

    def __init__(
        self,
        *,
        scale: float = 1.0,
        subscription_key: str = "sim-evroam-key",
        page_size: int = 100,
        file_lifetime: float = 3600.0,
        push_interval: float = 300.0,
        hard_delete_after: float = 6 * 3600.0,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.subscription_key = subscription_key
        self.page_size = page_size
        self.file_lifetime = file_lifetime
        self.push_interval = push_interval
        self.hard_delete_after = hard_delete_after
        self._signing_key = hashlib.sha256(f"evroam-blob:{seed}".encode()).digest()
        self.sites: dict[str, Record] = {}
        self.stations: dict[str, Record] = {}
        self.availabilities: dict[str, Record] = {}
        self.files: dict[str, tuple[bytes, datetime]] = {}
        self.subscription: Subscription | None = None
        self._since_push = 0.0
        self._last_push_at: datetime | None = None
        self._build_fleet(scale, random.Random(f"evroam:{seed}:fleet"))

        self.route("GET", f"{API}/Site", self._list_sites)
        self.route("GET", f"{API}/ChargingStation", self._list_stations)
        self.route("POST", f"{API}/Notification", self._subscribe)
        self.route("GET", r"/notifications/(?P<name>[\w.\-]+)", self._download)
        self.route("POST", r"/_sim/push", self._admin_push)

    # -- fleet -------------------------------------------------------------------------------
    def _build_fleet(self, scale: float, rng: random.Random) -> None:
        start = self.clock.now() - timedelta(days=30)
        for site in load_seed("sites.json"):
            self.sites[site["siteId"]] = Record(site, start)
        for station in load_seed("chargingStations.json"):
            self.stations[station["chargingStationId"]] = Record(station, start)
        for availability in load_seed("availabilities.json"):
            self.availabilities[availability["chargingStationId"]] = Record(availability, start)
        for _ in range(int(round(120 * scale))):
            site = self._new_site(rng)
            self.sites[site["siteId"]] = Record(site, start)
            for _ in range(weighted(rng, [(1, 40), (2, 35), (3, 15), (4, 10)])):
                station = self._new_station(rng, site)
                self.stations[station["chargingStationId"]] = Record(station, start)

    def _new_site(self, rng: random.Random) -> dict[str, Any]:
        place = random_place(rng, "NZL", spread_km=25)
        operator = rng.choice(OPERATORS)
        return {
            "siteId": det_uuid(rng),
            "name": f"{place.city} {place.street}" + rng.choice(["", "", " Carpark", " HPC", " Mall"]),
            "operator": operator,
            "address": f"{place.house_number} {place.street}, {place.city} {place.postal_code}, New Zealand",
            "is24Hours": rng.random() < 0.8,
            "carParkCount": rng.randint(1, 12),
            "hasCarparkCost": rng.random() < 0.2,
            "maxTimeLimit": rng.choice(["Unlimited", "Unlimited", "60 minutes", "2 hours"]),
            "hasTouristAttraction": rng.random() < 0.15,
            "accessLocations": [{"lat": place.latitude, "lon": place.longitude}],
            "providerDeleted": False,
        }

    def _new_station(self, rng: random.Random, site: dict[str, Any]) -> dict[str, Any]:
        current = "DC" if rng.random() < 0.55 else "AC"
        loc = site["accessLocations"][0]
        station = {
            "chargingStationId": det_uuid(rng),
            "siteId": site["siteId"],
            "operator": site["operator"],
            "owner": site["operator"],
            "assetId": det_uuid(rng),
            "current": current,
            "hasChargingCost": rng.random() < 0.85,
            "kwRated": rng.choice(KW_BY_CURRENT[current]),
            "dateFirstOperational": (self.clock.now() - timedelta(days=rng.randint(30, 2500))).strftime("%Y-%m-%dT00:00:00Z"),
            "nextPlannedOutage": None,
            "installationStatus": weighted(rng, [("Commissioned", 92), ("Planned", 3), ("Under Construction", 3), ("Decommissioned", 2)]),
            "floorLevel": rng.choice(["Ground", "Ground", "Ground", "1", "UG"]),
            "manufacturer": rng.choice(["ABB", "Tritium", "Kempower", "Delta", "Schneider", None]),
            "model": rng.choice(["MD_TERRA_53", "RT50", "T-Series", None]),
            "images": [],
            "connectors": [
                {
                    "connectorId": det_uuid(rng),
                    "connectorType": weighted(rng, DC_CONNECTORS if current == "DC" else AC_CONNECTORS),
                    "operationStatus": weighted(rng, [("Operative", 85), ("Inoperative", 5), ("Unknown", 10)]),
                    "providerDeleted": False,
                }
                for _ in range(weighted(rng, [(1, 35), (2, 55), (3, 10)]))
            ],
            "providerDeleted": False,
            "location": {"lat": round(loc["lat"] + rng.uniform(-2e-4, 2e-4), 6), "lon": round(loc["lon"] + rng.uniform(-2e-4, 2e-4), 6)},
        }
        if site["operator"] in ("ChargeNet NZ", "Z Energy"):
            # Some providers send live availability inside the station record.
            station.update(self._availability_fields(rng, station))
        return station

    def _availability_fields(self, rng: random.Random, station: dict[str, Any]) -> dict[str, Any]:
        status = weighted(rng, AVAILABILITY)
        return {
            "availabilityStatus": status,
            "kwAvailable": station["kwRated"] if status == "Available" else 0,
            "availabilityTime": iso_z(self.clock.now()),
        }

    # -- change process ----------------------------------------------------------------------
    def evolve(self, seconds: float) -> None:
        """Per simulated minute: statuses flip, connectors change, stations appear and get deleted."""
        rng, now = self.rng, self.clock.now()
        minutes = max(1, int(seconds // 60))
        live = [r for r in self.stations.values() if not r.body["providerDeleted"]]
        for _ in range(minutes):
            for record in rng.sample(live, k=min(len(live), max(1, len(live) // 40))):
                body = record.body
                if "availabilityStatus" in body:
                    body.update(self._availability_fields(rng, body))
                    self._touch_availability(body, now)
                elif body["operator"] == "Vector" or rng.random() < 0.3:
                    self._touch_availability({**body, **self._availability_fields(rng, body)}, now, standalone=True)
                    continue
                connector = rng.choice(body["connectors"])
                connector["operationStatus"] = weighted(rng, [("Operative", 80), ("Inoperative", 12), ("Unknown", 8)])
                record.modified = now
            if rng.random() < 0.15:
                self._add_station(rng, now)
            if rng.random() < 0.08 and live:
                self._soft_delete(rng.choice(live), now)
            if rng.random() < 0.05:
                site = self.sites[rng.choice(list(self.sites))]
                site.body["carParkCount"] = max(1, site.body["carParkCount"] + rng.choice([-1, 1]))
                site.modified = now
        self._hard_delete(now)
        self._since_push += seconds
        if self._since_push >= self.push_interval:
            self._since_push = 0.0
            self.publish()

    def _touch_availability(self, station: dict[str, Any], now: datetime, standalone: bool = False) -> None:
        record = {
            "operator": station["operator"],
            "chargingStationId": station["chargingStationId"],
            "availabilityStatus": station["availabilityStatus"],
            "kwAvailable": station["kwAvailable"],
            "availabilityTime": station["availabilityTime"],
        }
        self.availabilities[station["chargingStationId"]] = Record(record, now)
        if not standalone:
            self.stations[station["chargingStationId"]].modified = now

    def _add_station(self, rng: random.Random, now: datetime) -> None:
        site = rng.choice([s.body for s in self.sites.values() if not s.body["providerDeleted"]])
        station = self._new_station(rng, site)
        self.stations[station["chargingStationId"]] = Record(station, now)

    def _soft_delete(self, record: Record, now: datetime) -> None:
        record.body["providerDeleted"] = True
        for connector in record.body["connectors"]:
            connector["providerDeleted"] = True
        record.modified = record.soft_deleted_at = now

    def soft_delete_station(self, station_id: str) -> None:
        with self.lock:
            self._soft_delete(self.stations[station_id], self.clock.now())

    def soft_delete_site(self, site_id: str) -> None:
        with self.lock:
            record = self.sites[site_id]
            record.body["providerDeleted"] = True
            record.modified = record.soft_deleted_at = self.clock.now()

    def soft_delete_connector(self, station_id: str, connector_id: str) -> None:
        with self.lock:
            record = self.stations[station_id]
            for connector in record.body["connectors"]:
                if connector["connectorId"] == connector_id:
                    connector["providerDeleted"] = True
            record.modified = self.clock.now()

    def hard_delete_station(self, station_id: str) -> None:
        """Remove a record outright (NZTA only does this after a soft delete, but a consumer must cope)."""
        with self.lock:
            self.stations.pop(station_id, None)
            self.availabilities.pop(station_id, None)

    def set_connector_status(self, station_id: str, connector_id: str, status: str) -> None:
        with self.lock:
            record = self.stations[station_id]
            for connector in record.body["connectors"]:
                if connector["connectorId"] == connector_id:
                    connector["operationStatus"] = status
            record.modified = self.clock.now()

    def _hard_delete(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.hard_delete_after)
        for table in (self.sites, self.stations):
            for key in [k for k, r in table.items() if r.soft_deleted_at and r.soft_deleted_at <= horizon]:
                del table[key]

    TOMTOM_TYPES = {
        "Type 2 Socketed": "IEC62196Type2Outlet", "Type 2 Tethered": "IEC62196Type2CableAttached",
        "Type 1 Tethered": "IEC62196Type1", "Type 2 CCS": "IEC62196Type2CCS", "CHAdeMO": "Chademo",
    }

    def charging_parks(self) -> list[ChargingPark]:
        """Every live site with its stations' connectors, as TomTom would list it."""
        with self.lock:
            by_site: dict[str, list[tuple[str, float]]] = {}
            for record in self.stations.values():
                body = record.body
                if body["providerDeleted"]:
                    continue
                for connector in body["connectors"]:
                    kind = self.TOMTOM_TYPES.get(connector["connectorType"])
                    if kind:
                        by_site.setdefault(body["siteId"], []).append((kind, float(body["kwRated"] or 0)))
            parks = []
            for site_id, record in self.sites.items():
                site = record.body
                location = (site.get("accessLocations") or [{}])[0]
                if site["providerDeleted"] or site_id not in by_site or "lat" not in location:
                    continue
                counts: dict[tuple[str, float], int] = {}
                for pair in by_site[site_id]:
                    counts[pair] = counts.get(pair, 0) + 1
                parks.append(ChargingPark(site_id, site["name"], location["lat"], location["lon"], "NZL",
                                          tuple((k, kw, n) for (k, kw), n in sorted(counts.items()))))
            return parks

    # -- API ---------------------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        key = request.header("Ocp-Apim-Subscription-Key") or request.arg("subscription-key")
        if not key:
            raise HttpReply(Response.json({"statusCode": 401, "message": "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."}, 401))
        if self.faults.bad_auth or not hmac.compare_digest(key, self.subscription_key):
            raise HttpReply(Response.json({"statusCode": 401, "message": "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."}, 401))

    def _since(self, request: Request) -> datetime | None:
        value = request.header("If-Modified-Since")
        if not value:
            return None
        try:
            since = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise HttpReply(Response.json({"statusCode": 400, "message": "Invalid If-Modified-Since header."}, 400)) from None
        return since if since.tzinfo else since.replace(tzinfo=UTC)

    def _page(self, request: Request, table: dict[str, Record], key: str) -> Response:
        self._authorize(request)
        since = self._since(request)
        try:
            page = int(request.arg("resultPage", "1") or 1)
        except ValueError:
            return Response.json({"statusCode": 400, "message": "resultPage must be an integer."}, 400)
        if page < 1:
            return Response.json({"statusCode": 400, "message": "resultPage must be 1 or more."}, 400)
        with self.lock:
            # HTTP-dates have whole seconds: anything changed during the named second is included.
            matching = [r.body for r in table.values() if since is None or r.modified >= since]
            chunk = matching[(page - 1) * self.page_size : page * self.page_size]
            payload = json.dumps({key: chunk, "hasMoreResults": page * self.page_size < len(matching)}, separators=(",", ":"))
        return Response.json(payload.encode())

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

    def _handshake(self, subscription: Subscription) -> None:
        code = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        event = [{
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "topic": "/subscriptions/sim/resourceGroups/evroam/providers/Microsoft.EventGrid/topics/evroam-consumer",
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": iso_z(self.clock.now()),
            "data": {"validationCode": code, "validationUrl": f"{self.url}/_sim/validate?code={code}"},
            "dataVersion": "2",
            "metadataVersion": "1",
        }]
        status, body = self._post(subscription.endpoint, event)
        try:
            subscription.validated = status == 200 and json.loads(body).get("validationResponse") == code
        except ValueError:
            subscription.validated = False

    def wait_validated(self, timeout: float = 5.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.subscription and self.subscription.validated:
                return True
            time.sleep(0.02)
        return False

    def _post(self, url: str, payload: Any) -> tuple[int, bytes]:
        data = json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json", "aeg-event-type": "Notification"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    # -- push --------------------------------------------------------------------------------
    def _sign(self, name: str, expiry: str) -> str:
        return hmac.new(self._signing_key, f"{name}\n{expiry}".encode(), hashlib.sha256).hexdigest()[:32]

    def publish(self) -> list[dict[str, Any]]:
        """Write a file of each record type changed since the last push and notify the webhook."""
        if self.subscription is None or not self.subscription.validated:
            return []
        now = self.clock.now()
        since = self._last_push_at or (now - timedelta(seconds=self.push_interval))
        self._last_push_at = now
        wanted = [
            ("sites", self.subscription.include_sites, self.sites, "EVRoam.SiteChanges"),
            ("chargingstations", self.subscription.include_stations, self.stations, "EVRoam.ChargingStationChanges"),
            ("availabilities", self.subscription.include_availability, self.availabilities, "EVRoam.AvailabilityChanges"),
        ]
        events = []
        with self.lock:
            for kind, enabled, table, event_type in wanted:
                changed = [copy.deepcopy(r.body) for r in table.values() if r.modified > since]
                if not enabled or not changed:
                    continue
                events.append(self._stage_file(kind, changed, now, event_type))
        if events:
            status, _ = self._post(self.subscription.endpoint, events)
            self.subscription.deliveries.append({"status": status, "events": events})
        return events

    def _stage_file(self, kind: str, records: list[dict[str, Any]], now: datetime, event_type: str) -> dict[str, Any]:
        name = f"{kind}-{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z.json"
        expiry = now + timedelta(seconds=self.file_lifetime)
        expiry_text = iso_z(expiry)
        self.files[name] = (json.dumps(records).encode(), expiry)
        url = f"{self.url}/notifications/{name}?sv=2021-08-06&se={expiry_text}&sr=b&sp=r&sig={self._sign(name, expiry_text)}"
        return {
            "id": det_uuid(self.rng),
            "topic": "/subscriptions/sim/resourceGroups/evroam/providers/Microsoft.EventGrid/topics/evroam-consumer",
            "subject": f"/blobServices/default/containers/notifications/blobs/{name}",
            "eventType": event_type,
            "eventTime": iso_z(now),
            "data": {"url": url},
            "dataVersion": "1.0",
            "metadataVersion": "1",
        }

    def push_records(self, kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Deliver a hand-made notification (tests): stage the file and POST its event."""
        if self.subscription is None:
            raise RuntimeError("no webhook subscription")
        event_type = {"sites": "EVRoam.SiteChanges", "chargingstations": "EVRoam.ChargingStationChanges", "availabilities": "EVRoam.AvailabilityChanges"}[kind]
        with self.lock:
            event = self._stage_file(kind, records, self.clock.now(), event_type)
        status, _ = self._post(self.subscription.endpoint, [event])
        self.subscription.deliveries.append({"status": status, "events": [event]})
        return event

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

    def expire_files(self) -> None:
        """Delete every staged file (as storage does after their lifetime)."""
        with self.lock:
            self.files.clear()

    def _blob_error(self, status: int, code: str, message: str) -> Response:
        xml = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
        return Response.text(xml, status, "application/xml")

    def _admin_push(self, request: Request) -> Response:
        return Response.json({"events": self.publish()})
