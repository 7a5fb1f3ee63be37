"""NDW DOT-NL simulator over real HTTP: token endpoint, validating push receiver, daily crawler."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from evpipeline import simulators
from evpipeline.ocpi import definition as ocpi
from evpipeline.simulators.ndw import TOKEN_PATH, CrawlError, NdwSimulator, crawl
from evpipeline.simulators.toolkit import HttpReply, Request, Response, SimClock, SimServer
from evpipeline_tests.ndw import ocpi_samples as samples
from evpipeline_tests.typed import present, running

CLIENT_ID, CLIENT_SECRET = "test-client", "test-secret"
LOC = "/ocpi/2.2.1/locations/NL/EVB/LOC-UTR-000123"
TARIFF = "/ocpi/2.2.1/tariffs/NL/EVB/AC-STANDARD"


@pytest.fixture(scope="module")
def _ndw_server() -> Iterator[NdwSimulator]:
    # One server per module (stopping one costs the toolkit's 0.5 s poll); reset for every test.
    with running(NdwSimulator(clock=SimClock(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as sim:
        yield sim


@pytest.fixture
def ndw(_ndw_server: NdwSimulator, clock: SimClock) -> NdwSimulator:
    _ndw_server.reset(clock)
    _ndw_server.token_lifetime = 1800.0
    return _ndw_server


def get_token(
    sim: NdwSimulator, secret: str = CLIENT_SECRET, grant: str = "client_credentials"
) -> requests.Response:
    return requests.post(
        f"{sim.url}{TOKEN_PATH}",
        data={"client_id": CLIENT_ID, "client_secret": secret, "grant_type": grant},
        timeout=5,
    )


@pytest.fixture
def token(ndw: NdwSimulator) -> str:
    return str(get_token(ndw).json()["access_token"])


def push(
    sim: NdwSimulator,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = {
        "Content-Type": "application/json",
        **({"Authorization": f"Bearer {token}"} if token else {}),
        **(headers or {}),
    }
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    return requests.request(method, f"{sim.url}{path}", data=data, headers=sent, timeout=5)


def ocpi_code(response: requests.Response) -> int:
    return int(response.json()["status_code"])


# --------------------------------------------------------------------------------------------
# Token endpoint


def test_token_grant_has_ndw_shape(ndw: NdwSimulator) -> None:
    response = get_token(ndw)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token",
        "expires_in",
        "refresh_expires_in",
        "refresh_token",
        "token_type",
        "not-before-policy",
        "session_state",
        "scope",
    }
    assert (body["expires_in"], body["refresh_expires_in"], body["token_type"]) == (1800, 3600, "Bearer")
    assert body["access_token"] and ndw.tokens_issued == 1


def test_token_rejects_bad_credentials_and_grants(ndw: NdwSimulator) -> None:
    bad = get_token(ndw, secret="wrong")
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_client")
    assert get_token(ndw, grant="password").json()["error"] == "unsupported_grant_type"
    missing = requests.post(f"{ndw.url}{TOKEN_PATH}", data={"client_id": CLIENT_ID}, timeout=5)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    ok = requests.post(
        f"{ndw.url}{TOKEN_PATH}",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=5,
    )
    assert ok.status_code == 200
    assert ndw.tokens_issued == 1


def test_token_expires_by_the_simulator_clock(ndw: NdwSimulator, token: str) -> None:
    tariff = samples.tariff()
    assert push(ndw, "PUT", TARIFF, tariff, token).status_code == 201
    ndw.clock.advance(1799)
    assert push(ndw, "PUT", TARIFF, tariff, token).status_code == 200
    ndw.clock.advance(1)
    expired = push(ndw, "PUT", TARIFF, tariff, token)
    assert expired.status_code == 401 and "expired" in expired.json()["status_message"]
    assert push(ndw, "PUT", TARIFF, tariff, get_token(ndw).json()["access_token"]).status_code == 200


def test_token_lifetime_is_a_knob(ndw: NdwSimulator) -> None:
    ndw.token_lifetime = 60
    token = get_token(ndw).json()
    assert token["expires_in"] == 60
    ndw.clock.advance(61)
    assert push(ndw, "PUT", TARIFF, samples.tariff(), token["access_token"]).status_code == 401


# --------------------------------------------------------------------------------------------
# 401 paths


def test_push_without_valid_bearer_is_401(ndw: NdwSimulator, token: str) -> None:
    tariff = samples.tariff()
    for headers in ({}, {"Authorization": f"Token {token}"}, {"Authorization": "Bearer not-issued"}):
        response = push(ndw, "PUT", TARIFF, tariff, headers=headers)
        assert response.status_code == 401
        assert response.json()["status_code"] == 2000 and "timestamp" in response.json()
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert ndw.tariff("NL", "EVB", "AC-STANDARD") is None
    assert [p.http_status for p in ndw.pushes] == [401, 401, 401]


def test_forced_401_then_recovery(ndw: NdwSimulator, token: str) -> None:
    ndw.force_unauthorized(2)
    statuses = [push(ndw, "PUT", TARIFF, samples.tariff(), token).status_code for _ in range(3)]
    assert statuses == [401, 401, 201]
    ndw.revoke_tokens()
    assert push(ndw, "PUT", TARIFF, samples.tariff(), token).status_code == 401


# --------------------------------------------------------------------------------------------
# Location pushes


def test_put_compliant_location_is_stored(ndw: NdwSimulator, token: str) -> None:
    location = samples.location()
    response = push(
        ndw, "PUT", LOC, location, token, headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status_code"] == 1000 and body["timestamp"] == ocpi.ocpi_datetime(ndw.clock.now())
    assert (response.headers["X-Request-ID"], response.headers["X-Correlation-ID"]) == ("req-1", "corr-1")
    assert ndw.location("nl", "evb", "loc-utr-000123") == location  # ids compare case-insensitively
    again = push(ndw, "PUT", LOC, samples.location(name="P+R Westraven Utrecht"), token)
    assert (again.status_code, ocpi_code(again)) == (200, 1000)
    assert present(ndw.location("NL", "EVB", "LOC-UTR-000123"))["name"] == "P+R Westraven Utrecht"
    record = ndw.pushes[0]
    assert (record.kind, record.accepted, record.request_id, record.at) == (
        "location",
        True,
        "req-1",
        ndw.clock.now(),
    )


def test_non_compliant_location_is_refused_with_2xxx(ndw: NdwSimulator, token: str) -> None:
    location = samples.location()
    del location["energy_mix"]
    response = push(ndw, "PUT", LOC, location, token)
    assert (response.status_code, ocpi_code(response)) == (200, 2001)
    assert "energy_mix" in response.json()["status_message"]
    assert ndw.location("NL", "EVB", "LOC-UTR-000123") is None
    assert [(p.accepted, p.status_code) for p in ndw.pushes] == [(False, 2001)]


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("/ocpi/2.2.1/locations/NL/EVB/OTHER-ID", {}),
        ("/ocpi/2.2.1/locations/NL/XYZ/LOC-UTR-000123", {}),
        ("/ocpi/2.2.1/locations/BE/EVB/LOC-UTR-000123", {}),
    ],
)
def test_url_and_body_ids_must_agree(
    ndw: NdwSimulator, token: str, path: str, change: dict[str, Any]
) -> None:
    response = push(ndw, "PUT", path, samples.location(**change), token)
    assert (response.status_code, ocpi_code(response)) == (200, 2001)
    assert "differs" in response.json()["status_message"]
    assert ndw.locations == {}


def test_evse_uid_mismatch_is_2001(ndw: NdwSimulator, token: str) -> None:
    push(ndw, "PUT", LOC, samples.location(), token)
    response = push(ndw, "PUT", f"{LOC}/UTR-WESTRAVEN-9", samples.evse(), token)
    assert ocpi_code(response) == 2001 and "uid" in response.json()["status_message"]


def test_invalid_json_is_400(ndw: NdwSimulator, token: str) -> None:
    for raw in (b'{"country_code": "NL",', b"", b"\xff\xfe"):
        response = push(ndw, "PUT", LOC, token=token, raw=raw)
        assert response.status_code == 400 and response.json()["status_code"] == 2000
    assert ndw.locations == {}


def test_json_that_is_not_an_object_is_2001(ndw: NdwSimulator, token: str) -> None:
    response = push(ndw, "PUT", LOC, [samples.location()], token)
    assert (response.status_code, ocpi_code(response)) == (200, 2001)


def test_unknown_resources_are_404(ndw: NdwSimulator, token: str) -> None:
    assert push(ndw, "PUT", "/ocpi/2.2.1/sessions/NL/EVB/1", {}, token).status_code == 404
    assert push(ndw, "PUT", "/ocpi/2.2.1/locations/NL/EVB", samples.location(), token).status_code == 404
    patch = {"status": "CHARGING", "last_updated": "2026-11-01T12:00:00Z"}
    assert push(ndw, "PATCH", f"{LOC}/UTR-WESTRAVEN-1", patch, token).status_code == 404  # location never PUT
    assert push(ndw, "PUT", f"{LOC}/UTR-WESTRAVEN-1", samples.evse(), token).status_code == 404  # no parent
    assert push(ndw, "DELETE", TARIFF, token=token).status_code == 404
    push(ndw, "PUT", LOC, samples.location(), token)
    assert push(ndw, "PATCH", f"{LOC}/UTR-WESTRAVEN-7", patch, token).status_code == 404  # EVSE never PUT
    assert (
        push(ndw, "PATCH", f"{LOC}/UTR-WESTRAVEN-1/9", patch, token).status_code == 404
    )  # connector never PUT
    not_found = push(ndw, "PUT", "/ocpi/2.2.1/sessions/NL/EVB/1", {}, token).json()
    assert not_found["status_code"] == 2000 and not_found["timestamp"]


def test_patch_evse_status_merges_into_the_location(ndw: NdwSimulator, token: str) -> None:
    push(ndw, "PUT", LOC, samples.location(), token)
    ndw.clock.advance(30)
    stamp = ocpi.ocpi_datetime(ndw.clock.now())
    response = push(
        ndw, "PATCH", f"{LOC}/UTR-WESTRAVEN-1", {"status": "CHARGING", "last_updated": stamp}, token
    )
    assert (response.status_code, ocpi_code(response)) == (200, 1000)
    stored = ndw.location("NL", "EVB", "LOC-UTR-000123")
    assert stored is not None
    expected_evse = {**samples.evse(), "status": "CHARGING", "last_updated": stamp}
    assert stored["evses"][0] == expected_evse
    assert stored["evses"][1] == samples.evse("dc")  # untouched
    assert stored["last_updated"] == stamp  # the parent is never older than its children
    assert ndw.pushes[-1].at == ndw.clock.now()


def test_patch_without_last_updated_is_2001(ndw: NdwSimulator, token: str) -> None:
    push(ndw, "PUT", LOC, samples.location(), token)
    response = push(ndw, "PATCH", f"{LOC}/UTR-WESTRAVEN-1", {"status": "CHARGING"}, token)
    assert (response.status_code, ocpi_code(response)) == (200, 2001)
    assert "last_updated" in response.json()["status_message"]
    assert present(ndw.evse("NL", "EVB", "LOC-UTR-000123", "UTR-WESTRAVEN-1"))["status"] == "AVAILABLE"


def test_patch_that_breaks_ndw_rules_is_refused(ndw: NdwSimulator, token: str) -> None:
    push(ndw, "PUT", LOC, samples.location(), token)
    stamp = "2026-11-01T12:00:00Z"
    empty = push(ndw, "PATCH", f"{LOC}/UTR-WESTRAVEN-1/1", {"tariff_ids": [], "last_updated": stamp}, token)
    assert ocpi_code(empty) == 2001 and "tariff_ids" in empty.json()["status_message"]
    # Valid alone, invalid once merged: publish_allowed_to needs publish=false.
    merged = push(
        ndw,
        "PATCH",
        LOC,
        {"publish_allowed_to": [{"uid": "04A1B2C3", "type": "RFID"}], "last_updated": stamp},
        token,
    )
    assert ocpi_code(merged) == 2001 and "publish_allowed_to" in merged.json()["status_message"]
    assert ndw.location("NL", "EVB", "LOC-UTR-000123") == samples.location()


def test_patch_location_fields_and_put_connector(ndw: NdwSimulator, token: str) -> None:
    push(ndw, "PUT", LOC, samples.location(), token)
    later = "2026-11-01T12:05:00Z"
    response = push(ndw, "PATCH", LOC, {"name": "P+R Westraven (Utrecht)", "last_updated": later}, token)
    assert ocpi_code(response) == 1000
    connector = samples.connector(
        id="2", standard="IEC_62196_T2", format="CABLE", last_updated="2026-11-01T12:10:00Z"
    )
    created = push(ndw, "PUT", f"{LOC}/UTR-WESTRAVEN-1/2", connector, token)
    assert (created.status_code, ocpi_code(created)) == (201, 1000)
    stored = ndw.location("NL", "EVB", "LOC-UTR-000123")
    assert stored is not None and stored["name"] == "P+R Westraven (Utrecht)"
    assert [c["id"] for c in stored["evses"][0]["connectors"]] == ["1", "2"]
    assert stored["evses"][0]["last_updated"] == stored["last_updated"] == "2026-11-01T12:10:00Z"


def test_tariff_put_then_delete(ndw: NdwSimulator, token: str) -> None:
    free = samples.tariff("FREE")
    path = "/ocpi/2.2.1/tariffs/NL/EVB/FREE"
    assert (push(ndw, "PUT", path, free, token).status_code, ndw.tariff("NL", "EVB", "FREE")) == (201, free)
    deleted = push(ndw, "DELETE", path, token=token)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert ndw.tariff("NL", "EVB", "FREE") is None
    assert push(ndw, "DELETE", path, token=token).status_code == 404
    assert push(ndw, "PATCH", path, free, token).status_code == 405  # NDW: tariffs are PUT/DELETE only


def test_tariff_deletion_warns_when_still_referenced(ndw: NdwSimulator, token: str) -> None:
    push(ndw, "PUT", TARIFF, samples.tariff(), token)
    push(ndw, "PUT", LOC, samples.location(), token)
    assert push(ndw, "DELETE", TARIFF, token=token).status_code == 204
    assert ndw.pushes[-1].warnings == [
        "deleted tariff is still referenced by connector LOC-UTR-000123/UTR-WESTRAVEN-1/1"
    ]


def test_non_compliant_tariff_is_refused(ndw: NdwSimulator, token: str) -> None:
    response = push(ndw, "PUT", TARIFF, samples.tariff(elements=[]), token)
    assert ocpi_code(response) == 2001 and "elements" in response.json()["status_message"]
    assert ndw.tariffs == {}


# --------------------------------------------------------------------------------------------
# Knobs and faults


def test_reject_content_knob(ndw: NdwSimulator, token: str) -> None:
    ndw.reject_content(1, code=2002)
    first, second = (push(ndw, "PUT", TARIFF, samples.tariff(), token) for _ in range(2))
    assert (first.status_code, ocpi_code(first)) == (200, 2002)
    assert (second.status_code, ocpi_code(second)) == (201, 1000)
    assert [p.accepted for p in ndw.pushes] == [False, True]


def test_admin_knobs_over_http(ndw: NdwSimulator, token: str) -> None:
    requests.post(f"{ndw.url}/_sim/ndw", json={"force_401": 1, "reject_content": 1}, timeout=5)
    assert push(ndw, "PUT", TARIFF, samples.tariff(), token).status_code == 401
    assert ocpi_code(push(ndw, "PUT", TARIFF, samples.tariff(), token)) == 2000
    push(ndw, "PUT", TARIFF, samples.tariff(), token)
    state = requests.get(f"{ndw.url}/_sim/ndw/state", timeout=5).json()
    assert (state["tariffs"], state["pushes"], state["accepted"]) == ([samples.tariff()], 3, 1)


def test_injected_faults_answer_with_an_envelope(ndw: NdwSimulator, token: str) -> None:
    ndw.faults.inject("503", 1)
    ndw.faults.inject("429", 1)
    unavailable = push(ndw, "PUT", TARIFF, samples.tariff(), token)
    assert (unavailable.status_code, ocpi_code(unavailable)) == (503, 3000)
    limited = push(ndw, "PUT", TARIFF, samples.tariff(), token)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert push(ndw, "PUT", TARIFF, samples.tariff(), token).status_code == 201
    assert len(ndw.pushes) == 1  # faults answer before the receiver; the toolkit's log has all three
    assert [r.status for r in ndw.requests_to("/tariffs/")] == [503, 429, 201]


def test_push_log_records_when_ndw_got_what(ndw: NdwSimulator, token: str) -> None:
    push(ndw, "PUT", LOC, samples.location(), token)
    ndw.clock.advance(45)
    push(
        ndw,
        "PATCH",
        f"{LOC}/UTR-WESTRAVEN-2",
        {"status": "AVAILABLE", "last_updated": ocpi.ocpi_datetime(ndw.clock.now())},
        token,
    )
    first, second = ndw.pushes
    assert (second.at - first.at).total_seconds() == 45
    assert second.mono >= first.mono
    assert [(p.method, p.kind, p.http_status, p.status_code) for p in ndw.accepted_pushes()] == [
        ("PUT", "location", 201, 1000),
        ("PATCH", "evse", 200, 1000),
    ]


def test_registry_points_the_pipeline_at_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NDW_CLIENT_ID", "from-settings")
    monkeypatch.setenv("NDW_CLIENT_SECRET", "secret-from-settings")
    sim = simulators.build("ndw", clock=SimClock())
    with sim:
        env = simulators.env_for({"ndw": sim})
        assert env == {
            "NDW_PUSH_BASE_URL": f"{sim.url}/ocpi/2.2.1",
            "NDW_TOKEN_URL": f"{sim.url}{TOKEN_PATH}",
        }
        granted = requests.post(
            env["NDW_TOKEN_URL"],
            data={
                "client_id": "from-settings",
                "client_secret": "secret-from-settings",
                "grant_type": "client_credentials",
            },
            timeout=5,
        )
        assert granted.status_code == 200


# --------------------------------------------------------------------------------------------
# crawl(): NDW's daily pull, against a tiny fake supplier OCPI server


class FakeOcpiServer(SimServer):
    """A minimal supplier pull server with switchable contract violations."""

    name = "fake-ocpi"

    def __init__(
        self, objects: list[dict[str, Any]], *, max_limit: int = 3, token: str = "pull-token", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.objects, self.max_limit, self.token = objects, max_limit, token
        self.echo = self.keep_filters = True
        self.duplicate_first = self.overfill = False
        self.bearers: set[str] = set()
        self.issued = 0
        self.seen: list[dict[str, str]] = []  # headers + query of every list request
        self._lock = threading.Lock()
        self.handler = self.list_objects  # tests may wrap it
        for module in ("locations", "tariffs"):
            self.route("GET", f"/ocpi/2.2.1/{module}", lambda request: self.handler(request))
        self.route("POST", "/token", self._token)

    def _token(self, request: Request) -> Response:
        bearer = f"bearer-{self.issued}"
        self.issued += 1
        self.bearers.add(bearer)
        return Response.json({"access_token": bearer, "token_type": "Bearer", "expires_in": 3600})

    def list_objects(self, request: Request) -> Response:
        auth = request.header("Authorization") or ""
        valid = {
            f"Token {base64.b64encode(self.token.encode()).decode()}",
            *(f"Bearer {b}" for b in self.bearers),
        }
        with self._lock:
            self.seen.append(
                {
                    **{
                        k: v for k, v in request.headers.items() if k.startswith("x-") or k == "authorization"
                    },
                    **{f"?{k}": v[0] for k, v in request.query.items()},
                }
            )
        if auth not in valid:
            raise HttpReply(
                Response.json(
                    {
                        "status_code": 2000,
                        "status_message": "Unauthorized",
                        "timestamp": "2026-11-01T12:00:00Z",
                    },
                    401,
                )
            )
        offset = int(request.arg("offset", "0") or 0)
        limit = min(int(request.arg("limit", str(self.max_limit)) or self.max_limit), self.max_limit)
        date_from = request.arg("date_from")
        items = [o for o in self.objects if date_from is None or o["last_updated"] >= date_from]
        page = items[offset : offset + limit + (1 if self.overfill else 0)]
        if self.duplicate_first and offset > 0:
            page = [items[0], *page[1:]]
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(self.max_limit)}
        if self.echo:
            headers.update({h: request.header(h) or "" for h in ("X-Request-ID", "X-Correlation-ID")})
        if offset + limit < len(items):
            query = {
                "offset": offset + limit,
                "limit": limit,
                **({"date_from": date_from} if date_from and self.keep_filters else {}),
            }
            headers["Link"] = f'<{self.url}{request.path}?{urlencode(query)}>; rel="next"'
        body = {
            "data": page,
            "status_code": 1000,
            "status_message": "Success",
            "timestamp": "2026-11-01T12:00:00Z",
        }
        return Response.json(body, headers=headers)


def _locations(n: int) -> list[dict[str, Any]]:
    return [
        samples.location(id=f"LOC-{i:03d}", last_updated=f"2026-10-{i + 1:02d}T08:00:00Z") for i in range(n)
    ]


@pytest.fixture(scope="module")
def _supplier_server() -> Iterator[FakeOcpiServer]:
    with running(FakeOcpiServer([], clock=SimClock())) as server:
        yield server


@pytest.fixture
def supplier(_supplier_server: FakeOcpiServer) -> FakeOcpiServer:
    server = _supplier_server
    server.objects = _locations(7)
    server.echo = server.keep_filters = True
    server.duplicate_first = server.overfill = False
    server.bearers.clear()
    server.seen.clear()
    server.handler = server.list_objects
    return server


def test_crawl_follows_links_to_the_last_page(supplier: FakeOcpiServer) -> None:
    result = crawl(supplier.url, token="pull-token", limit=3)
    assert [o["id"] for o in result.objects] == [f"LOC-{i:03d}" for i in range(7)]
    assert (result.pages, result.requests, result.problems) == (3, 3, [])
    assert "Link" in result.headers_seen[0] and "Link" not in result.headers_seen[-1]
    assert [h["X-Total-Count"] for h in result.headers_seen] == ["7", "7", "7"]
    assert [s.get("?offset") for s in supplier.seen] == [None, "3", "6"]
    assert {s["authorization"] for s in supplier.seen} == {
        "Token " + base64.b64encode(b"pull-token").decode()
    }
    ids = [s["x-request-id"] for s in supplier.seen] + [s["x-correlation-id"] for s in supplier.seen]
    assert len(set(ids)) == 6


def test_crawl_keeps_filters_and_honours_the_server_cap(supplier: FakeOcpiServer) -> None:
    result = crawl(supplier.url, token="pull-token", limit=1000, params={"date_from": "2026-10-03T00:00:00Z"})
    assert [o["id"] for o in result.objects] == [f"LOC-{i:03d}" for i in range(2, 7)]
    assert result.pages == 2  # the server caps pages at X-Limit 3
    assert all(s["?date_from"] == "2026-10-03T00:00:00Z" for s in supplier.seen)


def test_crawl_flags_a_link_that_drops_filters(supplier: FakeOcpiServer) -> None:
    supplier.keep_filters = False
    with pytest.raises(CrawlError) as caught:
        crawl(supplier.url, token="pull-token", params={"date_from": "2026-10-03T00:00:00Z"})
    assert any("drops or changes the filters" in p for p in caught.value.problems)


def test_crawl_flags_missing_echo_duplicates_and_overfull_pages(supplier: FakeOcpiServer) -> None:
    supplier.echo, supplier.duplicate_first, supplier.overfill = False, True, True
    result = crawl(supplier.url, token="pull-token", limit=3, strict=False)
    problems = "\n".join(result.problems)
    assert "X-Request-ID not echoed" in problems and "X-Correlation-ID not echoed" in problems
    assert "duplicate object nl/evb/loc-000" in problems
    assert "with X-Limit 3" in problems and "though limit=3 was asked" in problems
    assert "X-Total-Count says 7" in problems


def test_crawl_validates_objects_with_the_ndw_profile(supplier: FakeOcpiServer) -> None:
    supplier.objects = _locations(2)
    del supplier.objects[1]["energy_mix"]
    with pytest.raises(CrawlError, match="energy_mix: required field is missing"):
        crawl(supplier.url, token="pull-token")
    assert crawl(supplier.url, token="pull-token", profile=None).pages == 1


def test_crawl_with_oauth_refreshes_once_on_401(supplier: FakeOcpiServer) -> None:
    def revoke_after_first_page(request: Request) -> Response:
        response = supplier.list_objects(request)
        if request.arg("offset") is None:
            supplier.bearers.clear()  # the supplier rotates its keys mid-crawl
        return response

    supplier.handler = revoke_after_first_page
    result = crawl(supplier.url, oauth=(f"{supplier.url}/token", "ndw-puller", "secret"), limit=3)
    assert len(result.objects) == 7
    assert result.requests == 3 + 1 + 2  # pages + one retried page + two token requests
    assert {s["authorization"] for s in supplier.seen} == {"Bearer bearer-0", "Bearer bearer-1"}


def test_crawl_rejects_wrong_credentials(supplier: FakeOcpiServer) -> None:
    with pytest.raises(CrawlError, match="HTTP 401"):
        crawl(supplier.url, token="wrong")
    with pytest.raises(ValueError):
        crawl(supplier.url)
