"""The simulators' notion of "now", and the date formats the APIs print it in."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime


class SimClock:
    """Simulated UTC time. Frozen clocks move only on `advance`; live ones also follow wall time."""

    def __init__(self, start: datetime | None = None, *, live: bool = False) -> None:
        self._base = (start or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
        self._live = live
        self._mono = time.monotonic()
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            elapsed = timedelta(seconds=time.monotonic() - self._mono) if self._live else timedelta(0)
            return self._base + elapsed + self._offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def iso_z(when: datetime, millis: bool = False) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{when.microsecond // 1000:03d}" if millis else "") + "Z"
