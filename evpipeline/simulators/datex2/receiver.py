"""The delivery endpoints: `POST {base}/static` and `POST {base}/status`.

A delivery is judged in this order, and every error found is returned:
auth (401) -> size (413) -> media type (415) -> UTF-8 JSON (400) -> 1. the profile's JSON Schema
(`schemas`) -> 2. the receiver's reading of it (`rules`, S*/T*) -> 3. physics (`rules`, P*).
Only a delivery with no error changes what the receiver holds; every delivery is recorded.
"""

from __future__ import annotations

import json
import time
from typing import Any

from evpipeline.simulators.datex2 import rules, schemas
from evpipeline.simulators.datex2.control import Datex2Control
from evpipeline.simulators.datex2.state import BASE, AcceptedStatic, Delivery
from evpipeline.simulators.toolkit import Request, Response, iso_z, retry_after

MAX_ERRORS = 500  # a systematic mistake in a large document is said this many times, then counted


GATE_TIMEOUT_SECONDS = 30.0  # a held delivery whose test died goes on by itself


class Refusal(Exception):  # control flow inside a delivery handler
    def __init__(self, http_status: int, errors: list[str], headers: dict[str, str] | None = None) -> None:
        super().__init__(errors[0] if errors else str(http_status))
        self.http_status, self.errors, self.headers = http_status, errors, headers or {}


