"""Zaptec on the real-time lane: Service Bus state changes, merged within seconds.

A listener thread long-polls the message subscription into the durable inbox and wakes the lane
after each message; `collect` merges the stored messages with the same `merge_observations` the
state poll uses, advancing its inbox cursor in the same transaction. When the subscription had
to be re-created, every charger's state is polled once (in the listener thread, stored in the
inbox like messages) to cover what was published meanwhile.

Request budget: one long-poll receive per `wait_seconds` (20 s) when quiet, plus one complete per
message; no Zaptec REST calls except the catch-up poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from evpipeline.http import HttpError
from evpipeline.inbox import Message
from evpipeline.resources import PushInboxResource
from evpipeline.sources.feeds import FeedReport, InboxFeed, seen_at
from evpipeline.sources.zaptec.assets import STATES_KEY, merge_observations
from evpipeline.sources.zaptec.client import SubscriptionGone, ZaptecResource
from evpipeline.sources.zaptec.push import SOURCE, drain
from evpipeline.sources.zaptec.tables import CHARGERS, STATES
from evpipeline.warehouse import WarehouseResource

RESOURCES = ("zaptec", "inbox", "warehouse")
log = logging.getLogger("evpipeline.lane.zaptec")


class ZaptecFeed:
    """Service Bus messages -> inbox -> zaptec.charger_states."""

    name = SOURCE
    assets = {STATES: STATES_KEY}

    def __init__(
        self,
        zaptec: ZaptecResource,
        inbox: PushInboxResource,
        warehouse: WarehouseResource,
        *,
        wait_seconds: int = 20,
    ) -> None:
        self.resource, self.warehouse, self.wait_seconds = zaptec, warehouse, wait_seconds
        self.store = inbox.open()
        self.inbox = InboxFeed(SOURCE, self.store, warehouse)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._catch_up = threading.Event()  # the subscription was re-created: poll every charger once
        self.catch_up_thread: threading.Thread | None = None
        self._wake: threading.Event | None = None
        self.listener_error: str | None = None
        self.listener_failures = 0

    # -- listener ------------------------------------------------------------------------

    def start(self, wake: threading.Event) -> None:
        self._wake = wake
        if not self.resource.listen or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._listen, args=(wake,), name="zaptec-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        # Not waiting out a long poll in flight: a message it still receives is stored durably and
        # completed only then (or redelivered if the process ends first), so nothing is lost.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _listen(self, wake: threading.Event) -> None:
        client = self.resource.client()
        pause = 1.0
        while not self._stop.is_set():
            try:
                result = drain(
                    client,
                    self.store,
                    max_messages=10_000,
                    wait_seconds=self.wait_seconds,
                    deadline_seconds=self.wait_seconds * 3,
                    receivers=1,
                    logger=log,
                    on_stored=wake.set,
                )
                if result.resubscribed:
                    self._catch_up.set()
                    wake.set()
                self.listener_error, pause = None, 1.0
            except (SubscriptionGone, HttpError) as exc:  # never a tight loop against a failing bus
                self.listener_error, self.listener_failures = str(exc), self.listener_failures + 1
                log.warning("Zaptec messages not received (retrying in %.0f s): %s", pause, exc)
                self._stop.wait(pause)
                pause = min(pause * 2, 60.0)

    # -- lane ----------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        return self._catch_up.is_set() or self.inbox.pending()

    def collect(self, run_id: str | None, log: Any) -> FeedReport:
        report = FeedReport(self.name)
        if self._catch_up.is_set():
            self._catch_up.clear()
            self._start_catch_up(log)
        messages = self.inbox.messages()
        if not messages:
            return report
        report.messages, report.seen_at = len(messages), seen_at(messages)
        try:
            if any(m.error is not None for m in messages):
                raise ValueError("an unreadable message in the batch")  # judged one by one below
            report.outcomes.append(self._merge(messages, run_id))
        except Exception as exc:  # one bad message must not wedge the rest: merge them one by one
            log.warning(
                "Zaptec batch %s-%s failed (%s); merging message by message",
                messages[0].id,
                messages[-1].id,
                exc,
            )
            for message in messages:
                if message.error is not None:  # unreadable: the same every time, dead at once
                    self.inbox.dead_letter(message, "failed", message.error, run_id, report)
                    continue
                try:
                    report.outcomes.append(self._merge([message], run_id))
                except Exception as one:
                    # A warehouse fault passes: tried again next cycle (up to MAX_ATTEMPTS times);
                    # anything else fails the same way every time: dead-lettered now.
                    if self.inbox.try_again(message, one):
                        log.warning(
                            "Zaptec message %s not merged (tried again next cycle): %s", message.id, one
                        )
                        break
                    self.inbox.dead_letter(message, "failed", self.inbox.reason(one), run_id, report)
        return report

    def _merge(self, messages: Sequence[Message], run_id: str | None) -> Any:
        last = messages[-1].id
        outcome = merge_observations(
            self.warehouse,
            [m.payload for m in messages],
            run_id=run_id,
            stream="push",
            lineage=f"push:inbox {messages[0].id}-{last}",
            before_commit=lambda writer, _valid: self.inbox.advance(writer, last),
        )
        self.inbox.committed(last)
        return outcome

    def _start_catch_up(self, log: Any) -> None:
        with self.warehouse.get_connection() as con:
            charger_ids = [
                r[0]
                for r in con.execute(
                    f"SELECT charger_id FROM {CHARGERS} WHERE NOT is_deleted ORDER BY 1"
                ).fetchall()
            ]
        log.warning(
            "Zaptec subscription re-created: polling %d charger(s) for the changes published meanwhile",
            len(charger_ids),
        )
        self.catch_up_thread = threading.Thread(
            target=self._catch_up_poll, args=(charger_ids,), name="zaptec-catch-up", daemon=True
        )
        self.catch_up_thread.start()

    def _catch_up_poll(self, charger_ids: list[str]) -> None:
        """Poll outside the lane's cycle (it may take minutes) and hand the answers over through the inbox."""
        try:
            poll = self.resource.client().poll_states(charger_ids)
        except HttpError as exc:
            log.warning("Zaptec catch-up poll failed; the scheduled state poll covers the gap: %s", exc)
            return
        stamp = int(time.time())
        self.store.put_many(
            SOURCE, [("poll", f"catch-up:{stamp}:{n}", o) for n, o in enumerate(poll.observations)]
        )
        if self._wake is not None:
            self._wake.set()


def feed(resources: Mapping[str, Any]) -> ZaptecFeed:
    return ZaptecFeed(resources["zaptec"], resources["inbox"], resources["warehouse"])


ASSETS: list[dg.AssetKey] = [STATES_KEY]
