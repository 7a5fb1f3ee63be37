"""Fault injection and the server-side rate limits simulators enforce."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Script(Generic[_T]):
    """One-shot answers queued for the next requests whose path contains a given part, in order."""

    def __init__(self) -> None:
        self._queue: deque[tuple[_T, str | None]] = deque()
        self._lock = threading.Lock()

    def add(self, item: _T, count: int = 1, path: str | None = None) -> None:
        with self._lock:
            self._queue.extend([(item, path)] * count)

    def take(self, path: str) -> _T | None:
        """The first queued item meant for `path` (removed), or None."""
        with self._lock:
            for i, (item, only) in enumerate(self._queue):
                if only is None or only in path:
                    del self._queue[i]
                    return item
        return None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


@dataclass
class Faults:
    """Fault-injection knobs. Scripted faults apply to the next matching requests, in order."""

    latency: float = 0.0  # seconds added to every request
    bad_auth: bool = False  # reject every credential
    timeout_seconds: float = 5.0  # how long a "timeout" fault stalls before answering
    retry_after: float = 1.0  # Retry-After sent with injected 429s
    trickle_seconds: float = 0.2  # a "trickle" fault sends its body a byte at a time, this far apart
    _script: Script[str] = field(default_factory=Script, repr=False)

    KINDS = ("429", "500", "502", "503", "504", "timeout", "truncate", "disconnect", "trickle")

    def inject(self, kind: str, count: int = 1, path: str | None = None) -> None:
        """Queue `count` faults of `kind` for the next requests whose path contains `path`."""
        if kind not in self.KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {self.KINDS}")
        self._script.add(kind, count, path)

    def clear(self) -> None:
        self._script.clear()
        self.latency, self.bad_auth = 0.0, False

    def take(self, path: str) -> str | None:
        return self._script.take(path)

    @property
    def pending(self) -> int:
        return len(self._script)


class ServerRateLimit:
    """Enforced API limit: a token bucket per account (an empty bucket answers 429), plus optional
    budgets per endpoint class: at most `count` requests in any `seconds` (`windows`)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        retry_after: float | None = None,
        windows: dict[str, list[tuple[int, float]]] | None = None,
    ) -> None:
        self.rate, self.burst, self.retry_after = rate, burst, retry_after
        self.windows = windows or {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._granted: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, account: str, endpoint_class: str | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the request would be)."""
        now = time.monotonic()
        with self._lock:
            if endpoint_class in self.windows:
                granted = self._granted.setdefault((account, endpoint_class), deque())
                wait = 0.0
                for count, seconds in self.windows[endpoint_class]:
                    inside = [t for t in granted if t > now - seconds]
                    if len(inside) >= count:
                        wait = max(wait, inside[len(inside) - count] + seconds - now)
                if wait > 0:
                    return False, wait
            tokens, stamp = self._buckets.get(account, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1:
                self._buckets[account] = (tokens - 1, now)
                if endpoint_class in self.windows:
                    self._granted[(account, endpoint_class)].append(now)
                return True, 0.0
            self._buckets[account] = (tokens, now)
            return False, (1 - tokens) / self.rate
