"""Auth hooks: how a client proves itself per request (headers, query parameters) and refreshes once
on a 401, and which secret values must never be logged.

Static keys and tokens need nothing else of the layer; `OAuth2Bearer` fetches its token through an
`HttpClient` it is given (type-only reference to `client`, which sits above this module).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from evpipeline.http.errors import AuthError, ClientError

if TYPE_CHECKING:
    from evpipeline.http.client import HttpClient


class Auth(Protocol):
    """How a client proves itself: headers and query parameters per request, refresh on 401."""

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None: ...

    def refresh(self) -> bool:
        """Called once after a 401; True when a retry may now succeed."""
        ...

    def secrets(self) -> Iterable[str]:
        """Values that must never appear in a log line, metadata or exception."""
        ...


class NoAuth:
    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        return None

    def refresh(self) -> bool:
        return False

    def secrets(self) -> Iterable[str]:
        return ()


@dataclass
class HeaderKeyAuth:
    """A static key in a header, e.g. Azure APIM's `Ocp-Apim-Subscription-Key`."""

    header: str
    key: str

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers[self.header] = self.key

    def refresh(self) -> bool:
        return False

    def secrets(self) -> Iterable[str]:
        return (self.key,)


@dataclass
class QueryKeyAuth:
    """A static key in the query string, e.g. TomTom's `key=`; redacted from every URL we log."""

    param: str
    key: str

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        params[self.param] = self.key

    def refresh(self) -> bool:
        return False

    def secrets(self) -> Iterable[str]:
        return (self.key,)


@dataclass
class TokenAuth:
    """OCPI `Authorization: Token <token>`; OCPI 2.2.1 base64-encodes it, 2.1.1 APIs do not."""

    token: str
    base64_encode: bool = False

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        value = base64.b64encode(self.token.encode()).decode() if self.base64_encode else self.token
        headers["Authorization"] = f"Token {value}"

    def refresh(self) -> bool:
        return False

    def secrets(self) -> Iterable[str]:
        return (self.token, base64.b64encode(self.token.encode()).decode())


@dataclass
class BearerAuth:
    """A static bearer token (`Authorization: Bearer <token>`), e.g. a receiver's push token."""

    token: str

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers["Authorization"] = f"Bearer {self.token}"

    def refresh(self) -> bool:
        return False

    def secrets(self) -> Iterable[str]:
        return (self.token,)


class OAuth2Bearer:
    """OAuth2 bearer tokens (password or client-credentials grant), cached until shortly before expiry.

    The token request goes through its own `HttpClient` so it gets the same timeouts, retries and
    (for APIs such as Zaptec, whose token endpoint allows ~1 request/s) its own rate limiter. Threads
    share one token; when it dies each of them sees a 401, and only the first refresh drops it, so
    the token endpoint is asked once, not once per thread. A token endpoint that refuses the
    credentials (400 `invalid_grant`/`invalid_client`, or 401) is an AuthError naming `credentials`.
    """

    def __init__(
        self,
        token_client: HttpClient,
        token_path: str,
        form: Mapping[str, str],
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        credentials: str = "the OAuth2 client credentials",
    ) -> None:
        self._client, self._path, self._form = token_client, token_path, dict(form)
        self._margin, self._clock = refresh_margin, clock
        self._credentials = credentials
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self._sent = threading.local()  # the token this thread's last request carried
        self.tokens_fetched = 0

    def _fetch(self) -> None:
        try:
            response = self._client.request(
                "POST",
                self._path,
                data=self._form,
                headers={"Accept": "application/json"},
                auth_required=False,
            )
        except ClientError as exc:
            if exc.status in (400, 401):
                raise AuthError(
                    f"the token endpoint refused the credentials (check {self._credentials})",
                    api=exc.api,
                    method=exc.method,
                    url=exc.url,
                    status=exc.status,
                    body=exc.body_excerpt,
                    attempts=exc.attempts,
                ) from None
            raise
        body = self._client.decode_json(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            # No body excerpt: a token response may carry credentials under a name we do not know.
            raise self._client.format_error("token response has no access_token", response, with_body=False)
        self._token = str(token)
        self._expires_at = self._clock() + float(body.get("expires_in") or 3600)
        self.tokens_fetched += 1

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - self._margin:
                self._fetch()
            assert self._token is not None
            return self._token

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        token = self.token()
        self._sent.value = token
        headers["Authorization"] = f"Bearer {token}"

    def refresh(self) -> bool:
        with self._lock:
            if self._token is not None and getattr(self._sent, "value", None) == self._token:
                self._token = None  # the token that failed; one another thread already renewed is kept
        return True

    def secrets(self) -> Iterable[str]:
        values = [
            v for k, v in self._form.items() if k in {"password", "client_secret", "username", "client_id"}
        ]
        return [*values, *([self._token] if self._token else [])]
