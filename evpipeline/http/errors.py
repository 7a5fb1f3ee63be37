"""The typed errors of the HTTP layer, and the `RetryableResponse` signal a `check` hook raises.

The bottom of `evpipeline.http`: every other module raises or catches these, and callers catch them
without importing the client. Each error carries the status and a body excerpt but never a secret.
"""

from __future__ import annotations

from typing import Any


class HttpError(Exception):
    """A request that did not succeed; carries what support needs and no secret."""

    def __init__(
        self,
        message: str,
        *,
        api: str,
        method: str,
        url: str,
        status: int | None = None,
        body: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.api, self.method, self.url, self.status = api, method, url, status
        self.body_excerpt, self.attempts = body, attempts
        where = f"{api} {method} {url}"
        status_part = f" -> HTTP {status}" if status is not None else ""
        body_part = f": {body}" if body else ""
        super().__init__(f"{message} ({where}{status_part}, {attempts} attempt(s)){body_part}")


class ClientError(HttpError):
    """4xx the caller must fix (bad parameters, unknown resource); never retried."""


class AuthError(HttpError):
    """401/403: credentials missing, wrong or expired and not refreshable."""


class RateLimitedError(HttpError):
    """429s kept coming after every retry."""


class ServerError(HttpError):
    """5xx that persisted through the retries, or a non-retryable 500."""


class TransportError(HttpError):
    """Connection errors or timeouts that persisted through the retries."""


class DeadlineExceeded(TransportError):
    """No complete answer within the request's overall deadline (retries included): a slow origin.
    Not retried: the deadline is the whole request's budget."""


class ResponseTooLarge(HttpError):
    """The body grew past the client's size cap; the rest was not read."""


class ResponseFormatError(HttpError):
    """The body is not what the API promises (malformed or truncated JSON, wrong shape)."""


class OcpiError(HttpError):
    """An OCPI `status_code` outside 1xxx in an HTTP success (see `evpipeline.ocpi.status`)."""

    def __init__(self, message: str, *, ocpi_status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.ocpi_status = ocpi_status


class RetryableResponse(Exception):  # a signal, not an error shown to users
    """Raised by a `check` hook to retry a response the API sent with a success status."""

    def __init__(
        self, reason: str, retry_after: float | None = None, give_up: type[HttpError] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after
        # What to raise once retries are exhausted (default: the API kept refusing -> rate limited).
        self.give_up = give_up
