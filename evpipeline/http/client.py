"""`HttpClient`: one session per API with explicit timeouts, an overall deadline and a size cap, the
retry loop (backoff, `Retry-After`, one refresh on 401), `check`/`ok` hooks, JSON decoding and shape
checks, and the paging walk.

The top of `evpipeline.http`: it composes every other module (errors, redaction, retries, rate limits,
request stats, auth, pagination).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from evpipeline import clocks
from evpipeline.http.auth import Auth, NoAuth
from evpipeline.http.errors import (
    AuthError,
    ClientError,
    DeadlineExceeded,
    HttpError,
    RateLimitedError,
    ResponseFormatError,
    ResponseTooLarge,
    RetryableResponse,
    ServerError,
    TransportError,
)
from evpipeline.http.pagination import Page, Paginator, Selector, announced_total, select_data
from evpipeline.http.rate_limits import RateLimiter
from evpipeline.http.redaction import redact_url, scrub
from evpipeline.http.request_stats import RequestStats
from evpipeline.http.retries import RetryPolicy, parse_retry_after
from evpipeline.progress import Progress

log = logging.getLogger("evpipeline.http")

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 30.0)
_EXCERPT = 300
T = TypeVar("T")


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


def _close(body: Any, factory: Any) -> None:
    """Close a body the request opened itself (a callable's file object)."""
    if callable(factory) and hasattr(body, "close"):
        body.close()
