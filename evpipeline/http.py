"""The one HTTP layer every source and the NDW push client use.

One `HttpClient` per API wraps a `requests.Session` with explicit (connect, read) timeouts, a
proactive token-bucket rate limiter shared per API account, retries with exponential backoff and
full jitter on 429/502/503/504 and connection errors (honouring `Retry-After`), auth hooks that
can refresh once on 401, typed errors that carry the status and a body excerpt but never a secret,
and request counters that assets put into their materialization metadata.

Sources extend behaviour through hooks, not copies: `check` lets a caller turn a 200 into a retry
(OCPI 3xxx in the body) or a typed error (OCPI 2xxx), `ok` widens the accepted statuses. List
endpoints declare their paging (`PageNumberPaginator`, `OffsetPaginator`, `PageIndexPaginator`)
and `HttpClient.paginate` walks it; `select` picks the records out of a body and `expect` is the
one shape check, so every "not what the API promises" is the same ResponseFormatError.
"""

from __future__ import annotations

import base64
import email.utils
import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from evpipeline import clocks
from evpipeline.progress import Progress

log = logging.getLogger("evpipeline.http")

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# What every provider answers when its backend fails for a moment (docs/sources.md): retried too.
TRANSIENT_STATUSES = RETRY_STATUSES | {500}
_EXCERPT = 300
T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Errors


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


# --------------------------------------------------------------------------------------------
# Rate limiting


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


# --------------------------------------------------------------------------------------------
# Retry policy


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


# --------------------------------------------------------------------------------------------
# Auth hooks


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


# --------------------------------------------------------------------------------------------
# Counters


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


# --------------------------------------------------------------------------------------------
# Client


