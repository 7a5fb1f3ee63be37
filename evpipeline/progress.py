"""Progress of long work (bootstrap pulls, large polls, big writes): done, rate and ETA, throttled.

One `Progress` per piece of work: `advance(rows, pages=...)` as it goes (from any thread). At most
every `EVPIPELINE_PROGRESS_SECONDS` (default 5) it logs one line such as

    greenflux GET api/2.0/Locations: 12 pages, 12,000/48,000 rows (25%), 2,400 rows/s, ETA 15 s

and, when it logged anything, a last line when the work is done; short work stays silent. The
logger is a Dagster-managed Python logger (`dagster.builtin.evpipeline.progress`): inside a run its
lines land in the run's event log (the UI) and on the run's console logger; outside a run they go
wherever `to_terminal` (the CLI, the demo) or the caller's logging config sends them.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

from evpipeline import settings

LOGGER_NAME = "evpipeline.progress"
DEFAULT_EVERY = 5.0


def logger() -> logging.Logger:
    """The progress logger, managed by Dagster (its lines reach the run log of the run they happen in)."""
    import dagster as dg

    return dg.get_dagster_logger(LOGGER_NAME)


def every_seconds() -> float:
    """The reporting interval: `EVPIPELINE_PROGRESS_SECONDS` (0 reports every step; for tests)."""
    try:
        return max(0.0, float(settings.get("EVPIPELINE_PROGRESS_SECONDS") or DEFAULT_EVERY))
    except ValueError:
        return DEFAULT_EVERY


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """Counts of one piece of work and a throttled log line about them (thread-safe)."""

    def __init__(
        self,
        what: str,
        *,
        unit: str = "rows",
        total: int | None = None,
        every: float | None = None,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.unit, self.total = what, unit, total
        self.every = every_seconds() if every is None else every
        self._log = log  # resolved on the first line: short work never touches it
        self.clock = clock
        self.done = 0
        self.pages = 0
        self.reported = 0  # lines logged so far
        self.started = clock()
        self._last = self.started
        self._lock = threading.Lock()

    @property
    def log(self) -> logging.Logger:
        if self._log is None:
            self._log = logger()
        return self._log

    def set_total(self, total: int | None) -> None:
        if total is not None and total >= 0:
            self.total = total

    def advance(self, n: int = 1, *, pages: int = 0) -> None:
        with self._lock:
            self.done += n
            self.pages += pages
            now = self.clock()
            if now - self._last < self.every:
                return
            self._last = now
            self.reported += 1
            line = self.line(now)
        self.log.info(line)

    def finish(self) -> None:
        """A closing line, only when the work was long enough to have reported progress."""
        with self._lock:
            if not self.reported:
                return
            self.reported += 1
            elapsed = self.clock() - self.started
            pages = f"{self.pages:,} page{'' if self.pages == 1 else 's'}, " if self.pages else ""
            line = (
                f"{self.what}: done, {pages}{self.done:,} {self.unit} in {duration(elapsed)} "
                f"({self._rate(elapsed):,.0f} {self.unit}/s)"
            )
        self.log.info(line)

    def _rate(self, elapsed: float) -> float:
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now: float) -> str:
        elapsed = now - self.started
        rate = self._rate(elapsed)
        pages = f"{self.pages:,} page{'' if self.pages == 1 else 's'}, " if self.pages else ""
        if self.total:
            share = min(100, int(100 * self.done / self.total))
            done = f"{self.done:,}/{self.total:,} {self.unit} ({share}%)"
            left = max(0, self.total - self.done)
            eta = f"ETA {duration(left / rate)}" if rate > 0 else "ETA unknown"
        else:
            done = f"{self.done:,} {self.unit}"
            eta = "ETA unknown (total not announced)"
        return f"{self.what}: {pages}{done}, {rate:,.0f} {self.unit}/s, {eta}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.finish()


_TERMINAL_HANDLER_ATTR = "_evpipeline_terminal"


def to_terminal(stream: IO[str] | None = None, prefix: str = "     ") -> logging.Handler:
    """Also print progress lines on the terminal (the CLI, the demo); idempotent per stream."""
    target = stream or sys.stderr
    log = logger()
    for handler in log.handlers:
        if getattr(handler, _TERMINAL_HANDLER_ATTR, None) is target:
            return handler
    handler = logging.StreamHandler(target)
    handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    handler.setLevel(logging.INFO)
    setattr(handler, _TERMINAL_HANDLER_ATTR, target)
    log.addHandler(handler)
    return handler
