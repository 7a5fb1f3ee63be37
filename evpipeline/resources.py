"""Resources shared by several sources: the push inbox, and the HTTP knobs every API resource has."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from evpipeline.http import TRANSIENT_STATUSES, RetryPolicy
from evpipeline.inbox import Inbox


class ApiResource(dg.ConfigurableResource):
    """Timeouts and retries of one provider API; each source's resource adds its endpoint and secrets."""

    connect_timeout: float = Field(default=3.05, description="Seconds to open a connection")
    read_timeout: float = Field(default=30.0, description="Seconds to wait for an answer")
    max_attempts: int = Field(
        default=5, description="Tries per request for transient failures (429, 5xx, connection)"
    )
    backoff_base: float = Field(
        default=0.5, description="First backoff in seconds (exponential, full jitter)"
    )

    def retry_policy(self) -> RetryPolicy:
        # Every provider answers 500 when its backend fails for a moment (docs/sources.md): retried.
        return RetryPolicy(
            max_attempts=self.max_attempts, backoff_base=self.backoff_base, statuses=TRANSIENT_STATUSES
        )

    def timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


class PushInboxResource(dg.ConfigurableResource):
    """Where push receivers leave deliveries and sensors pick them up (SQLite + downloaded files)."""

    directory: str = Field(description="Inbox directory, normally $EVPIPELINE_DATA_DIR/inbox")

    def open(self) -> Inbox:
        return Inbox(Path(self.directory) / "push.sqlite")

    def files(self, source: str) -> Path:
        path = Path(self.directory) / source
        path.mkdir(parents=True, exist_ok=True)
        return path
