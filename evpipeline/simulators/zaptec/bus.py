"""Zaptec's Service Bus topic: the subscription Zaptec publishes state changes to, and Azure Service
Bus's REST receive protocol over it (peek-lock, complete, unlock, receive-and-delete) with SAS
authentication. Subscriptions unused for `subscription_idle_seconds` disappear (404)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from evpipeline.simulators.toolkit import HttpReply, Request, Response, SimServer, det_uuid, http_date


@dataclass
class BusMessage:
    message_id: str
    sequence: int
    body: bytes
    enqueued: datetime
    delivery_count: int = 0
    lock_token: str | None = None
    locked_until: datetime | None = None


@dataclass
class BusSubscription:
    topic: str
    name: str
    key_name: str
    key: str
    last_activity: datetime
    queue: deque[BusMessage] = field(default_factory=deque)
    locked: dict[str, BusMessage] = field(default_factory=dict)

    def descriptor(self, host: str, port: int) -> dict[str, Any]:
        # Real: Host "zapcloud-messaging.servicebus.windows.net", Port 5671 (AMQPS), UseSSL true.
        return {
            "Type": 0,
            "Host": host,
            "Port": port,
            "UseSSL": False,
            "Username": self.key_name,
            "Password": self.key,
            "Topic": self.topic,
            "Subscription": self.name,
        }


class ZaptecBus(SimServer):
    """The message subscription: what the fleet publishes to, and the receive endpoints."""

    user_group_id: str
    subscription_idle_seconds: float
    lock_seconds: float
    subscription: BusSubscription | None  # the live one; None once Service Bus removed it
    _registered: BusSubscription | None  # what the connection-details endpoint hands out
    subscriptions_created: int
    messages_published: int
    messages_lost: int
    _sequence: int
    _bus_changed: threading.Condition
    _key_rng: random.Random

    def _add_bus_routes(self) -> None:
        bus = r"/(?P<topic>[\w\-]+)/subscriptions/(?P<sub>[\w\-]+)/messages"
        self.route("POST", f"{bus}/head", self._peek_lock)
        self.route("DELETE", f"{bus}/head", self._receive_and_delete)
        self.route("DELETE", f"{bus}/(?P<mid>[\\w\\-]+)/(?P<lock>[\\w\\-]+)", self._complete)
        self.route("PUT", f"{bus}/(?P<mid>[\\w\\-]+)/(?P<lock>[\\w\\-]+)", self._unlock)

    def _create_subscription(self) -> BusSubscription:
        self.subscriptions_created += 1
        rng = self._key_rng
        self.subscription = self._registered = BusSubscription(
            topic=f"zapcloud-{self.user_group_id[:8]}",
            name=f"integration-{self.subscriptions_created}",
            key_name=f"listen-{rng.getrandbits(32):08x}",
            key=base64.b64encode(rng.getrandbits(256).to_bytes(32, "big")).decode(),
            last_activity=self.clock.now(),
        )
        return self.subscription

    def remove_subscription(self) -> None:
        """Service Bus deleted the subscription (auto-delete on idle); its messages are gone."""
        with self.lock:
            if self.subscription is not None:
                self.messages_lost += len(self.subscription.queue) + len(self.subscription.locked)
            self.subscription = None

    def _expire_idle_subscription(self, now: datetime) -> None:
        sub = self.subscription
        if sub is not None and (now - sub.last_activity).total_seconds() > self.subscription_idle_seconds:
            self.remove_subscription()

    def publish_raw(self, body: dict[str, Any] | bytes) -> str | None:
        """Put one message on the topic (evolve uses it; tests send hand-made ones). Returns its MessageId."""
        with self.lock:
            self.messages_published += 1
            sub = self.subscription
            if sub is None:
                self.messages_lost += 1
                return None
            self._sequence += 1
            message = BusMessage(
                message_id=det_uuid(self._key_rng),
                sequence=self._sequence,
                body=body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode(),
                enqueued=self.clock.now(),
            )
            sub.queue.append(message)
        with self._bus_changed:
            self._bus_changed.notify_all()
        return message.message_id

    def pending_messages(self) -> int:
        with self.lock:
            return (
                0
                if self.subscription is None
                else len(self.subscription.queue) + len(self.subscription.locked)
            )

    def _bus_error(self, status: int, detail: str) -> Response:
        xml = f"<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>"
        return Response.text(xml, status, "application/xml; charset=utf-8")

    def _bus_subscription(self, request: Request) -> BusSubscription:
        """The addressed subscription after checking the SAS token; 404 once it was removed."""
        with self.lock:
            self._expire_idle_subscription(self.clock.now())
            sub = self.subscription
            if sub is None or (request.params["topic"], request.params["sub"]) != (sub.topic, sub.name):
                entity = f"{request.params['topic']}/subscriptions/{request.params['sub']}"
                raise HttpReply(self._bus_error(404, f"The messaging entity '{entity}' could not be found."))
            self._check_sas(request, sub)
            sub.last_activity = self.clock.now()
            return sub

    def _check_sas(self, request: Request, sub: BusSubscription) -> None:
        header = request.header("Authorization") or ""
        if not header.startswith("SharedAccessSignature "):
            raise HttpReply(self._bus_error(401, "MalformedToken: no SharedAccessSignature."))
        parts = dict(p.split("=", 1) for p in header[len("SharedAccessSignature ") :].split("&") if "=" in p)
        resource, expiry, key_name = parts.get("sr", ""), parts.get("se", ""), parts.get("skn", "")
        expected = base64.b64encode(
            hmac.new(sub.key.encode(), f"{resource}\n{expiry}".encode(), hashlib.sha256).digest()
        ).decode()
        valid = (
            key_name == sub.key_name
            and hmac.compare_digest(unquote(parts.get("sig", "")), expected)
            and expiry.isdigit()
            and int(expiry) > time.time()  # SAS expiry is real time, not simulated
            and urlsplit(unquote_plus(resource)).path.strip("/").startswith(sub.topic)
        )
        if not valid:
            raise HttpReply(
                self._bus_error(401, "InvalidSignature: the token has an invalid signature or expired.")
            )

    def _release_expired_locks(self, sub: BusSubscription) -> None:
        now = self.clock.now()
        expired = [m for m in sub.locked.values() if m.locked_until is not None and m.locked_until <= now]
        for message in sorted(expired, key=lambda m: m.sequence, reverse=True):
            del sub.locked[message.message_id]
            message.lock_token = message.locked_until = None
            sub.queue.appendleft(message)  # back at the head, in order

    def _next_message(self, request: Request) -> tuple[BusSubscription, BusMessage] | None:
        wait = min(float(request.arg("timeout", "60") or 60), 60.0)
        deadline = time.monotonic() + wait
        while True:
            with self.lock:
                sub = self._bus_subscription(request)
                self._release_expired_locks(sub)
                if sub.queue:
                    return sub, sub.queue.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with self._bus_changed:
                self._bus_changed.wait(min(remaining, 0.25))

    def _message_response(self, sub: BusSubscription, message: BusMessage, status: int) -> Response:
        properties: dict[str, Any] = {
            "DeliveryCount": message.delivery_count,
            "EnqueuedTimeUtc": http_date(message.enqueued),
            "MessageId": message.message_id,
            "SequenceNumber": message.sequence,
            "State": "Active",
        }
        headers = {"Content-Type": "application/json; charset=utf-8"}  # real bodies: MC-NBFX binary
        if message.lock_token:  # peek-lock: where to complete or unlock it
            properties.update(
                LockToken=message.lock_token,
                LockedUntilUtc=http_date(message.locked_until or self.clock.now()),
            )
            headers["Location"] = (
                f"{self.url}/{sub.topic}/subscriptions/{sub.name}/messages/{message.message_id}/{message.lock_token}"
            )
        return Response(status, message.body, {**headers, "BrokerProperties": json.dumps(properties)})

    def _peek_lock(self, request: Request) -> Response:
        found = self._next_message(request)
        if found is None:
            return Response.empty(204)
        sub, message = found
        with self.lock:
            message.delivery_count += 1
            message.lock_token = det_uuid(self._key_rng)
            message.locked_until = self.clock.now() + timedelta(seconds=self.lock_seconds)
            sub.locked[message.message_id] = message
        return self._message_response(sub, message, 201)

    def _receive_and_delete(self, request: Request) -> Response:
        found = self._next_message(request)
        if found is None:
            return Response.empty(204)
        sub, message = found
        message.delivery_count += 1
        return self._message_response(sub, message, 200)

    def _locked(self, request: Request) -> tuple[BusSubscription, BusMessage]:
        sub = self._bus_subscription(request)
        self._release_expired_locks(sub)
        message = sub.locked.get(request.params["mid"])
        if message is None or message.lock_token != request.params["lock"]:
            raise HttpReply(
                self._bus_error(
                    404, "The lock supplied is invalid: it expired or the message was already removed."
                )
            )
        return sub, message

    def _complete(self, request: Request) -> Response:
        with self.lock:
            sub, message = self._locked(request)
            del sub.locked[message.message_id]
        return Response.empty(200)

    def _unlock(self, request: Request) -> Response:
        with self.lock:
            sub, message = self._locked(request)
            del sub.locked[message.message_id]
            message.lock_token = message.locked_until = None
            sub.queue.appendleft(message)
        return Response.empty(200)
