"""Zaptec push: drain the Service Bus subscription into the inbox (the real-time lane merges it).

Zaptec publishes every charger state change to a Service Bus topic subscription. The consumer (the
lane's Zaptec listener, `live.py`, long-polling) peek-locks a message, stores it in the durable
inbox (de-duplicated on its MessageId) and only then completes it, so a crash in between means a
redelivery, never a loss. Messages about no charger (the
all-zero ChargerId) are completed and dropped, as the Home Assistant integration does; bodies
that do not decode are stored anyway and end up in quarantine with their raw text.

Service Bus removes a subscription unused for 14 days. The consumer notices (404), fetches the
connection details again (messaging may have been re-enabled under a new name), asks for a new
subscription, and the lane polls every charger's state for what was published meanwhile. When that
is not possible (the real API offers no such call: it takes a support request), the 15-minute
state poll carries on and the lane logs what a person has to do.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from evpipeline.http import AuthError
from evpipeline.inbox import Inbox
from evpipeline.sources.zaptec.client import (
    EMPTY_CHARGER_ID,
    BusMessage,
    ConnectionDetails,
    SubscriptionGone,
    ZaptecClient,
    decode_body,
)

SOURCE = "zaptec"

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
    payload: dict[str, Any]
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


def _reconnect(
    client: ZaptecClient, old: ConnectionDetails, *, gone: bool, logger: Any
) -> tuple[ConnectionDetails, bool]:
    """Fresh connection details; a new subscription when ours was removed. (details, resubscribed)."""
    fresh = client.connection_details()
    if not gone:
        return fresh, False  # keys rotated: same subscription, new credentials
    if (fresh.topic, fresh.subscription) != (old.topic, old.subscription):
        logger.warning(
            "Zaptec message subscription %s was replaced by %s", old.subscription, fresh.subscription
        )
        return fresh, True
    logger.warning("Zaptec message subscription %s/%s is gone; re-creating it", old.topic, old.subscription)
    return client.recreate_subscription(), True


def _receive(
    client: ZaptecClient,
    details: ConnectionDetails,
    inbox: Inbox,
    result: DrainResult,
    *,
    max_messages: int,
    wait_seconds: int,
    deadline: float,
    receivers: int,
    on_stored: Callable[[], None] | None,
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
                if on_stored is not None and outcome in ("stored", "undecodable"):
                    on_stored()
        finally:
            receiver.close()

    if receivers <= 1:  # in the caller's thread: the lane's daemon listener must not hold its process at exit
        work()  # (an executor's worker is joined at interpreter exit, long poll and retries included)
        return
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
    on_stored: Callable[[], None] | None = None,
) -> DrainResult:
    """Move messages from the subscription into the inbox until it is empty (or a cap is reached);
    `on_stored` is called after each message the inbox keeps (the lane wakes on it)."""
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
            _receive(
                client,
                details,
                inbox,
                result,
                max_messages=max_messages,
                wait_seconds=wait_seconds,
                deadline=deadline,
                receivers=receivers,
                on_stored=on_stored,
            )
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
