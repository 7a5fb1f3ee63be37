"""EVRoam push: the webhook receiver and the sensor that turns deliveries into merges.

The receiver answers Azure Event Grid's validation handshake and stores each notification in
the durable inbox (it never touches DuckDB, which has a single writer). Every 30 seconds the
sensor reads on from its cursor, downloads each notification's file while it still exists
(files live about an hour) and requests a `push` run that merges it. A file that expired or
vanished (403/404) requests a delta sync instead, so nothing is lost; a URL whose host is not
on the allow-list is refused and recorded, never fetched.
"""

import hmac
import json
from collections import defaultdict
from typing import Any

import dagster as dg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from evpipeline.http import HttpError
from evpipeline.inbox import Inbox
from evpipeline.model.keys import MART
from evpipeline.resources import PushInboxResource
from evpipeline.sources.evroam.assets import AVAILABILITY_KEY, EVROAM_ASSETS, SITES_KEY, STATION_OUTPUTS
from evpipeline.sources.evroam.client import EVRoamResource, PushFileGone, PushHostNotAllowed

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


def _push_request(kind: str, files: list[tuple[str, str]], first: int, last: int) -> dg.RunRequest:
    paths, times = [p for p, _ in files], [t for _, t in files]
    config = {"mode": "push", "push_files": paths, "push_event_times": times}
    if kind == "sites":
        return dg.RunRequest(
            run_key=f"evroam-push-sites-{first}-{last}",
            asset_selection=[SITES_KEY, *MART],
            run_config={"ops": {"evroam__sites": {"config": config}}},
            tags={"evroam/push": "sites"},
        )
    selection = [AVAILABILITY_KEY] if kind == "availabilities" else list(STATION_OUTPUTS.values())
    selection += MART
    return dg.RunRequest(
        run_key=f"evroam-push-{kind}-{first}-{last}",
        asset_selection=selection,
        run_config={"ops": {"evroam_stations": {"config": config}}},
        tags={"evroam/push": kind},
    )


@dg.sensor(
    name="evroam_push",
    minimum_interval_seconds=30,
    asset_selection=dg.AssetSelection.assets(*EVROAM_ASSETS, *MART),
    description="Downloads EVRoam push files before they expire and merges them; falls back to a delta sync.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def evroam_push_sensor(
    context: dg.SensorEvaluationContext, evroam: EVRoamResource, inbox: PushInboxResource
) -> dg.SensorResult:
    """Turn stored webhook notifications into push runs (or a delta sync when a file is gone)."""
    last_id = int(context.cursor or 0)
    messages = inbox.open().after("evroam", last_id)
    if not messages:
        return dg.SensorResult(skip_reason="no new EVRoam notifications")
    store, client = inbox.open(), evroam.client()
    files: dict[str, list[tuple[str, str]]] = defaultdict(list)
    fallback: list[str] = []
    for message in messages:
        event = message.payload
        url = str((event.get("data") or {}).get("url") or "")
        destination = inbox.files("evroam") / f"{message.id:09d}-{message.kind}.json"
        try:
            count = client.download_to(url, destination)
        except PushHostNotAllowed as exc:
            store.mark(message.id, "refused", str(exc))
            context.log.warning("notification %s refused: %s", message.id, exc)
            continue
        except (PushFileGone, HttpError) as exc:
            # Expired, deleted or unreachable: the records are still upstream; a delta sync fetches them.
            store.mark(message.id, "fallback", str(exc))
            context.log.warning("notification %s: %s; requesting a delta sync", message.id, exc)
            fallback.append(message.kind)
            continue
        store.mark(message.id, "downloaded", f"{count} records")
        files[message.kind].append((str(destination), str(event.get("eventTime") or message.received_at)))

    first, last = messages[0].id, messages[-1].id
    requests = [_push_request(kind, batch, first, last) for kind, batch in sorted(files.items())]
    if fallback:
        requests.append(
            dg.RunRequest(
                run_key=f"evroam-fallback-{first}-{last}",
                asset_selection=[*EVROAM_ASSETS, *MART],
                tags={"evroam/push": "fallback-delta"},
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=str(last))
