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
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evpipeline.inbox import Inbox

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
KINDS = ("availabilities", "chargingstations", "sites")
# Pushed changes flow into the canonical model in the same run, so the NDW status push (a sensor on
# mart/evses) sees them within its minute.


def event_kind(event: dict[str, Any]) -> str | None:
    """Which records a notification's file holds, from its URL (or, in older deliveries, its subject)."""
    url = str((event.get("data") or {}).get("url") or "").lower()
    subject = str(event.get("subject") or "").lower().rsplit("/", 1)[-1]
    for kind in KINDS:
        if kind in url.split("?")[0] or subject.startswith(kind):
            return kind
    return None


def create_webhook_app(inbox: Inbox, key: str) -> Starlette:
    """The ASGI app NZTA's Event Grid delivers to: POST /api/evroam_listener?code=<key>."""

    async def listener(request: Request) -> JSONResponse:
        presented = request.query_params.get("code") or request.headers.get("x-functions-key") or ""
        if not key or not hmac.compare_digest(presented.encode(), key.encode()):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            events = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if isinstance(events, dict):
            events = [events]
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return JSONResponse({"error": "expected an array of Event Grid events"}, status_code=400)
        for event in events:
            if event.get("eventType") == VALIDATION_EVENT:
                code = (event.get("data") or {}).get("validationCode")
                return JSONResponse({"validationResponse": code})
        stored = 0
        for event in events:
            kind = event_kind(event)
            if kind is None or not event.get("id"):
                continue
            stored += inbox.put("evroam", kind, event, dedupe_key=str(event["id"]))
        return JSONResponse({"stored": stored})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/api/evroam_listener", listener, methods=["POST"]), Route("/health", health)])
