"""The EVRoam push path against an attacker: URLs we refuse to fetch, redirects, and a receiver that
stays available and answers malformed or oversized deliveries with a clear 4xx."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from evpipeline.inbox import Inbox
from evpipeline.serving import BackgroundServer
from evpipeline.settings import ENVIRONMENT
from evpipeline.sources.evroam.client import DEFAULT_PUSH_ORIGIN, EVRoamClient, EVRoamResource
from evpipeline.sources.evroam.push import MAX_BODY_BYTES, MAX_EVENTS, create_webhook_app
from evpipeline.sources.evroam.push_urls import Origin, PushUrlRefused, parse_origins, vet

KEY = "hook-key-sec"
RECORDS = [{"chargingStationId": "x", "operator": "ChargeNet NZ"}]


class Hostile:
    """A file host that misbehaves, and an internal service nobody may reach through it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.internal_hits: list[str] = []
        internal = Starlette(routes=[Route("/secret", self._secret)])
        self.internal = BackgroundServer(internal).start()
        app = Starlette(
            routes=[
                Route("/file.json", lambda r: self._hit(r, JSONResponse(RECORDS))),
                Route(
                    "/redirect",
                    lambda r: self._hit(r, RedirectResponse(f"{self.internal.url}/secret", status_code=302)),
                ),
                Route(
                    "/redirect-same-host",
                    lambda r: self._hit(r, RedirectResponse("/file.json", status_code=301)),
                ),
            ]
        )
        self.server = BackgroundServer(app).start()

    def _hit(self, request: Request, response: Response) -> Response:
        self.hits.append(request.url.path)
        return response

    def _secret(self, request: Request) -> Response:
        self.internal_hits.append(request.url.path)
        return JSONResponse([{"leaked": True}])

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        self.server.stop()
        self.internal.stop()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    h = Hostile()
    yield h
    h.stop()


def client_for(allowed: str) -> EVRoamClient:
    return EVRoamResource(
        base_url="http://127.0.0.1:9/consumer/api",
        subscription_key="k",
        allowed_push_hosts=allowed,
        backoff_base=0.01,
        max_attempts=1,
        read_timeout=2.0,
    ).client()


def test_a_plain_allowed_url_is_fetched(hostile: Hostile) -> None:
    client = client_for(hostile.server.url)
    assert client.download(f"http://127.0.0.1:{hostile.port}/file.json") == RECORDS


@pytest.mark.parametrize("path", ["/redirect", "/redirect-same-host"])
def test_redirects_are_refused_never_followed(hostile: Hostile, path: str) -> None:
    client = client_for(hostile.server.url)
    with pytest.raises(PushUrlRefused, match="redirect"):
        client.download(f"http://127.0.0.1:{hostile.port}{path}")
    assert hostile.internal_hits == [] and hostile.hits == [path]  # asked once, the Location never followed


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://evil:80\\@127.0.0.1:{port}/file.json", "backslash"),
        ("http://evil@127.0.0.1:{port}/file.json", "user info"),
        ("http://127.0.0.1:{port}@evil.example/file.json", "user info"),
        ("http://127.0.0.1:{other}/file.json", "not an allowed push-file origin"),
        ("https://127.0.0.1:{port}/file.json", "not an allowed push-file origin"),
        ("ftp://127.0.0.1:{port}/file.json", "scheme"),
        ("http://127.0.0.1:{port}/file.json#x", "fragment"),
        (" http://127.0.0.1:{port}/file.json", "whitespace"),
        ("http://127.0.0.1:{port}/fïle.json", "non-ASCII"),
        ("http://127.0.0.1:99999/file.json", "port"),
        ("http://[::1]:{port}/file.json", "not an allowed push-file origin"),
        ("http://169.254.169.254/latest/meta-data", "not an allowed push-file origin"),
        (None, "no file URL"),
    ],
)
def test_urls_that_two_parsers_could_read_differently_are_refused_unfetched(
    hostile: Hostile, url: str | None, reason: str
) -> None:
    client = client_for(hostile.server.url)
    target = url.format(port=hostile.port, other=hostile.internal.port) if url else url
    with pytest.raises(PushUrlRefused, match=reason):
        client.download(target)
    assert hostile.hits == [] and hostile.internal_hits == []


def test_the_url_fetched_is_the_one_judged() -> None:
    origins = parse_origins("https://evroamstore.blob.core.windows.net")
    url = "https://EVROAMSTORE.blob.core.windows.net/notifications/sites-1.json?sv=1&sig=abc"
    assert (
        vet(url, origins)
        == "https://evroamstore.blob.core.windows.net/notifications/sites-1.json?sv=1&sig=abc"
    )


