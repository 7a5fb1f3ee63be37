"""The feed contract: what a source plugs into the real-time lane, a `Feed` that brings its changes into
the warehouse, and what feeds share (`FeedReport`, `InboxFeed` with its dead letters, `seen_at`).

A source that carries dynamic data (EVSE status, ad-hoc prices) declares a feed in its own
`live.py` (`feed(resources) -> Feed`). A feed does its HTTP work outside DuckDB and merges through the
source's own sync functions, with its cursor in the same transaction as the rows. Feeds may keep a
listener thread (a Service Bus long-poll) that wakes the lane as soon as something arrives.
It lives here, below the lane (`evpipeline.lane`, which runs the feeds), so a source's `live.py`
depends on the contract and never on the lane.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import dagster as dg
import duckdb
import pandas as pd

from evpipeline.inbox import Inbox, Message
from evpipeline.sync import SyncOutcome
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import Migration, WarehouseResource, Writer, describe_columns, register

DEAD_LETTERS = "ops.dead_letters"
# A delivery whose merge failed this many times is dead-lettered (a transient fault, e.g. the
# backend restarting, gets as many tries; a delivery that fails every time stops holding the rest).
MAX_ATTEMPTS = 5
register(
    Migration(
        "lane",
        1,
        "dead-lettered push deliveries",
        f"""
        CREATE TABLE {DEAD_LETTERS} (
            source VARCHAR NOT NULL,
            message_id BIGINT NOT NULL,         -- the inbox message (data/inbox/push.sqlite)
            kind VARCHAR NOT NULL,
            status VARCHAR NOT NULL,            -- refused (never fetched) | failed (an unforeseen error)
            reason VARCHAR NOT NULL,
            payload VARCHAR,                    -- the delivery as received
            received_at TIMESTAMPTZ,
            dead_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR,
            PRIMARY KEY (source, message_id)
        );
        """,
    )
)
# What each column means, for the Dagster catalog (`evpipeline.catalog`).
COLUMNS: dict[str, dict[str, str]] = {
    DEAD_LETTERS: {
        "source": "The source that pushed the delivery (evroam or zaptec).",
        "kind": "What the delivery holds: EVRoam availabilities, chargingstations or sites (the file named "
        "in the notification); Zaptec state or undecodable.",
        "reason": "Why it was not merged: the refusal, or the error it raised.",
        "received_at": "When our receiver stored the delivery in the inbox (UTC).",
        "dead_at": "When it was dead-lettered (UTC).",
        "run_id": "The run (the real-time lane's) that dead-lettered it.",
    },
}
describe_columns(__name__, COLUMNS)


@dataclass
class FeedReport:
    """What one feed merged in one cycle (tables by warehouse name) and when it first saw it."""

    feed: str
    requests: int = 0
    messages: int = 0
    outcomes: list[SyncOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seen_at: float | None = None  # time.time() when the oldest change in this report became visible to us
    dead_letters: list[dict[str, Any]] = field(default_factory=list)  # message_id, kind, status, reason

    def merged(self) -> dict[str, int]:
        """Rows changed per table."""
        changed: dict[str, int] = {}
        for outcome in self.outcomes:
            for table, result in outcome.tables.items():
                changed[table] = changed.get(table, 0) + result.counts.changed
        return changed

    @property
    def quarantined(self) -> int:
        return sum(r.quarantined for o in self.outcomes for r in o.tables.values())


class Feed(Protocol):
    """One source's way into the lane."""

    name: str

    @property
    def assets(self) -> Mapping[str, dg.AssetKey]:
        """Warehouse table -> the asset it materializes (read-only here, so a feed may hold a dict)."""

    def start(self, wake: threading.Event) -> None:
        """Start listeners (if any) that set `wake` when a change arrives."""

    def stop(self) -> None:
        """Stop listeners."""

    def due(self, now: float) -> bool:
        """Cheap (no DuckDB, no network unless it is the point): is there work now?"""

    def collect(self, run_id: str | None, log: Any) -> FeedReport:
        """Fetch and merge what changed; raises only when nothing could be merged."""


