"""What a client did (requests, retries, 429s, bytes), for materialization metadata and the benchmarks.

Apart from the client because it is plain bookkeeping the client only feeds.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestStats:
    """What a client did, for materialization metadata and the benchmarks."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    bytes_received: int = 0
    backoff_seconds: float = 0.0
    first_request_at: float | None = None
    last_response_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, status: int | None, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            self.requests += 1
            if self.first_request_at is None:
                self.first_request_at = now
            self.last_response_at = now
            if status is not None:
                self.statuses[status] += 1
                if status == 429:
                    self.throttled += 1
            self.bytes_received += size

    def as_metadata(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "http_429": self.throttled,
            "bytes_received": self.bytes_received,
        }
