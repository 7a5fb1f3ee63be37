"""When and how long to retry: the retried statuses, exponential backoff with full jitter, and
`Retry-After` (delta-seconds or HTTP-date).

Apart from the client because resources and sources declare retry policies and statuses of their own.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# What every provider answers when its backend fails for a moment (docs/sources.md): retried too.
TRANSIENT_STATUSES = RETRY_STATUSES | {500}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; `Retry-After` wins when the server sends one."""

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    statuses: frozenset[int] = RETRY_STATUSES

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            # A small jitter on top keeps many clients told "1 s" from returning in lockstep.
            return min(retry_after, self.max_retry_after) + rng.uniform(0, 0.1)
        return rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
