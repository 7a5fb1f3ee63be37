"""Watermark rules: where a stream's "changed since" comes from, how far it re-reads,
and that it never goes back.

Every stream keeps one watermark in `ops.sync_state`, written in the transaction of the rows it
covers. What differs per source is only which clock it follows; each source declares that as a
`WatermarkRule` (its `WATERMARK`) and asks the rule for `since` and for a tracker:

- `SERVER`: the server's time when it answered the first page (EVRoam `Date`, Zaptec). A change
  made while we page has a later stamp than that, so the next delta still asks for it.
- `RECORDS`: the newest change time in the records, capped at the first page's server time
  (GreenFlux `last_updated`): the provider's own clock, never ahead of what it had answered.
- `OBSERVED`: the newest observation time among the rows (TomTom availability polls).
- `LOCAL`: our own clock when the run started (TomTom mapping: searches, not deltas).

`since` subtracts the rule's overlap (clock skew, writes landing late): re-reading is harmless
because merges are idempotent. A new watermark is never older than the stored one, so a provider
clock that jumps back cannot make a stream forget what it already covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pandas as pd

from evpipeline.timeutil import utcnow


class Clock(StrEnum):
    SERVER = "server"
    RECORDS = "records"
    OBSERVED = "observed"
    LOCAL = "local"


@dataclass(frozen=True)
class WatermarkRule:
    """Which clock a stream's watermark follows and how much a delta re-reads before it."""

    clock: Clock
    overlap: timedelta = timedelta(0)

    def since(
        self, stored: datetime | None, *, full: bool = False, overlap_seconds: int | None = None
    ) -> datetime | None:
        """The `changed since` of the next pull: None for a full pull or a first run (bootstrap)."""
        if full or stored is None:
            return None
        overlap = self.overlap if overlap_seconds is None else timedelta(seconds=overlap_seconds)
        return stored - overlap

    def tracker(self, stored: datetime | None = None) -> Watermark:
        """A fresh tracker for one pull, starting from the stored watermark."""
        return Watermark(self, stored)


class Watermark:
    """Follows one pull and says where the next one starts (`value`), per its rule."""

    def __init__(self, rule: WatermarkRule, stored: datetime | None = None) -> None:
        self.rule, self.stored = rule, stored
        self.started_at = utcnow()
        self.first_page_at: datetime | None = None
        self.newest: datetime | None = None

    def page(self, server_time: datetime) -> None:
        """A page arrived, produced at `server_time`; only the first one bounds the pull."""
        if self.first_page_at is None:
            self.first_page_at = server_time

    def seen(self, stamps: pd.Series | datetime | None) -> None:
        """Change or observation times of rows just read (RECORDS and OBSERVED follow these)."""
        newest = (stamps.max() if len(stamps) else None) if isinstance(stamps, pd.Series) else stamps
        if newest is None or pd.isna(newest):
            return
        when = pd.Timestamp(newest).to_pydatetime()
        self.newest = when if self.newest is None else max(self.newest, when)

    def value(self) -> datetime | None:
        """The watermark to store with this pull's rows, or the stored one when nothing moved it."""
        match self.rule.clock:
            case Clock.SERVER:
                candidate = self.first_page_at
            case Clock.RECORDS:
                candidate = (
                    min(self.newest, self.first_page_at)
                    if self.newest and self.first_page_at
                    else self.newest
                )
            case Clock.OBSERVED:
                candidate = self.newest
            case Clock.LOCAL:
                candidate = self.started_at
        if candidate is None:
            return self.stored
        return candidate if self.stored is None else max(candidate, self.stored)
