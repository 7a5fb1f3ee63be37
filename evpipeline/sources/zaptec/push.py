"""Zaptec push: drain the Service Bus subscription into the inbox; a sensor turns stored messages into merges.

Zaptec publishes every charger state change to a Service Bus topic subscription. The consumer
(the `zaptec_push` sensor each tick, or `evpipeline zaptec-consumer` continuously) peek-locks a
message, stores it in the durable inbox (de-duplicated on its MessageId) and only then completes
it, so a crash in between means a redelivery, never a loss. Messages about no charger (the
all-zero ChargerId) are completed and dropped, as the Home Assistant integration does; bodies
that do not decode are stored anyway and end up in quarantine with their raw text.

Service Bus removes a subscription unused for 14 days. The consumer notices (404), fetches the
connection details again (messaging may have been re-enabled under a new name), asks for a new
subscription, and requests a catch-up poll for what was published meanwhile. When that is not
possible (the real API offers no such call: it takes a support request), the 15-minute state poll
carries on and the sensor logs what a person has to do.
"""

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dagster as dg

from evpipeline.http import AuthError, HttpError
from evpipeline.inbox import Inbox
from evpipeline.model.keys import MART
from evpipeline.resources import PushInboxResource
from evpipeline.sources.zaptec.assets import SOURCE, STATES_KEY, STATES_OP
from evpipeline.sources.zaptec.client import (
    EMPTY_CHARGER_ID,
    BusMessage,
    ConnectionDetails,
    SubscriptionGone,
    ZaptecClient,
    ZaptecResource,
    decode_body,
)

log = logging.getLogger("evpipeline.zaptec.push")


