"""EVRoam push: the webhook receiver NZTA's Event Grid delivers to.

The receiver answers Azure Event Grid's validation handshake and stores each notification in
the durable inbox (it never touches DuckDB, which has a single writer). The real-time lane
(`live.py`) reads on from its cursor, downloads each notification's file while it still exists
and merges it; a file that expired falls back to a delta pull, so nothing is lost.
"""

import hmac
import json
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evpipeline.inbox import Inbox

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
KINDS = ("availabilities", "chargingstations", "sites")
# Event Grid delivers at most 1 MB and 5,000 events per request (its batch limits): anything larger
# is not Event Grid, and reading or storing it must not cost us more than a real delivery.
MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 5000
# A real notification nests 3 levels (array, event, data); anything near Python's recursion limit
# (~1,000) was accepted, then broke every reader (json.dumps here: a 500; json.loads in the lane).
MAX_DEPTH = 64


def deeper_than(value: Any, limit: int) -> bool:
    """Does `value` nest lists/objects more than `limit` levels deep? (iterative: never recurses)"""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def event_kind(event: dict[str, Any]) -> str | None:
    """Which records a notification's file holds, from its URL (or, in older deliveries, its subject)."""
    data = event.get("data")
    url = str((data if isinstance(data, dict) else {}).get("url") or "").lower()
    subject = str(event.get("subject") or "").lower().rsplit("/", 1)[-1]
    for kind in KINDS:
        if kind in url.split("?")[0] or subject.startswith(kind):
            return kind
    return None


class Refused(Exception):  # an answer to send, not a bug
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def _read_body(request: Request) -> bytes:
    """The body, or Refused(413) as soon as it is larger than a real delivery can be."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(
            413, f"body of {int(declared):,} bytes; Event Grid deliveries are at most {MAX_BODY_BYTES:,}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(
                413, f"body larger than {MAX_BODY_BYTES:,} bytes; Event Grid deliveries are at most that"
            )
    return bytes(body)


def _parse(body: bytes) -> list[dict[str, Any]]:
    """Event Grid events from a body, or Refused(400/413) saying what is wrong (runs off the event loop)."""
    try:
        events = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, "body is not JSON (or nests too deeply)") from None
    if deeper_than(events, MAX_DEPTH):
        raise Refused(400, f"body nests more than {MAX_DEPTH} levels deep; Event Grid events nest 3")
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list):
        raise Refused(400, "expected an array of Event Grid events")
    if len(events) > MAX_EVENTS:
        raise Refused(413, f"{len(events):,} events in one delivery; Event Grid sends at most {MAX_EVENTS:,}")
    for n, event in enumerate(events):
        if not isinstance(event, dict):
            raise Refused(400, f"event {n} is not an object")
        if not isinstance(event.get("data", {}), dict):
            raise Refused(400, f"event {n}: `data` is not an object")
        for name in ("id", "eventType", "subject", "eventTime"):
            if name in event and not isinstance(event[name], str):
                raise Refused(400, f"event {n}: `{name}` is not a string")
    return events


def create_webhook_app(inbox: Inbox, key: str) -> Starlette:
    """The ASGI app NZTA's Event Grid delivers to: POST /api/evroam_listener?code=<key>."""

    def store(events: list[dict[str, Any]]) -> int:
        items = [
            (kind, str(e["id"]), e) for e in events if (kind := event_kind(e)) is not None and e.get("id")
        ]
        return inbox.put_many("evroam", items) if items else 0

    async def listener(request: Request) -> JSONResponse:
        presented = request.query_params.get("code") or request.headers.get("x-functions-key") or ""
        if not key or not hmac.compare_digest(presented.encode(), key.encode()):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            events = await run_in_threadpool(_parse, await _read_body(request))
        except Refused as refused:
            return JSONResponse({"error": refused.message}, status_code=refused.status)
        for event in events:
            if event.get("eventType") == VALIDATION_EVENT:
                return JSONResponse({"validationResponse": event.get("data", {}).get("validationCode")})
        # SQLite work happens in a worker thread: the event loop keeps answering (e.g. /health).
        return JSONResponse({"stored": await run_in_threadpool(store, events)})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/api/evroam_listener", listener, methods=["POST"]), Route("/health", health)]
    )