def test_allow_list_entries_pin_scheme_host_and_port() -> None:
    [store] = parse_origins(DEFAULT_PUSH_ORIGIN)
    assert store == Origin("https", "evroamstore.blob.core.windows.net", 443)
    assert (
        ENVIRONMENT["EVROAM_PUSH_ALLOWED_HOSTS"][0] == DEFAULT_PUSH_ORIGIN
    )  # no loopback, no other storage account
    for refused in (
        "https://other.blob.core.windows.net/f.json",
        "https://evroamstore.blob.core.windows.net:8443/f.json",
        "http://evroamstore.blob.core.windows.net/f.json",
    ):
        with pytest.raises(PushUrlRefused):
            vet(refused, [store])
    [wildcard] = parse_origins("https://*.blob.core.windows.net")  # only when asked for, explicitly
    assert wildcard.matches("https", "a.blob.core.windows.net", 443)
    assert not wildcard.matches("https", "blob.core.windows.net", 443)
    assert not wildcard.matches("https", "a.blob.core.windows.net.evil.example", 443)
    with pytest.raises(ValueError, match="write scheme://host"):
        parse_origins("127.0.0.1")


# -- the receiver ------------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[BackgroundServer, Inbox]]:
    inbox = Inbox(tmp_path / "push.sqlite")
    with BackgroundServer(create_webhook_app(inbox, KEY)) as server:
        yield server, inbox


def event(n: int, **extra: object) -> dict[str, object]:
    return {
        "id": f"e-{n}",
        "eventType": "EVRoam.ChargingStationChanges",
        "eventTime": "2026-11-01T12:00:00Z",
        "subject": f"chargingstations-{n}.json",
        "data": {"url": f"https://evroamstore.blob.core.windows.net/n/chargingstations-{n}.json"},
        **extra,
    }


def post(server: BackgroundServer, body: bytes | object) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{server.url}/api/evroam_listener?code={KEY}",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


@pytest.mark.slow
def test_oversized_deliveries_are_refused_fast_and_health_stays_up(
    receiver: tuple[BackgroundServer, Inbox],
) -> None:
    server, inbox = receiver
    huge = json.dumps([event(n) for n in range(100_000)]).encode()  # ~20 MB, 100,000 events
    health: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.02)

    thread = threading.Thread(target=probe)
    thread.start()
    started = time.monotonic()
    answer = post(server, huge)
    refused_in = time.monotonic() - started
    # The largest delivery Event Grid can send is stored while /health keeps answering.
    biggest = [event(n) for n in range(MAX_EVENTS)]
    while len(json.dumps(biggest)) > MAX_BODY_BYTES:
        biggest.pop()
    assert post(server, biggest).json() == {"stored": len(biggest)}
    stop.set()
    thread.join()
    assert answer.status_code == 413 and "at most" in answer.json()["error"]
    assert refused_in < 5
    assert health and max(health) < 2.0, f"/health took up to {max(health):.2f}s"  # not minutes, as before
    assert inbox.count("evroam") == len(biggest)


def test_too_many_events_is_413(receiver: tuple[BackgroundServer, Inbox]) -> None:
    server, inbox = receiver
    many = [{"id": str(n)} for n in range(MAX_EVENTS + 1)]
    answer = post(server, many)
    assert answer.status_code == 413 and f"{MAX_EVENTS + 1:,} events" in answer.json()["error"]
    assert inbox.count("evroam") == 0


def test_exactly_5000_events_are_one_delivery_and_5001_are_not(
    receiver: tuple[BackgroundServer, Inbox],
) -> None:
    """Event Grid batches at most 5,000 events: the limit itself is a real delivery (stored whole),
    one more is not Event Grid (refused, nothing stored)."""
    server, inbox = receiver
    small = [
        {"id": f"e-{n}", "subject": f"sites-{n}.json"} for n in range(5001)
    ]  # ~230 kB: far below the byte cap
    assert len(json.dumps(small).encode()) < 1024 * 1024
    refused = post(server, small)
    assert refused.status_code == 413
    assert refused.json() == {"error": "5,001 events in one delivery; Event Grid sends at most 5,000"}
    assert inbox.count("evroam") == 0
    assert post(server, small[:5000]).json() == {"stored": 5000}
    assert inbox.count("evroam") == 5000


def test_a_chunked_body_over_1_mb_is_refused_before_it_is_all_sent(
    receiver: tuple[BackgroundServer, Inbox],
) -> None:
    """Without a Content-Length there is nothing to refuse up front: the receiver counts while it
    reads and answers 413 as soon as the body passes 1 MiB (1,048,576 bytes), so a sender cannot make
    it buffer an endless body. The client sends exactly one byte past the cap and then nothing (no
    terminating chunk): the refusal must come while the body is still open (a receiver that reads the
    body whole would wait for its end, and the read below times out)."""
    server, inbox = receiver
    piece = b" " * 65536
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /api/evroam_listener?code={KEY} HTTP/1.1\r\nHost: {server.host}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.sendall(
            b"1\r\n[\r\n"
        )  # the JSON's start, then whitespace: 16 x 64 KiB - 1 brings it to the cap exactly
        for n in range(16):
            chunk = piece if n < 15 else piece[:-1]
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        sock.sendall(b"1\r\n \r\n")  # byte 1,048,577: over the cap; no more is sent, no terminating chunk
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                received = sock.recv(65536)
                if not received:
                    break
                answer += received
        except TimeoutError:
            pytest.fail(
                "no answer while the body was incomplete (the receiver waits to read it whole); "
                f"got {answer!r}"
            )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert json.loads(body) == {
        "error": "body larger than 1,048,576 bytes; Event Grid deliveries are at most that"
    }
    assert inbox.count("evroam") == 0


