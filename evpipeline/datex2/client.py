"""The DATEX II push client: AFIR publications POSTed to the access point's receiver.

The static publication goes to `{base}/static` (a complete table: it replaces the previous one), a
status publication (message container, `snapshotPush` or `deltaPush`) to `{base}/status`, with
`Authorization: Bearer <DATEX2_PUSH_TOKEN>`. Every push goes through the one HTTP layer
(`evpipeline.http`: timeouts, retries with backoff honouring Retry-After, secret scrubbing) and
comes back as a `Datex2Outcome`:

| receiver answer | outcome | retried? |
|---|---|---|
| 200 `{"accepted": true}` | `accepted` | - |
| 400 `{"accepted": false, "errors": [...]}` | `refused` (the errors kept) | no: the same document would be refused again |
| 413, 415 | `refused` | no |
| 429, 5xx, connection errors | retried; `failed` when they persist | yes |
| 401, 403 | raises `Datex2AuthError` | no |

Bodies are streamed from a file (a static table of a national fleet is hundreds of MB) and sent
again from the start on a retry.
"""  # noqa: E501 (Markdown table rows cannot wrap)

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from evpipeline.datex2.publication import Creator
from evpipeline.http import (
    TRANSIENT_STATUSES,
    AuthError,
    BearerAuth,
    ClientError,
    HttpClient,
    HttpError,
    RetryPolicy,
)

API = "datex2-push"


@dataclass
class Datex2Outcome:
    """One push and the receiver's answer, as recorded in `ops.datex2_pushes`."""

    document: str  # static | status
    protocol: str  # table | snapshotPush | deltaPush
    outcome: str  # accepted | refused | failed | unauthorized
    http_status: int | None = None
    message: str = ""  # the receiver's errors (first ones), or why it failed
    delivery: str | None = None  # the receiver's delivery id
    attempts: int = 0
    elapsed_ms: float = 0.0
    bytes: int = 0
    request_id: str = ""
    pushed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.outcome == "accepted"

    @property
    def answered(self) -> bool:
        """The receiver decided (accepted or refused for good): nothing to try again."""
        return self.outcome in ("accepted", "refused")


class Datex2AuthError(AuthError):
    """The receiver refused our token: the run must fail, loudly."""


class Datex2PushClient:
    """POSTs publications to the receiver; never raises for its answers except 401/403."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def close(self) -> None:
        self.http.close()

    def push(self, document: str, protocol: str, body: Path) -> Datex2Outcome:
        """POST the file `body` (a static payload or a status message container) to `{base}/{document}`."""
        if document not in ("static", "status"):
            raise ValueError(f"unknown DATEX II document {document!r}")
        request_id = str(uuid.uuid4())
        outcome = Datex2Outcome(
            document, protocol, "failed", request_id=request_id, bytes=body.stat().st_size
        )
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Request-ID": request_id,
        }
        started, requests_before = time.perf_counter(), self.http.stats.requests
        try:
            response = self.http.request(
                "POST", document, data=lambda: body.open("rb"), headers=headers, ok=(200, 201, 202)
            )
            outcome.outcome, outcome.http_status = "accepted", response.status_code
            outcome.delivery = _answer(response.content).get("delivery")
        except ClientError as exc:
            outcome.http_status = exc.status
            outcome.outcome = "refused"
            outcome.message = _errors(exc.body_excerpt) or str(exc)
        except AuthError as exc:
            outcome.outcome, outcome.http_status = "unauthorized", exc.status
            outcome.message = self.http.safe(str(exc))[:500]
            outcome.pushed_at = datetime.now(UTC)
            raise Datex2AuthError(
                f"the DATEX II receiver answered HTTP {exc.status}: check DATEX2_PUSH_TOKEN",
                api=exc.api,
                method=exc.method,
                url=exc.url,
                status=exc.status,
                attempts=exc.attempts,
            ) from None
        except HttpError as exc:  # 429/5xx/connection after the retries
            outcome.http_status = exc.status
            outcome.message = str(exc)
        outcome.attempts = max(1, self.http.stats.requests - requests_before)
        outcome.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        outcome.pushed_at = datetime.now(UTC)
        outcome.message = self.http.safe(outcome.message)[:2000]
        return outcome


def _answer(content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _errors(excerpt: str | None) -> str:
    """The receiver's error list from an answer excerpt (best effort: it may be cut short)."""
    if not excerpt:
        return ""
    errors = _answer(excerpt.encode()).get("errors")
    return "; ".join(str(e) for e in errors[:10]) if isinstance(errors, list) else excerpt


class Datex2PushResource(dg.ConfigurableResource):
    """The access point's DATEX II receiver (AFIR static and status publications, pushed)."""

    push_url: str = Field(
        description="Receiver base URL; publications go to {base}/static and {base}/status (DATEX2_PUSH_URL)"
    )
    token: str = Field(description="Bearer token the receiver requires (secret: use dg.EnvVar)")
    publication_creator: str = Field(
        description="publicationCreator as CC:identifier, the identifier the access point "
        "gave us (DATEX2_PUBLICATION_CREATOR)"
    )
    connect_timeout: float = 3.05
    read_timeout: float = Field(
        default=120.0, description="Seconds to wait for the receiver's answer (it validates a whole table)"
    )
    max_attempts: int = Field(
        default=4, description="Tries per push for transient failures (429/5xx/connection)"
    )
    backoff_base: float = Field(
        default=0.5, description="First backoff in seconds (exponential, full jitter)"
    )
    backoff_max: float = Field(default=8.0, description="Longest single backoff")
    max_retry_after: float = Field(
        default=20.0, description="Give up rather than honour a longer Retry-After"
    )

    def creator(self) -> Creator:
        return Creator.parse(self.publication_creator)

    def client(self, *, sleep: Callable[[float], None] = time.sleep) -> Datex2PushClient:
        retry = RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            max_retry_after=self.max_retry_after,
            statuses=TRANSIENT_STATUSES,
        )
        http = HttpClient(
            API,
            self.push_url,
            auth=BearerAuth(self.token),
            retry=retry,
            timeout=(self.connect_timeout, self.read_timeout),
            sleep=sleep,
            pool_size=2,
        )
        return Datex2PushClient(http)
