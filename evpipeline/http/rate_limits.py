"""Proactive rate limiting: a token bucket with priorities and per-endpoint-class budgets, shared per
API account in the process.

Apart from the client because a limiter outlives any one client (`shared_limiter`) and the benchmarks
drive it alone.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence


class RateLimiter:
    """Token bucket that callers wait on *before* sending, so the API never has to say 429.

    `rate` tokens per second refill a bucket of `burst`. Waiters are served by priority (lower
    number first), then arrival: a state poll at priority 0 never starves behind a bulk refresh
    queued at priority 10. Endpoint classes add budgets of their own on top (`windows`: at most
    `count` requests in any `seconds`, e.g. Zaptec's list endpoints, 30 a minute and 150 per 30
    minutes): a request of a class waits for its class's window outside the queue, so it never
    holds up requests of other classes.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        windows: Mapping[str, Sequence[tuple[int, float]]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = float(rate), float(burst)
        self.windows = {name: tuple(limits) for name, limits in (windows or {}).items()}
        self._clock, self._sleep = clock, sleep
        self._tokens, self._stamp = self.burst, clock()
        self._lock = threading.Lock()
        self._waiters: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._granted: dict[str, deque[float]] = {name: deque() for name in self.windows}
        self.waited_seconds = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def _class_wait(self, endpoint_class: str | None, now: float) -> float:
        """Seconds until `endpoint_class` may send again (0: now). Call with the lock held."""
        if endpoint_class is None or endpoint_class not in self.windows:
            return 0.0
        granted = self._granted[endpoint_class]
        longest = max(seconds for _, seconds in self.windows[endpoint_class])
        while granted and granted[0] <= now - longest:
            granted.popleft()
        wait = 0.0
        for count, seconds in self.windows[endpoint_class]:
            inside = [t for t in granted if t > now - seconds]
            if len(inside) >= count:
                wait = max(wait, inside[len(inside) - count] + seconds - now)
        return wait

    def acquire(self, priority: int = 0, endpoint_class: str | None = None) -> float:
        """Block until a token (and the class's budget) is ours; returns the seconds waited."""
        started = self._clock()
        while True:
            with self._lock:
                class_wait = self._class_wait(endpoint_class, self._clock())
            if class_wait <= 0:
                break
            self._sleep(min(class_wait, 0.25))
        ticket = (priority, next(self._seq))
        with self._lock:
            heapq.heappush(self._waiters, ticket)
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if self._waiters[0] == ticket and self._tokens >= 1:
                    if self._class_wait(endpoint_class, now) > 0:
                        # Another request of the class took the last slot meanwhile: wait again,
                        # out of the queue.
                        heapq.heappop(self._waiters)
                        return self.acquire(priority, endpoint_class) + (now - started)
                    heapq.heappop(self._waiters)
                    self._tokens -= 1
                    if endpoint_class in self._granted:
                        self._granted[endpoint_class].append(now)
                    waited = now - started
                    self.waited_seconds += waited
                    return waited
                # Sleep until the next token (or briefly, if someone ahead of us will take it).
                deficit = max(0.0, 1 - self._tokens)
                pause = deficit / self.rate if self._waiters[0] == ticket else max(deficit / self.rate, 0.001)
            self._sleep(min(max(pause, 0.0005), 0.25))


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(
    name: str,
    rate: float,
    burst: float = 1.0,
    windows: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> RateLimiter:
    """One limiter per API account in this process, however many clients are built for it."""
    wanted = {k: tuple(v) for k, v in (windows or {}).items()}
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(name)
        if limiter is None or (limiter.rate, limiter.burst, limiter.windows) != (
            float(rate),
            float(burst),
            wanted,
        ):
            limiter = _LIMITERS[name] = RateLimiter(rate, burst, windows=wanted)
        return limiter