class InboxFeed:
    """Shared by feeds whose changes arrive through the push inbox: read on from the cursor kept in
    `ops.sync_state` (source, `inbox`), which each merge advances in its own transaction."""

    STREAM = "inbox"

    def __init__(self, source: str, inbox: Inbox, warehouse: WarehouseResource) -> None:
        self.source, self.inbox, self.warehouse = source, inbox, warehouse
        self._cursor: int | None = None

    def cursor(self) -> int:
        if self._cursor is None:
            _, state = self.warehouse.sync_state(self.source, self.STREAM)
            self._cursor = int(state.get("message_id", 0))
        return self._cursor

    def pending(self) -> bool:
        return self.inbox.newest_id(self.source) > self.cursor()

    def messages(self, limit: int = 2000) -> Sequence[Message]:
        return self.inbox.after(self.source, self.cursor(), limit=limit)

    def advance(self, writer: Writer, message_id: int) -> None:
        """Inside the merge's transaction: these messages are done."""
        writer.set_sync_state(self.STREAM, None, {"message_id": message_id})

    def committed(self, message_id: int) -> None:
        self._cursor = max(self.cursor(), message_id)

    def try_again(self, message: Message, exc: Exception) -> bool:
        """After `message` failed with `exc`: True to leave it for the next cycle (a warehouse fault,
        which passes: the backend restarting, a lost commit race), counted in the inbox, until it
        failed MAX_ATTEMPTS times; False to dead-letter it now (anything else fails the same way
        every time: trying again would only hold up the messages behind it)."""
        if not isinstance(exc, duckdb.Error | OSError):
            return False
        return self.inbox.attempt(message.id, f"{type(exc).__name__}: {exc}") < MAX_ATTEMPTS

    @staticmethod
    def reason(exc: Exception) -> str:
        """A dead letter's reason for `exc` (saying how many tries a warehouse fault had)."""
        tries = f"{MAX_ATTEMPTS} attempts, the last: " if isinstance(exc, duckdb.Error | OSError) else ""
        return f"{tries}{type(exc).__name__}: {exc}"

    def dead_letter(
        self, message: Message, status: str, reason: str, run_id: str | None, report: FeedReport
    ) -> None:
        """One delivery that cannot be merged: recorded (table, inbox, report) and passed, never blocking
        the rest."""
        self.dead_letter_many([(message, status, reason)], run_id, report)

    def dead_letter_many(
        self,
        letters: Sequence[tuple[Message, str, str]],
        run_id: str | None,
        report: FeedReport,
    ) -> None:
        """Deliveries that cannot be merged, (message, status, reason) in inbox order: recorded in ONE
        transaction with the cursor (a flood of refusals costs one commit, not one each) and passed.

        DELETE then INSERT, not `INSERT OR REPLACE`: a DuckLake table has no key constraint to
        replace on, and that statement failing stopped the feed for good (issue 25)."""
        if not letters:
            return
        self.inbox.mark_many([(m.id, status, reason) for m, status, reason in letters])
        rows = pd.DataFrame(
            {
                "source": self.source,
                "message_id": [m.id for m, _, _ in letters],
                "kind": [m.kind for m, _, _ in letters],
                "status": [status for _, status, _ in letters],
                "reason": [reason[:2000] for _, _, reason in letters],
                "payload": [_payload_text(m) for m, _, _ in letters],
                "received_at": pd.to_datetime(
                    [m.received_at for m, _, _ in letters], utc=True, errors="coerce"
                ),
                "dead_at": utcnow(),
                "run_id": run_id,
            }
        ).drop_duplicates(["source", "message_id"], keep="last")
        last = max(max(m.id for m, _, _ in letters), self.cursor())  # read before the writer opens
        with self.warehouse.writer(self.source, run_id) as writer:
            writer.delete_matching(DEAD_LETTERS, rows[["source", "message_id"]])
            writer.append(DEAD_LETTERS, rows)
            self.advance(writer, last)
        self.committed(last)
        report.dead_letters.extend(
            {"message_id": m.id, "kind": m.kind, "status": status, "reason": reason}
            for m, status, reason in letters
        )


def _payload_text(message: Message) -> str:
    """The delivery as received, for the operator (bounded; never raises on a payload we could not parse)."""
    if message.raw is not None:
        return message.raw[:100_000]
    try:
        return json.dumps(message.payload, default=str)[:100_000]
    except (ValueError, RecursionError):
        return repr(message.payload)[:100_000]


def seen_at(messages: Sequence[Message]) -> float | None:
    """When the oldest message reached our inbox (time.time())."""
    from datetime import datetime

    stamps = []
    for message in messages:
        try:
            stamps.append(datetime.fromisoformat(message.received_at).timestamp())
        except ValueError:
            continue
    return min(stamps) if stamps else None