def redact_url(url: str, secrets: Iterable[str] = (), params_to_hide: Iterable[str] = ()) -> str:
    """The URL with secret-bearing query values replaced, safe for logs and errors."""
    hidden = {p.lower() for p in params_to_hide} | {
        "key",
        "code",
        "sig",
        "token",
        "password",
        "client_secret",
        "access_token",
    }
    parts = urlsplit(url)
    query = [
        (k, "***" if k.lower() in hidden else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    safe = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="*,:"), ""))
    return scrub(safe, secrets)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class HttpClient:
    """A session for one API: base URL, auth, limiter, retry policy and counters."""

    def __init__(
        self,
        api: str,
        base_url: str,
        *,
        auth: Auth | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        user_agent: str = "evpipeline/0.1 (+https://github.com/evpipeline)",
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        deadline: float | None = None,
        max_bytes: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`timeout` bounds each connect and each read; `deadline` (seconds) bounds a whole logical
        request, retries and a body that trickles in included; `max_bytes` caps a body (decoded)."""
        self.api = api
        self.deadline, self.max_bytes, self._monotonic = deadline, max_bytes, monotonic
        self.base_url = base_url.rstrip("/")
        self.auth: Auth = auth or NoAuth()
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.stats = RequestStats()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "gzip"})

    def url_for(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def safe(self, text: str) -> str:
        return scrub(text, self.auth.secrets())

    def close(self) -> None:
        self.session.close()

    def excerpt(self, response: requests.Response) -> str:
        try:
            text = response.text[:_EXCERPT]
        except Exception:  # an undecodable body is still an excerpt
            text = repr(response.content[:_EXCERPT])
        return self.safe(text.replace("\n", " ").strip())

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        ok: Iterable[int] = (200,),
        check: Callable[[requests.Response], None] | None = None,
        priority: int = 0,
        timeout: tuple[float, float] | None = None,
        auth_required: bool = True,
        allow_redirects: bool = True,
        endpoint_class: str | None = None,
    ) -> requests.Response:
        """Send one logical request, retrying transient failures; returns an accepted response.
        With `allow_redirects=False` a 3xx is not followed: it fails as a ClientError with its status.
        `data` may be a callable returning the body: called per attempt, so a body streamed from a
        file (an open file object, closed after the attempt) can be sent again on a retry."""
        url = self.url_for(path)
        ok_statuses = frozenset(ok)
        attempt, refreshed = 0, False
        deadline_at = None if self.deadline is None else self._monotonic() + self.deadline
        while True:
            attempt += 1
            req_headers = dict(headers or {})
            req_params: dict[str, Any] = dict(params or {})
            if auth_required:
                self.auth.apply(req_headers, req_params)
            safe_url = redact_url(
                requests.Request(method, url, params=req_params).prepare().url or url, self.auth.secrets()
            )
            if self.limiter is not None:
                waited = self._monotonic()
                self.limiter.acquire(priority, endpoint_class)
                if deadline_at is not None:  # our own pacing is not the origin's slowness
                    deadline_at += self._monotonic() - waited
            retry_after: float | None = None
            connect_timeout, read_timeout = timeout or self.timeout
            if deadline_at is not None:
                # No single connect or read may outlast the deadline; the body is read piecewise
                # below, the deadline checked between pieces: a trickle cannot hold us longer.
                left = self._left(deadline_at, method, safe_url, attempt)
                connect_timeout, read_timeout = min(connect_timeout, left), min(read_timeout, left)
            body = data() if callable(data) else data
            try:
                sent = time.time()
                response = self.session.request(
                    method,
                    url,
                    params=req_params,
                    headers=req_headers,
                    json=json_body,
                    data=body,
                    timeout=(connect_timeout, read_timeout),
                    allow_redirects=allow_redirects,
                    stream=True,
                )
                size = self._read_body(response, deadline_at, method, safe_url, attempt)
                # The provider's clock, read against ours around the headers' arrival (evpipeline/clocks.py).
                clocks.observe(
                    self.api, response.headers.get("Date"), sent, sent + response.elapsed.total_seconds()
                )
            except (DeadlineExceeded, ResponseTooLarge):
                _close(body, data)
                self.stats.record(None, 0)
                raise
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                _close(body, data)
                self.stats.record(None, 0)
                reason = type(exc).__name__
                if attempt >= self.retry.max_attempts:
                    raise TransportError(
                        f"{reason} after retries", api=self.api, method=method, url=safe_url, attempts=attempt
                    ) from None
                self._backoff(attempt, None, f"{reason}", method, safe_url, deadline_at)
                continue
            _close(body, data)
            self.stats.record(response.status_code, size)
            status = response.status_code

            if status in ok_statuses:
                if check is None:
                    return response
                try:
                    check(response)
                    return response
                except RetryableResponse as signal:
                    if attempt >= self.retry.max_attempts:
                        raise (signal.give_up or RateLimitedError)(
                            f"still failing after retries: {signal.reason}",
                            api=self.api,
                            method=method,
                            url=safe_url,
                            status=status,
                            body=self.excerpt(response),
                            attempts=attempt,
                        ) from None
                    self._backoff(attempt, signal.retry_after, signal.reason, method, safe_url, deadline_at)
                    continue

            if status == 401 and auth_required and not refreshed and self.auth.refresh():
                refreshed = True
                log.info("%s %s -> 401, refreshed credentials and retrying", method, safe_url)
                continue
            if status in self.retry.statuses:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if attempt >= self.retry.max_attempts or (retry_after or 0) > self.retry.max_retry_after:
                    cls: type[HttpError] = RateLimitedError if status == 429 else ServerError
                    raise cls(
                        "gave up after retries",
                        api=self.api,
                        method=method,
                        url=safe_url,
                        status=status,
                        body=self.excerpt(response),
                        attempts=attempt,
                    )
                self._backoff(attempt, retry_after, f"HTTP {status}", method, safe_url, deadline_at)
                continue
            cls = AuthError if status in (401, 403) else ServerError if status >= 500 else ClientError
            raise cls(
                "request failed",
                api=self.api,
                method=method,
                url=safe_url,
                status=status,
                body=self.excerpt(response),
                attempts=attempt,
            )

    def _left(self, deadline_at: float, method: str, safe_url: str, attempt: int) -> float:
        """Seconds left before `deadline_at`, or DeadlineExceeded."""
        left = deadline_at - self._monotonic()
        if left <= 0:
            raise DeadlineExceeded(
                f"no complete answer within the {self.deadline:g} s deadline",
                api=self.api,
                method=method,
                url=safe_url,
                attempts=attempt,
            )
        return left

    def _read_body(
        self,
        response: requests.Response,
        deadline_at: float | None,
        method: str,
        safe_url: str,
        attempt: int,
    ) -> int:
        """Read the whole body now (a truncated stream fails here), piece by piece: each piece as soon
        as it arrives (`read1`), the deadline and the size cap checked between pieces. Stored where
        `response.content` finds it; returns its size."""
        import urllib3

        body = bytearray()
        try:
            while True:
                if deadline_at is not None:
                    try:
                        self._left(deadline_at, method, safe_url, attempt)
                    except DeadlineExceeded:
                        response.close()
                        raise
                try:
                    piece = response.raw.read1(65536, decode_content=True)
                except urllib3.exceptions.ReadTimeoutError as exc:
                    raise requests.exceptions.ReadTimeout(str(exc)) from None
                except urllib3.exceptions.DecodeError as exc:
                    raise requests.exceptions.ContentDecodingError(str(exc)) from None
                except (urllib3.exceptions.ProtocolError, urllib3.exceptions.SSLError) as exc:
                    raise requests.exceptions.ChunkedEncodingError(str(exc)) from None
                if not piece:
                    break
                body += piece
                if self.max_bytes is not None and len(body) > self.max_bytes:
                    response.close()
                    raise ResponseTooLarge(
                        f"body larger than {self.max_bytes:,} bytes; not read further",
                        api=self.api,
                        method=method,
                        url=safe_url,
                        status=response.status_code,
                        attempts=attempt,
                    )
        except BaseException:
            response.close()
            raise
        response._content = bytes(body)  # what `response.content` returns from now on
        response._content_consumed = True  # type: ignore[attr-defined]  # requests' own flag
        response.raw.release_conn()
        return len(body)

    def _backoff(
        self,
        attempt: int,
        retry_after: float | None,
        reason: str,
        method: str,
        safe_url: str,
        deadline_at: float | None = None,
    ) -> None:
        pause = self.retry.delay(attempt, retry_after, self._rng)
        # Never sleep past the deadline: give up now instead.
        if deadline_at is not None and pause >= deadline_at - self._monotonic():
            raise DeadlineExceeded(
                f"no complete answer within the {self.deadline:g} s deadline ({reason}; the next "
                f"retry would start after it)",
                api=self.api,
                method=method,
                url=safe_url,
                attempts=attempt,
            )
        with self.stats._lock:
            self.stats.retries += 1
            self.stats.backoff_seconds += pause
        log.warning("%s %s: %s, retry %d in %.2fs", method, safe_url, reason, attempt, pause)
        self._sleep(pause)

    def decode_json(self, response: requests.Response) -> Any:
        """The body as JSON, or a ResponseFormatError naming the request."""
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise self.format_error(f"malformed JSON ({exc.__class__.__name__}: {exc})", response) from None

    def format_error(
        self, message: str, response: requests.Response, *, with_body: bool = True
    ) -> ResponseFormatError:
        """A ResponseFormatError naming the request (method, redacted URL, status) with a body excerpt."""
        return ResponseFormatError(
            message,
            api=self.api,
            method=response.request.method or "GET",
            url=redact_url(response.url, self.auth.secrets()),
            status=response.status_code,
            body=self.excerpt(response) if with_body else None,
        )

    def expect(self, value: Any, kind: type[T], what: str, response: requests.Response) -> T:
        """`value` if it is a `kind`, else a ResponseFormatError saying "expected <what>"."""
        if not isinstance(value, kind):
            raise self.format_error(f"expected {what}", response)
        return value

    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Iterable[int] = (200,),
        check: Callable[[requests.Response], None] | None = None,
        priority: int = 0,
        allow_redirects: bool = True,
        endpoint_class: str | None = None,
    ) -> tuple[Any, requests.Response]:
        """GET and decode JSON. A body that fails to parse (e.g. truncated in transit) is retried."""

        decoded: Any = (
            None  # the body of the response that passed the check: `request` returns right after it
        )

        def parse_then_check(response: requests.Response) -> None:
            nonlocal decoded
            if response.status_code == 204 or not response.content:
                decoded = None
            else:
                try:
                    decoded = json.loads(response.content)
                except ValueError as exc:
                    raise RetryableResponse(f"malformed JSON: {exc}", give_up=ResponseFormatError) from None
            if check is not None:
                check(response)

        response = self.request(
            "GET",
            path,
            params=params,
            headers=headers,
            ok=ok,
            check=parse_then_check,
            priority=priority,
            allow_redirects=allow_redirects,
            endpoint_class=endpoint_class,
        )
        return decoded, response

    def paginate(
        self,
        path: str,
        paginator: Paginator,
        *,
        params: Mapping[str, Any] | None = None,
        select: Selector = None,
        what: str = "a list of records",
        headers: Mapping[str, str] | None = None,
        ok: Iterable[int] = (200,),
        check: Callable[[requests.Response], None] | None = None,
        priority: int = 0,
        endpoint_class: str | None = None,
    ) -> Iterator[Page]:
        """GET every page of a list endpoint as `paginator` declares it, one request per page.

        `select` picks the records out of each body (they must be a list: "expected <what>"
        otherwise). Pages are yielded as they arrive, each only once its paging fields were checked,
        so a caller can process and drop them. A 304 (when `ok` allows it) is a last, empty page.
        """
        query = paginator.first()
        number = 0
        progress = Progress(
            f"{self.api} GET {path}", unit="rows"
        )  # logs pages, rows, rate, ETA on long walks
        while True:
            number += 1
            body, response = self.get_json(
                path,
                params={**(params or {}), **query},
                headers=headers,
                ok=ok,
                check=check,
                priority=priority,
                endpoint_class=endpoint_class,
            )
            if response.status_code == 304:
                yield Page([], query, body, response, number)
                progress.finish()
                return
            page = Page(
                self.expect(select_data(body, select), list, what, response), query, body, response, number
            )
            query_after = paginator.after(page, self)
            progress.set_total(announced_total(page, paginator))
            progress.advance(len(page.records), pages=1)
            yield page
            if query_after is None:
                progress.finish()
                return
            query = query_after


# --------------------------------------------------------------------------------------------
# Paging, in the spirit of dlt's rest_api paginators: a client declares how its API pages.

Selector = str | Callable[[Any], Any] | None


def _close(body: Any, factory: Any) -> None:
    """Close a body the request opened itself (a callable's file object)."""
    if callable(factory) and hasattr(body, "close"):
        body.close()


def select_data(body: Any, selector: Selector) -> Any:
    """The part of `body` a dotted path names (None when absent), what a callable returns, or the body."""
    if selector is None:
        return body
    if callable(selector):
        return selector(body)
    for key in selector.split("."):
        body = body.get(key) if isinstance(body, dict) else None
    return body


@dataclass
class Page:
    """One fetched page: its records, the paging query that asked for it,
    the decoded body and the response."""

    records: list[Any]
    query: dict[str, Any]
    body: Any
    response: requests.Response
    number: int  # 1 for the first request of the walk


@dataclass
class Pull:
    """Every record of a paged list, the server time of its first page (its as-of) and the pages read."""

    records: list[dict[str, Any]]
    server_time: datetime
    pages: int


class Paginator(Protocol):
    """How a list endpoint pages. Stateless: one paginator serves any number of walks and threads."""

    def first(self) -> dict[str, Any]:
        """The paging parameters of the first page."""
        ...

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        """The paging parameters of the page after `page`; None when `page` was the last."""
        ...


@dataclass(frozen=True)
class PageNumberPaginator:
    """Page numbers (`param` = start, start + 1, ...) while the body's `has_more` flag is truthy."""

    param: str = "page"
    has_more: str = "hasMore"
    start: int = 1

    def first(self) -> dict[str, Any]:
        return {self.param: self.start}

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        if not select_data(page.body, self.has_more):
            return None
        return {self.param: page.query[self.param] + 1}


@dataclass(frozen=True)
class OffsetPaginator:
    """`offset`/`limit` until a short page. The server may cap the limit in a header (OCPI `X-Limit`):
    a page of the capped size is then not the last one."""

    limit: int
    offset_param: str = "offset"
    limit_param: str = "limit"
    cap_header: str | None = "X-Limit"

    def first(self) -> dict[str, Any]:
        return {self.offset_param: 0, self.limit_param: self.limit}

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        cap = _positive_int(page.response.headers.get(self.cap_header)) if self.cap_header else None
        if len(page.records) < min(self.limit, cap or self.limit):
            return None
        return {
            self.offset_param: page.query[self.offset_param] + len(page.records),
            self.limit_param: self.limit,
        }


@dataclass(frozen=True)
class PageIndexPaginator:
    """Page indexes (`index_param` = start, start + 1, ...) up to the page count the body reports."""

    size: int
    index_param: str = "PageIndex"
    size_param: str = "PageSize"
    count: str = "Pages"
    start: int = 0

    def first(self) -> dict[str, Any]:
        return {self.index_param: self.start, self.size_param: self.size}

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        pages = http.expect(
            select_data(page.body, self.count),
            int,
            f"an integer {self.count!r} (the page count)",
            page.response,
        )
        index = page.query[self.index_param] + 1
        return {self.index_param: index, self.size_param: self.size} if index - self.start < pages else None


def announced_total(page: Page, paginator: Paginator) -> int | None:
    """How many records the whole walk holds, when the API says so (for progress and its ETA): OCPI's
    `X-Total-Count`, or a page count times the page size."""
    total = _positive_int(page.response.headers.get("X-Total-Count"))
    if total is None and isinstance(paginator, PageIndexPaginator):
        pages = select_data(page.body, paginator.count)
        total = pages * paginator.size if isinstance(pages, int) and pages > 0 else None
    return total


def _positive_int(value: str | None) -> int | None:
    """A header's integer value; None when absent, malformed or not positive."""
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number and number > 0 else None
