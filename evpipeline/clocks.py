"""Provider clocks: how far each source's clock is from ours, measured from the `Date` of its answers.

A source stamps its changes on its own clock (an EVSE's `last_updated`, a message's enqueue time); we
stamp what we do on ours (when the warehouse recorded a change, when NDW accepted a push). The AFIR
timeliness report compares the two, so every answer a source's hosts send with a `Date` header (its
API, its Service Bus, its push files) is a measurement of that source's clock:

    skew = Date + 0.5 s - (sent + received) / 2        uncertainty = 0.5 s + (received - sent) / 2

(`Date` is truncated to the second, so the provider's time lies in [Date, Date + 1 s); we do not know
when within the round trip it was read.) Positive: the provider's clock is ahead of ours.

The HTTP layer hands every measurement to `observe`; the source's next warehouse transaction writes
what was measured since to `ops.source_clocks` (`flush`, called by `warehouse.transaction`): one row
per source at most every `WRITE_EVERY` seconds, sooner when the skew moved by more than its
uncertainty. The timeliness report reads the row in force when a change was recorded (docs/quality.md).
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from evpipeline.timeutil import parse_http_date

TABLE = "ops.source_clocks"
WRITE_EVERY = 60.0  # seconds between rows of one source while its skew stays put
KEPT = 240  # measurements kept per source between writes (the newest)

# Registered by `evpipeline.warehouse.writer`, whose transactions `flush` into it: this module stays below
# the warehouse (the HTTP layer measures, the warehouse writes).
MIGRATION_NAME = "provider clock skew measured from the Date header of each source's answers"
DDL = f"""
        CREATE TABLE {TABLE} (
            source VARCHAR NOT NULL,            -- the source whose hosts answered
                                                -- (evroam, greenflux, zaptec, tomtom)
            measured_at TIMESTAMPTZ NOT NULL,   -- our clock at the newest measurement the row summarises
            skew_seconds DOUBLE NOT NULL,       -- provider clock minus ours (median of the measurements),
                                                -- positive: provider ahead
            uncertainty_seconds DOUBLE NOT NULL,  -- half a second (Date is whole seconds) plus half the round
                                                  -- trip (median)
            samples INTEGER NOT NULL,           -- answers measured since the previous row
            min_skew_seconds DOUBLE NOT NULL,   -- smallest skew of those answers
            max_skew_seconds DOUBLE NOT NULL    -- largest skew of those answers
        );
        """


@dataclass(frozen=True)
class Sample:
    """One answer's reading of the provider's clock."""

    at: datetime  # our clock, middle of the round trip
    skew: float  # seconds, provider minus ours
    uncertainty: float  # seconds, half-width


def measure(date_header: str | None, sent: float, received: float) -> Sample | None:
    """The reading of one answer (`sent`/`received`: our `time.time()` around the request);
    None without a `Date`."""
    stamped = parse_http_date(date_header)
    if stamped is None or received < sent:
        return None
    middle = (sent + received) / 2
    skew = stamped.timestamp() + 0.5 - middle
    return Sample(datetime.fromtimestamp(middle, UTC), round(skew, 3), round(0.5 + (received - sent) / 2, 3))


def source_of(api: str) -> str:
    """The source an HTTP client's API belongs to: `zaptec-servicebus` -> `zaptec`."""
    return api.split("-", 1)[0]


class _Clocks:
    """Measurements per source not yet written, and what was written last (per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, deque[Sample]] = {}
        self._written: dict[str, tuple[datetime, float]] = {}

    def observe(self, api: str, sample: Sample | None) -> None:
        if sample is None:
            return
        with self._lock:
            self._pending.setdefault(source_of(api), deque(maxlen=KEPT)).append(sample)

    def due(self, source: str) -> list[Sample]:
        """The pending measurements of `source` when a row is due (taken), else []."""
        with self._lock:
            pending = self._pending.get(source)
            if not pending:
                return []
            samples = list(pending)
            last = self._written.get(source)
            skew = statistics.median(s.skew for s in samples)
            spread = statistics.median(s.uncertainty for s in samples)
            if (
                last is not None
                and samples[-1].at - last[0] < timedelta(seconds=WRITE_EVERY)
                and abs(skew - last[1]) <= spread
            ):
                return []
            pending.clear()
            self._written[source] = (samples[-1].at, skew)
            return samples

    def forget(self) -> None:
        with self._lock:
            self._pending.clear()
            self._written.clear()


CLOCKS = _Clocks()


def observe(api: str, date_header: str | None, sent: float, received: float) -> None:
    """Record the clock reading of one answer of `api` (called by the HTTP layer for every answer)."""
    CLOCKS.observe(api, measure(date_header, sent, received))


def flush(con: duckdb.DuckDBPyConnection, source: str) -> int:
    """Inside `source`'s transaction: write its clock row if one is due; rows written (0 or 1)."""
    samples = CLOCKS.due(source)
    if (
        not samples
        or not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'ops' AND table_name = 'source_clocks'"
        ).fetchone()[0]  # type: ignore[index]  # count(*) always returns a row
    ):
        return 0
    skews = [s.skew for s in samples]
    con.execute(
        f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            source,
            samples[-1].at,
            statistics.median(skews),
            statistics.median(s.uncertainty for s in samples),
            len(samples),
            min(skews),
            max(skews),
        ],
    )
    return 1
