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

from evpipeline.http import HttpError
from evpipeline.lane.feeds import FeedReport, InboxFeed, seen_at
from evpipeline.resources import PushInboxResource
from evpipeline.sources.evroam.assets import SOURCE, TABLE_ASSETS, EVRoamSyncConfig, merge_records, pull
from evpipeline.sources.evroam.client import EVRoamResource, PushFileGone
from evpipeline.sources.evroam.push_urls import PushUrlRefused
from evpipeline.warehouse import WarehouseResource

RESOURCES = ("evroam", "inbox", "warehouse")
MESSAGES_PER_CYCLE = 50  # keep a cycle short; the rest follow in the next one
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
        messages = self.inbox.messages(limit=MESSAGES_PER_CYCLE)
        if not messages:
            return report
        client = self.resource.client()
        report.messages, report.seen_at = len(messages), seen_at(messages)
        fallback: list[str] = []
        refused: dict[str, list[int]] = {}
        for message in messages:
            event = message.payload if isinstance(message.payload, dict) else {}
            data = event.get("data")
            try:
                records = client.download((data if isinstance(data, dict) else {}).get("url"))
                as_of = pd.Timestamp(str(event.get("eventTime") or message.received_at)).to_pydatetime()
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
            except PushUrlRefused as exc:
                # Never fetched, never retried; the records it claims are still upstream: a delta
                # fetches them. Said once per reason (e.g. a leftover of `make demo` naming its
                # stopped simulator's port), not once per notification.
                self.inbox.dead_letter(message, "refused", str(exc), run_id, report)
                refused.setdefault(str(exc), []).append(message.id)
                fallback.append(message.kind)
                continue
            except (PushFileGone, HttpError) as exc:
                # Expired, deleted or unreachable: the records are still upstream; a delta fetches them.
                self._settle(message.id, "fallback", str(exc), log)
                fallback.append(message.kind)
                continue
            except Exception as exc:  # a poison notification: dead-lettered, the rest go on
                self.inbox.dead_letter(message, "failed", f"{type(exc).__name__}: {exc}", run_id, report)
                log.warning(
                    "EVRoam notification %s dead-lettered: %s: %s", message.id, type(exc).__name__, exc
                )
                fallback.append(message.kind)
                continue
            self.inbox.committed(message.id)
            self.store.mark(message.id, "merged", f"{len(records)} records")
            report.outcomes.append(outcome)
        for reason, ids in refused.items():
            log.warning(
                "EVRoam: %d notification(s) refused and dead-lettered (ids %s): %s (EVROAM_PUSH_ALLOWED_HOSTS); "
                "a delta pull covers them",
                len(ids),
                _span(ids),
                reason,
            )
        if fallback:
            report.notes.append(f"{len(fallback)} file(s) gone or refused: delta pull instead")
            report.outcomes.extend(self._fallback(client, run_id, log))
        self._advance_to(messages[-1].id)
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


def _span(ids: list[int]) -> str:
    return str(ids[0]) if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"


def feed(resources: Mapping[str, Any]) -> EVRoamFeed:
    return EVRoamFeed(resources["evroam"], resources["inbox"], resources["warehouse"])
