"""The shared HTTP layer against a real loopback server: retries, limits, auth, typed errors, secrets."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from evpipeline.http import (
    AuthError,
    ClientError,
    HeaderKeyAuth,
    HttpClient,
    OAuth2Bearer,
    OffsetPaginator,
    PageIndexPaginator,
    PageNumberPaginator,
    QueryKeyAuth,
    RateLimitedError,
    RateLimiter,
    ResponseFormatError,
    RetryableResponse,
    RetryPolicy,
    ServerError,
    TokenAuth,
    TransportError,
    parse_retry_after,
    redact_url,
    select_data,
)
from evpipeline.simulators.toolkit import HttpReply, Request, Response, SimServer
from evpipeline_tests.typed import running

SECRET = "s3cr3t-key-value"


class EchoServer(SimServer):
    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.tokens_issued = 0
        self.valid_token = "tok-1"
        self.issue_invalid = False
        self.route("GET", r"/data", self._data)
        self.route("GET", r"/secured", self._secured)
        self.route("POST", r"/token", self._token)
        self.route("GET", r"/bearer", self._bearer)
        self.route(
            "GET", r"/missing", lambda r: Response.json({"error": f"no such thing, key={SECRET}"}, 404)
        )
        self.route("GET", r"/crash", lambda r: Response.json({"error": "boom"}, 500))

    def _data(self, request: Request) -> Response:
        return Response.json({"items": list(range(50)), "echo": request.query})

    def _secured(self, request: Request) -> Response:
        if request.header("X-Key") != SECRET:
            raise HttpReply(Response.json({"message": "bad key"}, 401))
        return Response.json({"ok": True})

    def _token(self, request: Request) -> Response:
        self.tokens_issued += 1
        issued = f"tok-{self.tokens_issued}"
        if not self.issue_invalid:
            self.valid_token = issued
        return Response.json({"access_token": issued, "expires_in": 3600, "token_type": "Bearer"})

    def _bearer(self, request: Request) -> Response:
        if request.header("Authorization") != f"Bearer {self.valid_token}":
            return Response.json({"message": "expired"}, 401)
        return Response.json({"ok": True})


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with running(EchoServer()) as s:
        yield s


def client(server: SimServer, sleeps: list[float] | None = None, **kwargs: object) -> HttpClient:
    recorded = sleeps if sleeps is not None else []
    return HttpClient(
        "echo",
        server.url,
        retry=RetryPolicy(max_attempts=4, backoff_base=0.01),
        timeout=(1.0, 0.5),
        sleep=recorded.append,
        seed=1,
        **kwargs,  # type: ignore[arg-type]  # pass-through HttpClient keywords, typed object
    )


@pytest.mark.parametrize("fault", ["429", "502", "503", "504", "truncate", "disconnect", "timeout"])
def test_transient_faults_are_retried_and_counted(server: EchoServer, fault: str) -> None:
    server.faults.timeout_seconds = 1.0
    server.faults.inject(fault, count=2)
    sleeps: list[float] = []
    http = client(server, sleeps)
    body, _ = http.get_json("data")
    assert body["items"] == list(range(50))
    assert http.stats.requests == 3 and http.stats.retries == 2 and len(sleeps) == 2


def test_retry_after_is_honoured(server: EchoServer) -> None:
    server.faults.retry_after = 3
    server.faults.inject("429")
    sleeps: list[float] = []
    http = client(server, sleeps)
    http.get_json("data")
    assert 3.0 <= sleeps[0] <= 3.1
    assert http.stats.throttled == 1


def test_backoff_grows_exponentially_with_jitter() -> None:
    import random

    policy = RetryPolicy(backoff_base=1.0, backoff_max=100)
    rng = random.Random(3)
    caps = [1, 2, 4, 8]
    delays = [policy.delay(attempt, None, rng) for attempt in (1, 2, 3, 4)]
    assert all(0 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == 4  # jittered, not lockstep


def test_persistent_429_and_5xx_become_typed_errors(server: EchoServer) -> None:
    server.faults.retry_after = 0
    server.faults.inject("429", count=10)
    with pytest.raises(RateLimitedError) as excinfo:
        client(server).get_json("data")
    assert excinfo.value.status == 429 and excinfo.value.attempts == 4
    server.faults.clear()
    server.faults.inject("503", count=10)
    with pytest.raises(ServerError):
        client(server).get_json("data")


def test_500_and_4xx_are_not_retried(server: EchoServer) -> None:
    http = client(server)
    with pytest.raises(ServerError):
        http.get_json("crash")
    with pytest.raises(ClientError) as excinfo:
        http.get_json("missing")
    assert excinfo.value.status == 404 and http.stats.requests == 2 and http.stats.retries == 0


def test_truncated_json_that_never_recovers_is_a_format_error(server: EchoServer) -> None:
    server.faults.inject("truncate", count=10)
    with pytest.raises(ResponseFormatError):
        client(server).get_json("data")


def test_connection_refused_is_a_transport_error() -> None:
    dead = HttpClient(
        "dead",
        "http://127.0.0.1:9",
        retry=RetryPolicy(max_attempts=2, backoff_base=0.001),
        sleep=lambda s: None,
    )
    with pytest.raises(TransportError):
        dead.get_json("anything")


def test_bad_key_is_an_auth_error_without_the_secret(server: EchoServer) -> None:
    http = client(server, auth=HeaderKeyAuth("X-Key", "wrong-" + SECRET))
    with pytest.raises(AuthError) as excinfo:
        http.get_json("secured")
    assert excinfo.value.status == 401
    assert SECRET not in str(excinfo.value)
    ok, _ = client(server, auth=HeaderKeyAuth("X-Key", SECRET)).get_json("secured")
    assert ok == {"ok": True}


def test_secrets_never_appear_in_errors(server: EchoServer) -> None:
    http = client(server, auth=QueryKeyAuth("key", SECRET))
    with pytest.raises(ClientError) as excinfo:
        http.get_json("missing")
    message = str(excinfo.value)
    assert SECRET not in message and "key=***" in message
    assert "***" in (excinfo.value.body_excerpt or "")


def test_redact_url_hides_signature_and_keys() -> None:
    url = "https://blob.example/x.json?sv=2021&se=2026-01-01T00%3A00%3A00Z&sig=abcdef&key=k"
    safe = redact_url(url)
    assert "abcdef" not in safe and "sig=***" in safe and "key=***" in safe and "sv=2021" in safe


def test_token_auth_encodings() -> None:
    headers: dict[str, str] = {}
    TokenAuth("example-token", base64_encode=True).apply(headers, {})
    assert headers["Authorization"] == "Token ZXhhbXBsZS10b2tlbg=="
    TokenAuth("example-token").apply(headers, {})
    assert headers["Authorization"] == "Token example-token"


def test_oauth2_bearer_refreshes_once_on_401(server: EchoServer) -> None:
    token_client = client(server)
    bearer = OAuth2Bearer(
        token_client, "token", {"grant_type": "password", "username": "u", "password": SECRET}
    )
    http = client(server, auth=bearer)
    assert http.get_json("bearer")[0] == {"ok": True}
    assert bearer.tokens_fetched == 1
    server.valid_token = "expired-by-server"  # the token dies mid-sync
    assert http.get_json("bearer")[0] == {"ok": True}  # 401 -> new token -> retried, no failure
    assert bearer.tokens_fetched == 2
    server.valid_token, server.issue_invalid = "revoked", True  # credentials no longer work
    with pytest.raises(AuthError):
        http.get_json("bearer")
    assert bearer.tokens_fetched == 3  # refreshed exactly once, then a clear error


def test_oauth2_token_cached_until_margin() -> None:
    now = [0.0]

    class FakeTokens:
        api = "fake"

        def __init__(self) -> None:
            self.calls = 0

        def request(self, *args: object, **kwargs: object) -> object:
            self.calls += 1
            return self

        def decode_json(self, response: object) -> dict[str, object]:
            return {"access_token": f"t{self.calls}", "expires_in": 100}

        def url_for(self, path: str) -> str:
            return path

    fake = FakeTokens()
    bearer = OAuth2Bearer(fake, "token", {}, refresh_margin=10, clock=lambda: now[0])  # type: ignore[arg-type]  # FakeTokens stands in for the HttpClient
    assert bearer.token() == "t1"
    now[0] = 89.0
    assert bearer.token() == "t1"
    now[0] = 91.0  # within the margin of expiry: refreshed proactively
    assert bearer.token() == "t2"


def test_check_hook_can_retry_a_200(server: EchoServer) -> None:
    calls = []

    def check(response: object) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RetryableResponse("in-body rate limit", retry_after=0.2)

    sleeps: list[float] = []
    client(server, sleeps).request("GET", "data", check=check)
    assert len(calls) == 3 and all(s >= 0.2 for s in sleeps)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("garbage") is None


def test_rate_limiter_holds_the_rate() -> None:
    limiter = RateLimiter(rate=50, burst=1)
    started = time.monotonic()
    for _ in range(26):
        limiter.acquire()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.49  # 25 refills at 50/s


def test_rate_limiter_refills_at_its_rate_with_a_burst() -> None:
    """With a burst above 1 an idle spell refills several tokens at once, so the refill rate shows
    directly (with burst 1 the limiter's own pacing hides a wrong refill). The clock is injected."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(rate=4, burst=4, clock=lambda: now[0], sleep=sleep)
    assert [limiter.acquire() for _ in range(4)] == [0.0] * 4  # the full bucket, at once
    now[0] = 0.5  # idle half a second: 4/s refills 2 tokens, not the whole bucket
    waits = [limiter.acquire() for _ in range(3)]
    assert waits == [0.0, 0.0, pytest.approx(0.25)]  # the third waits a quarter second for its token
    assert now[0] == pytest.approx(0.75)


def test_rate_limiter_serves_high_priority_first() -> None:
    limiter = RateLimiter(rate=20, burst=1)
    limiter.acquire()  # drain the bucket
    order: list[str] = []

    def take(priority: int, name: str) -> None:
        limiter.acquire(priority=priority)
        order.append(name)

    low = [threading.Thread(target=take, args=(10, "low")) for _ in range(3)]
    for t in low:
        t.start()
    time.sleep(0.01)
    high = threading.Thread(target=take, args=(0, "high"))
    high.start()
    for t in [*low, high]:
        t.join()
    assert order.index("high") <= 1  # jumps the queue of bulk requests


def test_token_endpoint_refusing_credentials_is_an_auth_error(server: EchoServer) -> None:
    server.route("POST", r"/bad-token", lambda r: Response.json({"error": "invalid_grant"}, 400))
    bearer = OAuth2Bearer(
        client(server),
        "bad-token",
        {"grant_type": "password", "password": SECRET},
        credentials="MY_USER and MY_PASSWORD",
    )
    with pytest.raises(AuthError, match="check MY_USER and MY_PASSWORD") as excinfo:
        client(server, auth=bearer).get_json("bearer")
    assert SECRET not in str(excinfo.value)


def test_concurrent_401s_renew_the_token_once(server: EchoServer) -> None:
    bearer = OAuth2Bearer(client(server), "token", {"grant_type": "client_credentials"})
    http = client(server, auth=bearer)
    http.get_json("bearer")
    server.valid_token = "expired-for-everyone"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            barrier.wait()
            http.get_json("bearer")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert bearer.tokens_fetched == 2  # one renewal shared by four threads that all saw a 401


# --------------------------------------------------------------------------------------------
# Paginators, each against the paging style of one provider


class PagingServer(SimServer):
    """One list of records served three ways: page number + has-more flag, offset/limit,
    page index + count."""

    name = "paging"

    def __init__(self, records: int) -> None:
        super().__init__()
        self.items = list(range(records))
        self.cap: int | None = None  # the server's own limit, announced in X-Limit
        self.route("GET", r"/numbered", self._numbered)
        self.route("GET", r"/offset", self._offset)
        self.route("GET", r"/indexed", self._indexed)
        self.route(
            "GET", r"/bad", lambda r: Response.json({"result": {"items": "not a list"}, "Pages": "many"})
        )

    def _numbered(self, request: Request) -> Response:
        if request.header("If-Modified-Since"):
            return Response.empty(304)
        page = int(request.arg("page") or 1)
        chunk = self.items[(page - 1) * 2 : page * 2]
        return Response.json({"result": {"items": chunk}, "more": page * 2 < len(self.items)})

    def _offset(self, request: Request) -> Response:
        offset, limit = int(request.arg("offset") or 0), int(request.arg("limit") or 10)
        size = min(limit, self.cap or limit)
        headers = {"X-Limit": str(self.cap)} if self.cap else {}
        return Response.json({"data": self.items[offset : offset + size]}, headers=headers)

    def _indexed(self, request: Request) -> Response:
        index, size = int(request.arg("PageIndex") or 0), int(request.arg("PageSize") or 10)
        pages = math.ceil(len(self.items) / size)
        return Response.json({"Data": self.items[index * size : (index + 1) * size], "Pages": pages})

    def sent(self, path: str, *params: str) -> list[tuple[str, ...]]:
        """The paging parameters of every request to `path`, in order."""
        return [tuple(r.query[p][0] for p in params) for r in self.requests if r.path == path]


@contextmanager
def paging_server(records: int) -> Iterator[PagingServer]:
    server = PagingServer(records)
    with server:
        yield server


def walk(http: HttpClient, path: str, paginator: Any, **kwargs: Any) -> list[list[Any]]:
    return [page.records for page in http.paginate(path, paginator, **kwargs)]


def test_page_number_paginator_stops_when_has_more_is_false() -> None:
    with paging_server(5) as server:
        http = client(server)
        pages = walk(http, "numbered", PageNumberPaginator(has_more="more"), select="result.items")
        assert pages == [[0, 1], [2, 3], [4]]
        assert server.sent("/numbered", "page") == [("1",), ("2",), ("3",)]


def test_page_number_paginator_ends_on_a_304() -> None:
    with paging_server(5) as server:
        http = client(server)
        pages = list(
            http.paginate(
                "numbered",
                PageNumberPaginator(has_more="more"),
                select="result.items",
                headers={"If-Modified-Since": "Sun, 22 Nov 2026 03:08:47 GMT"},
                ok=(200, 304),
            )
        )
        assert [(p.records, p.number, p.response.status_code) for p in pages] == [([], 1, 304)]
        assert http.stats.requests == 1


@pytest.mark.parametrize(
    "records, expected_offsets", [(7, ["0", "3", "6"]), (6, ["0", "3", "6"]), (0, ["0"])]
)
def test_offset_paginator_stops_on_a_short_page(records: int, expected_offsets: list[str]) -> None:
    with paging_server(records) as server:
        http = client(server)
        pages = walk(
            http, "offset", OffsetPaginator(3), params={"date_from": "2026-01-01T00:00:00Z"}, select="data"
        )
        assert sum(pages, []) == list(range(records))
        assert server.sent("/offset", "offset", "limit") == [(o, "3") for o in expected_offsets]
        # The caller's filters ride along on every page, before the paging parameters.
        assert all(list(r.query) == ["date_from", "offset", "limit"] for r in server.requests)


def test_offset_paginator_honours_the_servers_x_limit_cap() -> None:
    with paging_server(5) as server:
        server.cap = 2  # asked for 4, given 2: a full page of 2 is not the last one
        http = client(server)
        pages = walk(http, "offset", OffsetPaginator(4), select="data")
        assert pages == [[0, 1], [2, 3], [4]]
        assert server.sent("/offset", "offset", "limit") == [("0", "4"), ("2", "4"), ("4", "4")]


@pytest.mark.parametrize("records, requests", [(25, 3), (20, 2), (0, 1)])
def test_page_index_paginator_stops_at_the_page_count(records: int, requests: int) -> None:
    with paging_server(records) as server:
        http = client(server)
        pages = walk(http, "indexed", PageIndexPaginator(10), select="Data")
        assert sum(pages, []) == list(range(records))
        assert server.sent("/indexed", "PageIndex", "PageSize") == [(str(i), "10") for i in range(requests)]


def test_a_page_of_the_wrong_shape_is_a_format_error_naming_the_request() -> None:
    with paging_server(3) as server:
        http = client(server, auth=QueryKeyAuth("key", SECRET))
        with pytest.raises(
            ResponseFormatError,
            match=r"expected a list of widgets \(echo GET .*/bad\?.*key=\*\*\*.* -> HTTP 200",
        ) as excinfo:
            walk(http, "bad", OffsetPaginator(3), select="result.items", what="a list of widgets")
        assert excinfo.value.status == 200 and "not a list" in (excinfo.value.body_excerpt or "")
        assert SECRET not in str(excinfo.value)
        # The records are fine but the page count is not: nothing is yielded, the paging field is named.
        seen: list[Any] = []
        with pytest.raises(ResponseFormatError, match=r"expected an integer 'Pages' \(the page count\)"):
            seen.extend(http.paginate("bad", PageIndexPaginator(3), select=lambda body: [body]))
        assert seen == []


def test_select_data_and_expect() -> None:
    body = {"a": {"b": [1, 2]}, "c": 3}
    assert select_data(body, "a.b") == [1, 2]
    assert select_data(body, "a.x") is None and select_data([1], "a") is None
    assert select_data(body, None) is body
    assert select_data(body, lambda b: b["c"]) == 3


# -- overall deadline and size cap (issue 25): a read timeout alone never ends a steady trickle --


def test_a_trickling_body_ends_at_the_overall_deadline(server: EchoServer) -> None:
    """Every byte arrives well within the read timeout (0.5 s), the whole body would take ~15 s:
    only the deadline ends it, not retried (it is the whole request's budget)."""
    from evpipeline.http import DeadlineExceeded

    server.faults.trickle_seconds = 0.05
    server.faults.inject("trickle", count=10)
    http = client(server, deadline=0.6)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"within the 0.6 s deadline") as raised:
        http.get_json("data")
    assert time.monotonic() - started < 5.0
    assert raised.value.attempts == 1 and server.faults.pending == 9
    assert isinstance(raised.value, TransportError)  # callers' fallbacks for an unreachable origin apply