def capped(errors: list[str]) -> list[str]:
    if len(errors) <= MAX_ERRORS:
        return errors
    return [*errors[:MAX_ERRORS], f"$: ... and {len(errors) - MAX_ERRORS} more errors"]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_body(body: bytes) -> Any:
    """The body as JSON (RFC 8259: UTF-8, no byte order mark, no NaN/Infinity), or a 400 saying why."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(400, [f"$: the body is not UTF-8 ({exc.reason} at byte {exc.start})"]) from None
    if text.startswith("\ufeff"):
        raise Refusal(400, ["$: the body starts with a byte order mark; send UTF-8 JSON without one"])
    if not text.strip():
        raise Refusal(400, ["$: the body is empty; a JSON document is expected"])
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise Refusal(
            400, [f"$: malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
        ) from None
    except ValueError as exc:
        raise Refusal(400, [f"$: malformed JSON: {exc}"]) from None
    except RecursionError:
        raise Refusal(400, ["$: malformed JSON: nested too deeply"]) from None


class Datex2Receiver(Datex2Control):
    """Handlers; the routes are wired in `Datex2Simulator.__init__`."""

    # -- how this receiver answers what the toolkit decides -----------------------------------
    def _kind_of(self, request: Request) -> str:
        return request.path.removeprefix(f"{BASE}/").strip("/") or "unknown"

    def _injected(self, request: Request, status: int, headers: dict[str, str]) -> Response:
        errors = [f"$: injected fault: HTTP {status}"]
        if request.path.startswith(f"{BASE}/"):
            kind = self._kind_of(request)
            record = Delivery(
                self._next_id(kind),
                kind,
                None,
                status,
                False,
                errors,
                self.clock.now(),
                time.monotonic(),
                len(request.body),
            )
            with self.lock:
                self._deliveries.append(record)
        return Response.json({"accepted": False, "errors": errors}, status, headers)

    def too_many_requests(self, request: Request, retry_after_seconds: float) -> Response:
        return self._injected(request, 429, retry_after(retry_after_seconds))

    def server_error(self, request: Request, status: int) -> Response:
        headers = retry_after(self.faults.retry_after) if status == 503 else {}
        return self._injected(request, status, headers)

    def not_found(self, request: Request) -> Response:
        return Response.json(
            {"accepted": False, "errors": [f"$: no such endpoint: {request.method} {request.path}"]}, 404
        )

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return Response.json(
            {"accepted": False, "errors": [f"$: {request.method} is not allowed here"]},
            405,
            {"Allow": ", ".join(sorted(set(allowed)))},
        )

    # -- delivery endpoints --------------------------------------------------------------------
    def _post_static(self, request: Request) -> Response:
        return self._deliver(request, "static")

    def _post_status(self, request: Request) -> Response:
        return self._deliver(request, "status")

    def _deliver(self, request: Request, kind: str) -> Response:
        record = Delivery(
            self._next_id(kind),
            kind,
            None,
            0,
            False,
            [],
            self.clock.now(),
            time.monotonic(),
            len(request.body),
        )
        latency = self.delivery_latency
        if latency:
            time.sleep(latency)
        with self.lock:
            gate = self.gates.pop(kind, None)
        if gate is not None:
            gate.arrived.set()
            gate.release.wait(GATE_TIMEOUT_SECONDS)
        headers: dict[str, str] = {}
        try:
            self._admit(request)
            document = parse_body(request.body)
            record.document = document
            if kind == "static":
                self._receive_static(document, record)
            else:
                self._receive_status(document, record)
            record.http_status, record.accepted = 200, True
            body: dict[str, Any] = {"accepted": True, "delivery": record.id}
        except Refusal as refusal:
            record.http_status, record.errors, headers = (
                refusal.http_status,
                capped(refusal.errors),
                refusal.headers,
            )
            body = {"accepted": False, "errors": record.errors, "delivery": record.id}
        with self.lock:
            self._deliveries.append(record)
        return Response.json(body, record.http_status, headers)

    def _admit(self, request: Request) -> None:
        """Auth (401), size (413) and media type (415), before the body is parsed."""
        scheme, _, presented = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.credential_ok(presented.strip(), self.token):
            # The answer never repeats what was presented.
            raise Refusal(
                401,
                ["Authorization: a valid bearer token is required (Authorization: Bearer <token>)"],
                {"WWW-Authenticate": 'Bearer realm="datex2"'},
            )
        if len(request.body) > self.max_body_bytes:
            raise Refusal(
                413,
                [
                    f"$: the body has {len(request.body)} bytes; this receiver takes at most "
                    f"{self.max_body_bytes}"
                ],
            )
        media_type, *params = [p.strip().lower() for p in (request.header("Content-Type") or "").split(";")]
        charset = next((p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")), "utf-8")
        if media_type != "application/json" or charset != "utf-8":
            said = request.header("Content-Type") or "no Content-Type"
            raise Refusal(415, [f"Content-Type: {said}; this receiver takes application/json (UTF-8)"])

    def _receive_static(self, document: Any, record: Delivery) -> None:
        # Stateless checks outside the lock (a large document takes a while); only the swap is locked.
        schema = schemas.schema_errors("static", document)
        reading = rules.check_static(document)
        record.counts = reading.index.counts()
        errors = rules.merge(schema, reading.meaning, reading.physics)
        if errors:
            raise Refusal(400, errors)
        with self.lock:
            self.static = AcceptedStatic(record.id, record.received_at, reading.index, document)
            # A static delivery replaces the previous one: statuses of points it no longer has go.
            self.points = {p: s for p, s in self.points.items() if reading.index.find(rules.POINT, p)}
            self.station_rates = {
                s: r for s, r in self.station_rates.items() if reading.index.find(rules.STATION, s)
            }

    def _receive_status(self, document: Any, record: Delivery) -> None:
        envelope: list[str] = []
        if not isinstance(document, dict):
            raise Refusal(400, ['$: the body is a JSON object {"messageContainer": {...}}'])
        if "messageContainer" not in document:
            envelope.append("$.messageContainer: required property is missing")
        envelope += [
            f'$.{key}: unexpected member; the body is {{"messageContainer": {{...}}}}'
            for key in document
            if key != "messageContainer"
        ]
        container = document.get("messageContainer")
        schema = (
            schemas.schema_errors("status", container, "$.messageContainer")
            if "messageContainer" in document
            else []
        )
        with self.lock:  # checked against, and applied to, the same state
            held = {p: s.get("lastUpdated") for p, s in self.points.items()}
            reading = rules.check_status(container, self.static.index if self.static else None, held)
            record.protocol = reading.protocol
            record.counts = dict(reading.counts)
            errors = rules.merge(envelope + schema, reading.errors)
            if errors:
                raise Refusal(400, errors)
            self._apply_status(reading, record)

    def _apply_status(self, reading: rules.StatusReading, record: Delivery) -> None:
        snapshot = reading.protocol == "snapshotPush"  # complete state: replaces every status held
        points = {} if snapshot else dict(self.points)
        station_rates = {} if snapshot else {s: dict(r) for s, r in self.station_rates.items()}
        at = iso_z(record.received_at, millis=True)
        for update in reading.points:
            held = points.get(update.id)
            # A delta names a point's new status; ad-hoc price overrides it does not repeat stay.
            rates = {**(held["energyRateUpdates"] if held else {}), **update.rate_updates}
            points[update.id] = {
                "idG": update.id,
                "versionG": update.version,
                "station": update.station,
                "site": update.site,
                "status": update.status,
                "lastUpdated": update.last_updated,
                "energyRateUpdates": rates,
                "delivery": record.id,
                "received_at": at,
            }
        for station, rates in reading.station_rates.items():
            station_rates.setdefault(station, {}).update(rates)
        self.points, self.station_rates = points, station_rates