@dataclass
class DrainResult:
    """What one drain of the subscription did."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    undecodable: int = 0
    resubscribed: bool = False
    subscription: str = ""


def store(inbox: Inbox, message: BusMessage) -> str:
    """Keep one message durably, or drop it when it concerns no charger. Returns what happened."""
    body = decode_body(message.body)
    if not isinstance(body, dict):
        kind, payload = "undecodable", {"_undecodable": message.body[:4000].decode("utf-8", "replace")}
    elif str(body.get("ChargerId")) == EMPTY_CHARGER_ID:
        return "ignored"
    else:
        props = message.properties
        meta = {k: props.get(k) for k in ("MessageId", "SequenceNumber", "EnqueuedTimeUtc")}
        kind, payload = "state", {**body, "_message": meta}
    key = message.message_id or hashlib.sha256(message.body).hexdigest()
    if not inbox.put(SOURCE, kind, payload, dedupe_key=key):
        return "duplicates"
    return "undecodable" if kind == "undecodable" else "stored"


def _reconnect(client: ZaptecClient, old: ConnectionDetails, *, gone: bool, logger: Any) -> tuple[ConnectionDetails, bool]:
    """Fresh connection details; a new subscription when ours was removed. (details, resubscribed)."""
    fresh = client.connection_details()
    if not gone:
        return fresh, False  # keys rotated: same subscription, new credentials
    if (fresh.topic, fresh.subscription) != (old.topic, old.subscription):
        logger.warning("Zaptec message subscription %s was replaced by %s", old.subscription, fresh.subscription)
        return fresh, True
    logger.warning("Zaptec message subscription %s/%s is gone; re-creating it", old.topic, old.subscription)
    return client.recreate_subscription(), True


def _receive(
    client: ZaptecClient, details: ConnectionDetails, inbox: Inbox, result: DrainResult,
    *, max_messages: int, wait_seconds: int, deadline: float, receivers: int,
) -> None:
    """Several peek-lock receivers on one subscription (each message is locked to one of them)."""
    lock = threading.Lock()

    def work() -> None:
        receiver = client.receiver(details)
        try:
            while True:
                with lock:
                    if result.received >= max_messages or time.monotonic() > deadline:
                        return
                message = receiver.peek_lock(wait_seconds)
                if message is None:
                    return
                outcome = store(inbox, message)
                receiver.complete(message)  # only after the inbox has it
                with lock:
                    result.received += 1
                    setattr(result, outcome, getattr(result, outcome) + 1)
        finally:
            receiver.close()

    with ThreadPoolExecutor(max_workers=receivers, thread_name_prefix="zaptec-bus") as pool:
        for future in [pool.submit(work) for _ in range(receivers)]:
            future.result()


def drain(
    client: ZaptecClient,
    inbox: Inbox,
    *,
    max_messages: int = 2000,
    wait_seconds: int = 0,
    deadline_seconds: float = 20.0,
    receivers: int = 4,
    logger: Any = log,
) -> DrainResult:
    """Move messages from the subscription into the inbox until it is empty (or a cap is reached)."""
    result = DrainResult()
    try:
        details = client.connection_details()
    except SubscriptionGone as exc:
        logger.warning("%s; asking for a subscription", exc)
        details, result.resubscribed = client.recreate_subscription(), True
    deadline = time.monotonic() + deadline_seconds
    retried_auth = False
    while True:
        try:
            _receive(client, details, inbox, result, max_messages=max_messages, wait_seconds=wait_seconds,
                     deadline=deadline, receivers=receivers)
            break
        except (SubscriptionGone, AuthError) as exc:
            gone = isinstance(exc, SubscriptionGone)
            if (gone and result.resubscribed) or (not gone and retried_auth):
                raise
            retried_auth = retried_auth or not gone
            details, resubscribed = _reconnect(client, details, gone=gone, logger=logger)
            result.resubscribed = result.resubscribed or resubscribed
    result.subscription = details.subscription
    return result


def run_consumer(resource: ZaptecResource, inbox: Inbox, *, wait_seconds: int = 30, once: bool = False) -> int:
    """Long-running consumer (`evpipeline zaptec-consumer`): long-polls the subscription into the inbox."""
    client = resource.client()
    stored = 0
    while True:
        try:
            result = drain(client, inbox, max_messages=10_000, wait_seconds=wait_seconds, deadline_seconds=300)
            stored += result.stored
            if result.received:
                log.info("stored %d message(s) (%d duplicate, %d ignored)", result.stored, result.duplicates, result.ignored)
        except SubscriptionGone as exc:
            log.error("%s", exc)
            if once:
                raise
            time.sleep(300)
        except HttpError as exc:
            log.warning("Zaptec messaging unavailable: %s", exc)
            if once:
                raise
            time.sleep(30)
        if once:
            return stored


def catch_up_request(subscription: str) -> dg.RunRequest:
    """A state poll for the changes published while we had no subscription."""
    return dg.RunRequest(
        run_key=f"zaptec-catch-up-{subscription}-{int(time.time())}",
        asset_selection=[STATES_KEY, *MART],
        run_config={"ops": {STATES_OP: {"config": {"mode": "poll"}}}},
        tags={"zaptec/push": "catch-up-poll"},
    )


@dg.sensor(
    name="zaptec_push",
    minimum_interval_seconds=30,
    asset_selection=dg.AssetSelection.assets(STATES_KEY, *MART),
    description="Drains Zaptec's Service Bus subscription into the inbox and merges the stored state changes.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def zaptec_push_sensor(
    context: dg.SensorEvaluationContext, zaptec: ZaptecResource, inbox: PushInboxResource
) -> dg.SensorResult:
    """Take state changes from the message subscription and request runs that merge them."""
    store_ = inbox.open()
    requests: list[dg.RunRequest] = []
    if zaptec.consume_in_sensor:
        try:
            drained = drain(zaptec.client(), store_, max_messages=zaptec.max_messages_per_drain, logger=context.log)
            if drained.resubscribed:
                requests.append(catch_up_request(drained.subscription))
        except SubscriptionGone as exc:
            context.log.warning("%s", exc)
        except HttpError as exc:  # messaging trouble must not stop merging what is stored
            context.log.warning("Zaptec messages not drained this tick: %s", exc)

    last_id = int(context.cursor or 0)
    newest = last_id
    while batch := store_.after(SOURCE, newest, limit=1000):
        newest = batch[-1].id
    if newest > last_id:
        requests.append(
            dg.RunRequest(
                run_key=f"zaptec-push-{last_id + 1}-{newest}",
                asset_selection=[STATES_KEY, *MART],  # pushed states reach mart (and NDW) in the same run
                run_config={"ops": {STATES_OP: {"config": {"mode": "push", "inbox_after": last_id, "inbox_through": newest}}}},
                tags={"zaptec/push": "states"},
            )
        )
    if not requests:
        return dg.SensorResult(skip_reason="no new Zaptec messages")
    return dg.SensorResult(run_requests=requests, cursor=str(newest))