def test_retries_stop_at_the_deadline_and_never_sleep_past_it(server: EchoServer) -> None:
    """The clock is injected: each backoff advances it; 503s keep coming. Without a deadline the
    client tries max_attempts times; with one it gives up before a backoff would cross it."""
    from evpipeline.http import DeadlineExceeded

    now = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    sleeps: list[float] = []
    server.faults.inject("503", count=100)
    http = HttpClient(
        "echo",
        server.url,
        retry=RetryPolicy(max_attempts=50, backoff_base=1.0, backoff_max=4.0),
        timeout=(1.0, 0.5),
        sleep=sleep,
        seed=1,
        deadline=10.0,
        monotonic=lambda: now[0],
    )
    with pytest.raises(DeadlineExceeded, match="the next retry would start after it"):
        http.get_json("data")
    assert sum(sleeps) < 10.0 and 2 <= http.stats.requests < 50


def test_a_body_over_the_size_cap_is_not_read_further(server: EchoServer) -> None:
    from evpipeline.http import ResponseTooLarge

    http = client(server, max_bytes=64)
    with pytest.raises(ResponseTooLarge, match="larger than 64 bytes") as raised:
        http.get_json("data")
    assert raised.value.attempts == 1
    assert client(server, max_bytes=10_000).get_json("data")[0]["items"] == list(range(50))
