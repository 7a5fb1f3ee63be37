"""Resources shared by several sources: the push inbox, and the HTTP knobs every API resource has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    request_deadline: float = Field(
        default=600.0,
        description="Seconds one request may take in all: retries, backoffs and a body that trickles in "
        "(a read timeout alone never ends a slow but steady answer)",
    )
    max_response_bytes: int = Field(
        default=512 * 1024 * 1024, description="Largest response body read (decoded); larger ones fail"
    )

    def retry_policy(self) -> RetryPolicy:
        # Every provider answers 500 when its backend fails for a moment (docs/sources.md): retried.
        return RetryPolicy(
            max_attempts=self.max_attempts, backoff_base=self.backoff_base, statuses=TRANSIENT_STATUSES
        )

    def timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def limits(self) -> dict[str, Any]:
        """`HttpClient` keyword arguments: the overall deadline and the size cap of one request."""
        return {"deadline": self.request_deadline, "max_bytes": self.max_response_bytes}


class PushInboxResource(dg.ConfigurableResource):
    """Where push receivers leave deliveries and sensors pick them up (SQLite + downloaded files)."""

    directory: str = Field(description="Inbox directory, normally $EVPIPELINE_DATA_DIR/inbox")

    def open(self) -> Inbox:
        return Inbox(Path(self.directory) / "push.sqlite")

    def files(self, source: str) -> Path:
        path = Path(self.directory) / source
        path.mkdir(parents=True, exist_ok=True)
        return path
