"""`ocpi_check`: OCPI status codes inside HTTP 200, through the shared HTTP layer against a real server."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

from evpipeline.http import HttpClient, OcpiError, RateLimitedError, RetryPolicy
from evpipeline.ocpi.status import ocpi_check, ocpi_status, retry_hint
from evpipeline.simulators.toolkit import Request, Response, SimServer
from evpipeline_tests.typed import running


class OcpiServer(SimServer):
    """Answers /items with scripted OCPI bodies (then success)."""

    name = "ocpi"

    def __init__(self) -> None:
        super().__init__()
        self.script: deque[Any] = deque()
        self.route("GET", r"/items", self._items)

    def _items(self, request: Request) -> Response:
        if self.script:
            return Response.json(self.script.popleft())
        return Response.json(
            {
                "data": [1, 2],
                "status_code": 1000,
                "status_message": "Success",
                "timestamp": "2026-11-01T12:00:00Z",
            }
        )


@pytest.fixture
def server() -> Iterator[OcpiServer]:
    with running(OcpiServer()) as s:
        yield s


def client(server: OcpiServer, sleeps: list[float]) -> HttpClient:
    return HttpClient(
        "ocpi-api",
        server.url,
        retry=RetryPolicy(max_attempts=3, backoff_base=0.01),
        sleep=sleeps.append,
        seed=1,
    )


def body(code: int, message: str) -> dict[str, Any]:
    return {"data": None, "status_code": code, "status_message": message, "timestamp": "2026-11-01T12:00:00Z"}


def test_success_and_bare_arrays_pass(server: OcpiServer) -> None:
    http = client(server, [])
    assert http.get_json("items", check=ocpi_check(http))[0]["data"] == [1, 2]
    server.script.append([{"id": 1}])
    assert http.get_json("items", check=ocpi_check(http))[0] == [{"id": 1}]
    assert http.stats.requests == 2


def test_client_error_in_200_fails_at_once_naming_the_request(server: OcpiServer) -> None:
    server.script.append(body(2001, "Invalid or missing parameters"))
    http = client(server, [])
    with pytest.raises(OcpiError) as caught:
        http.get_json("items", params={"offset": 0}, check=ocpi_check(http))
    assert caught.value.ocpi_status == 2001 and caught.value.status == 200
    assert (
        "2001" in str(caught.value)
        and "ocpi-api GET" in str(caught.value)
        and "/items?offset=0" in str(caught.value)
    )
    assert http.stats.requests == 1


def test_server_errors_and_rate_limits_in_200_are_retried(server: OcpiServer) -> None:
    server.script.extend(
        [body(3000, "Generic server error"), body(2000, "API rate limit exceeded. Try again in 2 seconds.")]
    )
    sleeps: list[float] = []
    http = client(server, sleeps)
    assert http.get_json("items", check=ocpi_check(http))[0]["status_code"] == 1000
    assert http.stats.requests == 3 and len(sleeps) == 2
    assert sleeps[1] >= 2.0  # the hint in the message was honoured


def test_retries_exhausted_give_typed_errors(server: OcpiServer) -> None:
    server.script.extend([body(3000, "down")] * 3)
    http = client(server, [])
    with pytest.raises(OcpiError, match="still failing after retries"):
        http.get_json("items", check=ocpi_check(http))
    server.script.extend([body(2000, "rate limit exceeded")] * 3)
    with pytest.raises(RateLimitedError):
        http.get_json("items", check=ocpi_check(http))


def test_status_and_hint_parsing() -> None:
    assert ocpi_status({"status_code": "1000"}) == (1000, "")
    assert ocpi_status({"status_code": "oops", "status_message": "x"}) == (0, "x")
    assert ocpi_status([1, 2]) == (None, "")

    class Fake:
        headers: dict[str, str] = {}

    assert retry_hint(Fake(), "Rate limit exceeded, retry after 1.5 s") == 1.5  # type: ignore[arg-type]  # a stand-in with only the headers retry_hint reads
    assert retry_hint(Fake(), "max 10 requests within 1 minute") is None  # type: ignore[arg-type]  # a stand-in with only the headers retry_hint reads