@pytest.mark.parametrize(
    "body, message",
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b"{not json", "not JSON"),
        ([event(1, data="https://example.net/x")], "`data` is not an object"),
        ([event(1, data=[1, 2])], "`data` is not an object"),
        ([event(1), 7], "event 1 is not an object"),
        ([event(1, id=["x"])], "`id` is not a string"),
        ("a string", "expected an array"),
    ],
)
def test_malformed_deliveries_are_400_with_the_reason(
    receiver: tuple[BackgroundServer, Inbox], body: object, message: str
) -> None:
    server, inbox = receiver
    answer = post(server, body)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert inbox.count("evroam") == 0


def test_the_receiver_still_requires_its_key(receiver: tuple[BackgroundServer, Inbox]) -> None:
    server, _ = receiver
    assert (
        requests.post(
            f"{server.url}/api/evroam_listener?code=wrong", data=b"x" * (2 * MAX_BODY_BYTES)
        ).status_code
        == 401
    )


# -- the URL rules as pure logic: each refusal with its exact reason (what a dead letter shows) -----


STORE = "https://evroamstore.blob.core.windows.net"


@pytest.mark.parametrize(
    "url, reason",
    [
        (None, "notification has no file URL"),
        ("", "notification has no file URL"),
        (123, "notification has no file URL"),
        (f"{STORE}/a\x01b.json", "URL contains a backslash, whitespace, control or non-ASCII character"),
        (f"{STORE}/a\x7fb.json", "URL contains a backslash, whitespace, control or non-ASCII character"),
        ("https://user@evroamstore.blob.core.windows.net/f.json", "URL carries user info (user@host)"),
        (f"{STORE}/f.json#part", "URL carries a fragment"),
        ("https://evroamstore.blob.core.windows.net:http/f.json", "port is not a number from 0 to 65535"),
        ("https:///f.json", "URL has no host"),
        ("gopher://evroamstore.blob.core.windows.net/f.json", "scheme 'gopher' is not http(s)"),
        ("https://other.example/f.json", "https://other.example:443 is not an allowed push-file origin"),
        # urlsplit raises ValueError on these: they were dead-lettered as `failed` (a bug), not refused.
        ("https://[127.0.0.1]/f.json", "URL does not parse (An IPv4 address cannot be in brackets)"),
        ("https://[evroamstore.blob.core.windows.net/f.json", "URL does not parse (Invalid IPv6 URL)"),
    ],
)
def test_each_refused_url_names_its_reason_exactly(url: object, reason: str) -> None:
    with pytest.raises(PushUrlRefused) as refused:
        vet(url, parse_origins(STORE))
    assert str(refused.value) == reason


def test_a_url_without_a_path_is_fetched_at_the_root_with_its_query() -> None:
    assert vet(f"{STORE}?sv=1", parse_origins(STORE)) == f"{STORE}/?sv=1"
    assert (
        vet(f"{STORE}:443/f.json", parse_origins(STORE)) == f"{STORE}:443/f.json"
    )  # a port given stays given


def test_the_allow_list_is_a_comma_list_whose_empty_entries_are_skipped() -> None:
    assert parse_origins(" https://a.example ,, http://127.0.0.1:8701, ") == [
        Origin("https", "a.example", 443),
        Origin("http", "127.0.0.1", 8701),
    ]
    assert parse_origins("") == []


@pytest.mark.parametrize(
    "entry", ["https://user@a.example", "https://a.example/files", "ftp://a.example", "https://:443"]
)
def test_an_allow_list_entry_is_an_origin_only(entry: str) -> None:
    with pytest.raises(ValueError) as bad:
        parse_origins(entry)
    assert str(bad.value) == f"EVROAM_PUSH_ALLOWED_HOSTS entry {entry!r}: only http(s)://host[:port]"


def test_idle_and_slow_header_connections_are_closed_after_the_header_timeout(tmp_path: Path) -> None:
    """uvicorn closes idle keep-alive connections, but not one that never completes its headers:
    1,100 such connections were still open after 30 s. The server hangs up on each at the timeout;
    the socket's own timeout (5 s) only bounds the test's wait for that."""
    inbox = Inbox(tmp_path / "push.sqlite")
    with BackgroundServer(create_webhook_app(inbox, KEY), header_timeout=0.5) as server:
        idle = socket.create_connection((server.host, server.port), timeout=5)
        slow = socket.create_connection((server.host, server.port), timeout=5)
        slow.sendall(b"POST /api/evroam_listener?code=" + KEY.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for conn in (idle, slow):
            with conn:
                assert conn.recv(1024) == b""  # closed by the server (a socket.timeout fails the test)
        assert time.monotonic() - started < 4.0
        # A request that completes its headers in time is served as always, on a new connection.
        assert requests.get(f"{server.url}/health", timeout=5).json() == {"status": "ok"}
