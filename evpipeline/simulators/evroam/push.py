"""EVRoam push: one webhook subscription per key, Azure Event Grid's validation handshake, then
events whose `data.url` points at a JSON file of the changed records, signed and expiring."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from evpipeline.simulators.evroam.fleet import EVRoamFleet
from evpipeline.simulators.toolkit import det_uuid, iso_z

TOPIC = "/subscriptions/sim/resourceGroups/evroam/providers/Microsoft.EventGrid/topics/evroam-consumer"
EVENT_TYPES = {
    "sites": "EVRoam.SiteChanges",
    "chargingstations": "EVRoam.ChargingStationChanges",
    "availabilities": "EVRoam.AvailabilityChanges",
}


@dataclass
class Subscription:
    endpoint: str
    include_sites: bool
    include_stations: bool
    include_availability: bool
    validated: bool = False
    deliveries: list[dict[str, Any]] = field(default_factory=list)


class EVRoamPush(EVRoamFleet):
    """Publishes the fleet's changes to the subscribed webhook every `push_interval` seconds."""

    file_lifetime: float
    push_interval: float
    files: dict[str, tuple[bytes, datetime]]
    subscription: Subscription | None
    _signing_key: bytes
    _since_push: float
    _last_push_at: datetime | None

    def evolve(self, seconds: float) -> None:
        super().evolve(seconds)
        self._since_push += seconds
        if self._since_push >= self.push_interval:
            self._since_push = 0.0
            self.publish()

    def _handshake(self, subscription: Subscription) -> None:
        code = det_uuid(self.rng)
        event = [
            {
                "id": det_uuid(self.rng),
                "topic": TOPIC,
                "subject": "",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": iso_z(self.clock.now()),
                "data": {"validationCode": code, "validationUrl": f"{self.url}/_sim/validate?code={code}"},
                "dataVersion": "2",
                "metadataVersion": "1",
            }
        ]
        status, body = self._post(subscription.endpoint, event)
        try:
            subscription.validated = status == 200 and json.loads(body).get("validationResponse") == code
        except ValueError:
            subscription.validated = False

    def _post(self, url: str, payload: Any) -> tuple[int, bytes]:
        data = json.dumps(payload).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "aeg-event-type": "Notification"},
        )
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
            ("sites", self.subscription.include_sites, self.sites),
            ("chargingstations", self.subscription.include_stations, self.stations),
            ("availabilities", self.subscription.include_availability, self.availabilities),
        ]
        events = []
        with self.lock:
            for kind, enabled, table in wanted:
                changed = [copy.deepcopy(r.body) for r in table.values() if r.modified > since]
                if not enabled or not changed:
                    continue
                events.append(self._stage_file(kind, changed, now))
        if events:
            status, _ = self._post(self.subscription.endpoint, events)
            self.subscription.deliveries.append({"status": status, "events": events})
        return events

    def _stage_file(self, kind: str, records: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        """Store `records` as a signed, expiring file and return the event that points at it."""
        event_type = EVENT_TYPES[kind]  # first: an unknown kind stages nothing
        name = f"{kind}-{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z.json"
        expiry = now + timedelta(seconds=self.file_lifetime)
        expiry_text = iso_z(expiry)
        self.files[name] = (json.dumps(records).encode(), expiry)
        url = (
            f"{self.url}/notifications/{name}?sv=2021-08-06&se={expiry_text}&sr=b&sp=r"
            f"&sig={self._sign(name, expiry_text)}"
        )
        return {
            "id": det_uuid(self.rng),
            "topic": TOPIC,
            "subject": f"/blobServices/default/containers/notifications/blobs/{name}",
            "eventType": event_type,
            "eventTime": iso_z(now),
            "data": {"url": url},
            "dataVersion": "1.0",
            "metadataVersion": "1",
        }
