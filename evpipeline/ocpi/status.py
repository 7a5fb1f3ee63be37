"""OCPI status codes inside HTTP 2xx, for every client of an OCPI-style API (GreenFlux, NDW push).

OCPI answers a syntactically valid request with HTTP 200 and puts the outcome in the body's
`status_code`: 1xxx success, 2xxx the client's fault, 3xxx the server's, 4xxx a hub's. Some
platforms (GreenFlux) also report rate limiting that way, with a 2xxx or 3xxx code and a message
such as "rate limit exceeded". `ocpi_check` turns that into the shared HTTP layer's vocabulary:
- 1xxx, a bare JSON array, or a body without `status_code`: accepted;
- a rate-limit message (whatever the code): retried with backoff, like HTTP 429;
- 3xxx / 4xxx: retried with backoff, like HTTP 5xx, then `OcpiError`;
- 2xxx (and anything else): `OcpiError` at once, naming the request; retrying cannot help.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import requests

from evpipeline.http import HttpClient, OcpiError, RetryableResponse, parse_retry_after, redact_url

RATE_LIMIT = re.compile(r"rate[\s_-]?limit|too many requests|throttl", re.IGNORECASE)
# "try again in 2 seconds", "retry after 1.5 s"
RETRY_HINT = re.compile(r"\b(?:in|after)\s+(\d+(?:\.\d+)?)\s*(?:s|secs?|seconds?)\b", re.IGNORECASE)


def ocpi_body(response: requests.Response) -> Any:
    """The decoded body; `HttpClient.get_json` has already parsed it before `check` runs."""
    if hasattr(response, "_evp_json"):  # reuse that parse: a large page is not decoded twice
        return response._evp_json
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def ocpi_status(body: Any) -> tuple[int | None, str]:
    """(status_code, status_message) of an OCPI envelope; (None, "") for anything else."""
    if not isinstance(body, dict) or "status_code" not in body:
        return None, ""
    try:
        code = int(body["status_code"])
    except (TypeError, ValueError):
        code = 0  # an envelope with a nonsense code is not a success
    return code, str(body.get("status_message") or body.get("message") or "")


def retry_hint(response: requests.Response, message: str) -> float | None:
    """Seconds to wait, from a Retry-After header on the 200 or a hint in the message."""
    header = parse_retry_after(response.headers.get("Retry-After"))
    if header is not None:
        return header
    match = RETRY_HINT.search(message)
    return float(match.group(1)) if match else None


def ocpi_check(http: HttpClient) -> Callable[[requests.Response], None]:
    """A `check` hook for `http.request`/`http.get_json` that applies OCPI status codes."""

    def check(response: requests.Response) -> None:
        code, message = ocpi_status(ocpi_body(response))
        if code is None or 1000 <= code < 2000:
            return
        reason = f"OCPI status_code {code}: {message or 'no status_message'}"
        if RATE_LIMIT.search(message):
            raise RetryableResponse(reason, retry_after=retry_hint(response, message))
        if 3000 <= code < 5000:
            raise RetryableResponse(reason, retry_after=retry_hint(response, message), give_up=OcpiError)
        raise OcpiError(
            reason,
            ocpi_status=code,
            api=http.api,
            method=response.request.method or "GET",
            url=redact_url(response.url, http.auth.secrets()),
            status=response.status_code,
            body=http.excerpt(response),
        )

    return check
