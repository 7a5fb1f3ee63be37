"""EVRoam on the real-time lane: push notifications, downloaded and merged within seconds.

The webhook receiver (its own process) stores each Event Grid notification in the durable inbox.
`collect` downloads each notification's file while it still exists (files live about an hour) and
merges it with the same `merge_records` the pulls use, as of the notification time, advancing the
inbox cursor in the same transaction. A file that expired or vanished (403/404) or cannot be
fetched is replaced by a delta pull (nothing is lost: the records are still upstream). A URL the
push-URL rules refuse (`push_urls.py`) is never fetched; it, and any other failure of one
notification, is dead-lettered with its reason (`ops.dead_letters`, the inbox status, the lane's
log) and covered by a delta pull, never blocking the notifications after it.

Request budget: nothing when quiet; one download per notification (NZTA pushes every 5 minutes at
most, per kind); a fallback delta costs what a scheduled delta costs.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from typing import Any

import pandas as pd

from evpipeline.http import DeadlineExceeded, HttpError
from evpipeline.inbox import Message
from evpipeline.resources import PushInboxResource
from evpipeline.sources.evroam.assets import SOURCE, TABLE_ASSETS, EVRoamSyncConfig, merge_records, pull
from evpipeline.sources.evroam.client import EVRoamResource, PushFileGone
from evpipeline.sources.evroam.push_urls import PushUrlRefused, vet
from evpipeline.sources.feeds import FeedReport, InboxFeed, seen_at
from evpipeline.warehouse import WarehouseResource

RESOURCES = ("evroam", "inbox", "warehouse")
MESSAGES_PER_CYCLE = 50  # downloads per cycle: keep a cycle short; the rest follow in the next one
# Notifications judged per cycle: a full Event Grid delivery (5,000) and what follows it.
SCAN_PER_CYCLE = 10_000
log = logging.getLogger("evpipeline.lane.evroam")


class EVRoamFeed:
    """Stored push notifications -> their files -> evroam tables (or a delta pull)."""

    name = SOURCE
    assets = TABLE_ASSETS

    def __init__(
        self, evroam: EVRoamResource, inbox: PushInboxResource, warehouse: WarehouseResource
    ) -> None:
        self.resource, self.warehouse = evroam, warehouse
        self.store = inbox.open()
        self.inbox = InboxFeed(SOURCE, self.store, warehouse)

    def start(self, wake: threading.Event) -> None:
        """Nothing to listen to here: the webhook receiver fills the inbox."""

    def stop(self) -> None:
        """Nothing to stop."""

    def due(self, now: float) -> bool:
        return self.inbox.pending()

    def collect(self, run_id: str | None, log: Any) -> FeedReport:
        report = FeedReport(self.name)
        # Read far ahead: a refused URL or an unreadable row is judged without a request, so a whole
        # delivery of them (Event Grid sends up to 5,000) is one dead-letter commit and one delta
        # pull; only downloads are capped per cycle.
        messages = self.inbox.messages(limit=SCAN_PER_CYCLE)
        if not messages:
            return report
        client = self.resource.client()
        report.messages, report.seen_at = len(messages), seen_at(messages)
        fallback = 0
        dead: list[tuple[Message, str, str]] = []  # written (one transaction) before the cursor passes them
        refused: dict[str, list[int]] = {}
        downloads, handled = 0, self.inbox.cursor()
        slow: str | None = None  # a download that missed its deadline, this cycle
        skipped: list[tuple[int, str, str | None]] = []  # marked in one inbox transaction
        for message in messages:
            url = _url(message)
            try:
                if message.error is not None:  # a row stored before the receiver bounded nesting
                    dead.append((message, "failed", message.error))
                    fallback += 1
                    handled = message.id
                    continue
                vet(url, client.allowed_origins)  # pure: no request for a URL we refuse
            except PushUrlRefused as exc:
                # Never fetched, never retried; the records it claims are still upstream: a delta
                # fetches them. Said once per reason (e.g. a leftover of `make demo` naming its
                # stopped simulator's port), not once per notification.
                dead.append((message, "refused", str(exc)))
                refused.setdefault(str(exc), []).append(message.id)
                fallback, handled = fallback + 1, message.id
                continue
            if downloads >= MESSAGES_PER_CYCLE:
                break  # keep a cycle short; the rest follow in the next one
            if slow is not None:  # the origin missed a deadline this cycle: the delta pull covers the rest
                skipped.append((message.id, "fallback", f"not downloaded: {slow}"))
                fallback, handled = fallback + 1, message.id
                continue
            downloads += 1
            try:
                records = client.download(url)
                as_of = pd.Timestamp(
                    str(_event(message).get("eventTime") or message.received_at)
                ).to_pydatetime()
            except PushUrlRefused as exc:  # a redirect: refused like a URL off the allow-list
                dead.append((message, "refused", str(exc)))
                fallback, handled = fallback + 1, message.id
                continue
            except (PushFileGone, HttpError) as exc:
                # Expired, deleted, unreachable, too large or too slow: the records are still upstream;
                # a delta fetches them. A slow origin is not waited for again in this cycle.
                self._settle(message.id, "fallback", str(exc), log)
                slow = str(exc) if isinstance(exc, DeadlineExceeded) else slow
                fallback, handled = fallback + 1, message.id
                continue
            except Exception as exc:  # a poison file: the same every time; dead-lettered, the rest go on
                dead.append((message, "failed", f"{type(exc).__name__}: {exc}"))
                log.warning(
                    "EVRoam notification %s dead-lettered: %s: %s", message.id, type(exc).__name__, exc
                )
                fallback, handled = fallback + 1, message.id
                continue
            self.inbox.dead_letter_many(dead, run_id, report)  # the merge below moves the cursor past them
            dead = []
            try:
                outcome = merge_records(
                    self.warehouse,
                    message.kind,
                    records,
                    as_of,
                    run_id=run_id,
                    stream=f"push:{message.kind}",
                    lineage=f"push:{message.id}-{message.kind}",
                    requests=client.files.stats.requests,
                    before_commit=functools.partial(self.inbox.advance, message_id=message.id),
                )
            except Exception as exc:
                # A warehouse fault passes (the backend restarting): tried again next cycle, up to
                # MAX_ATTEMPTS times; then, or for any other error, dead-lettered: it holds nobody up.
                if self.inbox.try_again(message, exc):
                    log.warning(
                        "EVRoam notification %s not merged (tried again next cycle): %s: %s",
                        message.id,
                        type(exc).__name__,
                        exc,
                    )
                    break
                dead.append((message, "failed", self.inbox.reason(exc)))
                fallback, handled = fallback + 1, message.id
                continue
            self.inbox.committed(message.id)
            self.store.mark(message.id, "merged", f"{len(records)} records")
            report.outcomes.append(outcome)
            handled = message.id
        self.inbox.dead_letter_many(dead, run_id, report)
        self.store.mark_many(skipped)
        for reason, ids in refused.items():
            log.warning(
                "EVRoam: %d notification(s) refused and dead-lettered (ids %s): "
                "%s (EVROAM_PUSH_ALLOWED_HOSTS); a delta pull covers them",
                len(ids),
                _span(ids),
                reason,
            )
        if fallback:
            report.notes.append(f"{fallback} file(s) gone or refused: delta pull instead")
            report.outcomes.extend(self._fallback(client, run_id, log))
        self._advance_to(handled)
        report.requests = client.api.stats.requests + client.files.stats.requests
        return report

    def _settle(self, message_id: int, status: str, note: str, log: Any) -> None:
        self.store.mark(message_id, status, note)
        log.warning("EVRoam notification %s %s: %s", message_id, status, note)

    def _fallback(self, client: Any, run_id: str | None, log: Any) -> list[Any]:
        outcomes = []
        for stream in ("Site", "ChargingStation"):
            watermark, _ = self.warehouse.sync_state(SOURCE, stream)
            if watermark is None:  # never bootstrapped: that is the scheduled job's work, not the lane's
                continue
            outcomes.append(pull(self.warehouse, client, stream, EVRoamSyncConfig(), run_id=run_id, log=log))
        return outcomes

    def _advance_to(self, message_id: int) -> None:
        if message_id > self.inbox.cursor():
            with self.warehouse.writer(SOURCE) as writer:
                self.inbox.advance(writer, message_id)
            self.inbox.committed(message_id)


def _event(message: Message) -> dict[str, Any]:
    return message.payload if isinstance(message.payload, dict) else {}


def _url(message: Message) -> object:
    data = _event(message).get("data")
    return (data if isinstance(data, dict) else {}).get("url")


def _span(ids: list[int]) -> str:
    return str(ids[0]) if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"


def feed(resources: Mapping[str, Any]) -> EVRoamFeed:
    return EVRoamFeed(resources["evroam"], resources["inbox"], resources["warehouse"])
