"""The pull server's authentication rules at their edges, over real HTTP: which bearer JWTs pass and
why each refusal is refused (the server's log says it), the exact `WWW-Authenticate` challenge per
enabled scheme, the claims we issue, and the Basic client authentication of the token endpoint.

The data does not matter here: the server runs without a snapshot (`/ocpi/versions` needs none)."""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evpipeline.ndw.pull_auth import JWT_AUDIENCE, JWT_ISSUER, OcpiMiddleware, issue_token
from evpipeline.ndw.pull_paging import BadParameter, dumps, parse_datetime, parse_page_query
from evpipeline.ndw.pull_settings import OcpiServerSettings
from evpipeline.ndw.pull_snapshot import SnapshotStore
from evpipeline.ndw.server import create_ocpi_app
from evpipeline.serving import BackgroundServer

TOKEN = "pull-auth-token"
CLIENT_ID = "ndw-client"
CLIENT_SECRET = "se:cret"  # RFC 7617: a password may hold a colon, a user-id may not
BOTH = OcpiServerSettings(token=TOKEN, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
VERSIONS = "/ocpi/versions"
LIFETIME, LEEWAY = 3600, 10  # what BOTH issues and tolerates (OcpiServerSettings' defaults)


def serve(settings: OcpiServerSettings) -> BackgroundServer:
    return BackgroundServer(create_ocpi_app(SnapshotStore(None), settings))


@pytest.fixture
def url() -> Iterator[str]:
    """A server per test: the token endpoint and the middleware are built inside the test that uses
    them, so a mutation tool that maps functions to tests sees each test reach them."""
    with serve(BOTH) as server:
        yield server.url


def versions(url: str, authorization: str | None) -> requests.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return requests.get(url + VERSIONS, headers=headers, timeout=10)


def signed(**claims: Any) -> str:
    """A JWT signed with our key; `lifetime` sets exp from the iat (both read now)."""
    now = int(time.time())
    lifetime = claims.pop("lifetime", 60)
    base = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": CLIENT_ID, "iat": now, "exp": now + lifetime}
    return jwt.encode({**base, **claims}, BOTH.jwt_key(), algorithm="HS256")


def refusal_reason(caplog: pytest.LogCaptureFixture) -> str:
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("401 GET ")]
    return line.split(": ", 1)[1]


# -- bearer JWTs ------------------------------------------------------------------------------------


def refused_tokens() -> list[tuple[str, Any, str]]:
    return [
        ("expired", lambda: issue_token(BOTH, now=time.time() - 7200), "token expired"),
        ("wrong audience", lambda: signed(aud="elsewhere"), "invalid token (InvalidAudienceError)"),
        (
            "another client",
            lambda: issue_token(OcpiServerSettings(client_id="someone", client_secret=CLIENT_SECRET)),
            "token issued to another client",
        ),
        (
            "one second longer than we issue",
            lambda: signed(lifetime=LIFETIME + LEEWAY + 1),
            "invalid token (valid for longer than we issue tokens)",
        ),
        # PyJWT refuses an iat past the leeway itself, before our own check of it.
        (
            "issued an hour ahead",
            lambda: signed(iat=int(time.time()) + 3600, lifetime=3660),
            "invalid token (ImmatureSignatureError)",
        ),
        # 2**33 s is the year 2242: the first NumericDate we do not take, whole or fractional.
        ("exp 2**33", lambda: signed(exp=2**33), "invalid token (exp is not a NumericDate)"),
        ("exp 2.0**33", lambda: signed(exp=2.0**33), "invalid token (exp is not a NumericDate)"),
        ("iat -1", lambda: signed(iat=-1), "invalid token (iat is not a NumericDate)"),
        ("nbf -0.5", lambda: signed(nbf=-0.5), "invalid token (nbf is not a NumericDate)"),
    ]


@pytest.mark.parametrize(
    ("token", "reason"),
    [pytest.param(make, reason, id=name) for name, make, reason in refused_tokens()],
)
def test_each_refused_bearer_token_is_logged_with_why(
    url: str, caplog: pytest.LogCaptureFixture, token: Any, reason: str
) -> None:
    with caplog.at_level(logging.INFO, logger="evpipeline.ndw.server"):
        r = versions(url, f"Bearer {token()}")
    assert r.status_code == 401
    assert refusal_reason(caplog) == reason


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "no Authorization header"),
        ("Token wrong", "unknown token"),
        ("Token", "unsupported scheme 'token'"),  # a scheme without credentials
        ("Basic YTpi", "unsupported scheme 'basic'"),
        ("Negotiate-and-then-some-more YTpi", "unsupported scheme 'negotiate-and-then-s'"),
    ],
)
def test_each_refusal_is_logged_with_the_request_and_why(
    url: str, caplog: pytest.LogCaptureFixture, authorization: str | None, reason: str
) -> None:
    with caplog.at_level(logging.INFO, logger="evpipeline.ndw.server"):
        r = versions(url, authorization)
    assert (r.status_code, r.json()["status_code"]) == (401, 2000)
    assert r.json()["status_message"] == "Unauthorized: missing or invalid credentials"
    [line] = [m.getMessage() for m in caplog.records if m.name == "evpipeline.ndw.server"]
    assert line == f"401 GET /ocpi/versions from 127.0.0.1: {reason}"


def test_auth_schemes_are_case_insensitive_and_spaces_around_credentials_ignored(url: str) -> None:
    encoded = base64.b64encode(TOKEN.encode()).decode()
    for authorization in (f"tOkEn {encoded}", f"Token   {encoded}", f"BEARER {issue_token(BOTH)}"):
        assert versions(url, authorization).status_code == 200, authorization


def test_a_bearer_token_on_a_server_without_oauth_is_refused_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        serve(OcpiServerSettings(token=TOKEN)) as server,
        caplog.at_level(logging.INFO, "evpipeline.ndw.server"),
    ):
        r = versions(server.url, f"Bearer {issue_token(BOTH)}")
    assert r.status_code == 401
    assert refusal_reason(caplog) == "OAuth2 is not configured"


def test_bearer_tokens_at_the_edges_of_what_we_accept(url: str) -> None:
    now = int(time.time())
    accepted = {
        "valid exactly as long as we issue, plus the leeway": signed(lifetime=LIFETIME + LEEWAY),
        "expired 5 s ago, within the 10 s leeway": signed(iat=now - 100, exp=now - 5),
        "nbf 0 (1970, a NumericDate)": signed(nbf=0),
        "nbf 0.0": signed(nbf=0.0),
        "fractional iat and exp": signed(iat=now + 0.5, exp=now + 60.5),
    }
    for name, token in accepted.items():
        assert versions(url, f"Bearer {token}").status_code == 200, name


def test_an_issued_token_carries_exactly_our_claims() -> None:
    token = issue_token(BOTH, now=1_800_000_000.7)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    jti = claims.pop("jti")
    assert len(jti) == 32 and int(jti, 16) >= 0
    assert claims == {
        "iss": "evpipeline-ocpi-pull",
        "aud": "ocpi-2.2.1-pull",
        "sub": CLIENT_ID,
        "iat": 1_800_000_000,
        "nbf": 1_800_000_000,
        "exp": 1_800_003_600,
        "scope": "ocpi:pull",
    }
    assert jwt.decode(issue_token(BOTH), options={"verify_signature": False})["jti"] != jti


# -- the challenge ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "challenge"),
    [
        (BOTH, 'Token realm="ocpi", Bearer realm="ocpi"'),
        (OcpiServerSettings(token=TOKEN), 'Token realm="ocpi"'),
        (OcpiServerSettings(client_id=CLIENT_ID, client_secret=CLIENT_SECRET), 'Bearer realm="ocpi"'),
        (OcpiServerSettings(), 'Token realm="ocpi"'),  # nothing enabled: still a challenge (RFC 9110 11.6.1)
    ],
    ids=["token and oauth", "token only", "oauth only", "neither"],
)
def test_the_challenge_names_exactly_the_enabled_schemes(
    settings: OcpiServerSettings, challenge: str
) -> None:
    with serve(settings) as server:
        for authorization in (None, "Token wrong", "Basic abc"):
            r = versions(server.url, authorization)
            assert (r.status_code, r.headers["WWW-Authenticate"]) == (401, challenge), authorization


def test_a_refused_bearer_token_adds_invalid_token_to_the_bearer_challenge(url: str) -> None:
    r = versions(url, f"Bearer {signed(aud='elsewhere')}")
    assert r.headers["WWW-Authenticate"] == 'Token realm="ocpi", Bearer realm="ocpi", error="invalid_token"'


# -- the token endpoint (RFC 6749 client credentials) ------------------------------------------------

FORM = "application/x-www-form-urlencoded"


def token_request(url: str, body: str | bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(url + "/oauth/token", data=body, headers=headers, timeout=10)


GOOD_FORM = f"grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"


@pytest.mark.parametrize(
    ("body", "headers", "status", "error", "description"),
    [
        (
            GOOD_FORM.replace("client_secret=", "client_secret=x"),
            {},
            401,
            "invalid_client",
            "client authentication failed",
        ),
        ("client_id=a&client_secret=b", {}, 400, "invalid_request", "grant_type is missing"),
        ("grant_type=password", {}, 400, "unsupported_grant_type", "only client_credentials is supported"),
        (GOOD_FORM + "&grant_type=client_credentials", {}, 400, "invalid_request", "a parameter is repeated"),
        (
            GOOD_FORM,
            {"Authorization": "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()},
            400,
            "invalid_request",
            "use one client authentication method, not two",
        ),
        (
            GOOD_FORM,
            {"Content-Type": "text/plain"},
            400,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ),
        (
            b"grant_type=client_credentials&client_id=\xff",
            {},
            400,
            "invalid_request",
            "the body is not UTF-8",
        ),
        (
            "grant_type=client_credentials&pad=" + "x" * 20_000,
            {},
            400,
            "invalid_request",
            "request body too large",
        ),
    ],
)
def test_each_token_refusal_says_why_and_is_never_cached(
    url: str, body: str | bytes, headers: dict[str, str], status: int, error: str, description: str
) -> None:
    """RFC 6749 5.2: the error and its description, `no-store`; a 401 names the scheme to use."""
    sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    r = token_request(url, body, sent)
    assert (r.status_code, r.json()) == (status, {"error": error, "error_description": description})
    assert (r.headers["Cache-Control"], r.headers["Pragma"]) == ("no-store", "no-cache")
    assert r.headers.get("WWW-Authenticate") == ('Basic realm="ocpi"' if status == 401 else None)


def test_a_granted_token_is_never_cached_and_names_its_scope(url: str) -> None:
    r = token_request(url, GOOD_FORM, {"Content-Type": FORM})
    assert (r.headers["Cache-Control"], r.headers["Pragma"]) == ("no-store", "no-cache")
    assert {k: v for k, v in r.json().items() if k != "access_token"} == {
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "ocpi:pull",
    }


def test_a_form_without_client_credentials_is_an_invalid_client_and_logged(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    for body in ("grant_type=client_credentials", f"grant_type=client_credentials&client_id={CLIENT_ID}"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="evpipeline.ndw.server"):
            r = token_request(url, body, {"Content-Type": FORM})
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client"), body
        assert [m.getMessage() for m in caplog.records if m.name == "evpipeline.ndw.server"] == [
            "token endpoint: invalid client credentials from 127.0.0.1"
        ]


def test_the_form_may_name_its_charset_and_may_be_exactly_16_kib(url: str) -> None:
    padded = GOOD_FORM + "&pad="
    padded += "x" * (16 * 1024 - len(padded))
    for body, content_type in ((GOOD_FORM, f"{FORM}; charset=UTF-8"), (padded, FORM)):
        assert len(body) <= 16 * 1024
        r = token_request(url, body, {"Content-Type": content_type})
        assert r.status_code == 200, (len(body), content_type)


def test_a_form_without_a_content_type_is_an_invalid_request(url: str) -> None:
    r = requests.post(url + "/oauth/token", data=GOOD_FORM.encode(), timeout=10)
    assert (r.status_code, r.json()) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "the body must be application/x-www-form-urlencoded",
        },
    )


def test_a_blank_client_secret_next_to_basic_is_still_two_authentication_methods(url: str) -> None:
    basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    r = token_request(
        url, "grant_type=client_credentials&client_secret=", {"Content-Type": FORM, "Authorization": basic}
    )
    assert (r.status_code, r.json()["error_description"]) == (
        400,
        "use one client authentication method, not two",
    )


# -- Basic client authentication at the token endpoint ----------------------------------------------


def token_with_basic(url: str, authorization: str) -> requests.Response:
    return requests.post(
        url + "/oauth/token",
        data="grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": authorization},
        timeout=10,
    )


def test_basic_credentials_with_a_colon_in_the_secret_and_extra_spaces_are_accepted(url: str) -> None:
    encoded = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for authorization in (f"Basic {encoded}", f"basic   {encoded}"):
        r = token_with_basic(url, authorization)
        assert r.status_code == 200, authorization
        assert r.json()["token_type"] == "Bearer"


def test_basic_credentials_that_are_not_strict_base64_are_refused(url: str) -> None:
    encoded = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for authorization in (f"Basic {encoded[:8]}*{encoded[8:]}", f"Basic {encoded}!"):
        r = token_with_basic(url, authorization)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client"), authorization


# -- paging parameters and the wire format -----------------------------------------------------------


def test_date_filters_read_fractions_and_a_lower_case_z() -> None:
    second = 1_793_520_000_000_000  # 2026-11-01T08:00:00Z in microseconds since the epoch
    assert parse_datetime("date_from", "2026-11-01T08:00:00z") == second
    assert parse_datetime("date_from", "2026-11-01T08:00:00.5Z") == second + 500_000
    assert parse_datetime("date_from", "2026-11-01T08:00:00.000042Z") == second + 42
    assert parse_datetime("date_from", "2026-11-01T08:00:00.123456789Z") == second + 123_456  # ns cut
    assert parse_datetime("date_from", "2026-11-01T10:00:00+02:00") == second
    assert parse_datetime("date_from", "2026-11-01T18:00:00+10:00") == second
    assert parse_datetime("date_from", "2026-11-01T02:30:00-05:30") == second
    assert parse_datetime("date_from", "2026-11-01T08:45:00+00:45") == second


def test_a_bad_date_filter_quotes_at_most_40_characters_of_it() -> None:
    for value in ("x" * 100, "2026-02-30T08:00:00Z" + "0" * 80):
        with pytest.raises(BadParameter) as refused:
            parse_datetime("date_to", value)
        assert repr(value[:40]) in str(refused.value) and repr(value[:41]) not in str(refused.value)


def test_data_goes_out_as_compact_utf8_json() -> None:
    assert dumps({"name": "Laadpunt Café", "ids": [1, 2]}) == '{"name":"Laadpunt Café","ids":[1,2]}'.encode()


def test_paging_refusals_name_the_parameter() -> None:
    refusals = {
        "offset": ({"offset": "-1"}, "offset must be a non-negative integer, got '-1'"),
        "limit": ({"limit": "ten"}, "limit must be a non-negative integer, got 'ten'"),
        "limit 0": ({"limit": "0"}, "limit must be at least 1"),
        "date_from": (
            {"date_from": "today"},
            "date_from is not an OCPI DateTime (e.g. 2026-11-01T08:00:00Z): 'today'",
        ),
        "date_to": (
            {"date_to": "2026-13-01T00:00:00Z"},
            "date_to is not a valid date and time: '2026-13-01T00:00:00Z'",
        ),
        "long": ({"offset": "x" * 100}, f"offset must be a non-negative integer, got {'x' * 40!r}"),
        "long date": (  # padded past 40 characters, yet a DateTime once stripped
            {"date_to": "2026-02-30T08:00:00Z" + " " * 30},
            f"date_to is not a valid date and time: {'2026-02-30T08:00:00Z' + ' ' * 20!r}",
        ),
    }
    for name, (params, message) in refusals.items():
        with pytest.raises(BadParameter) as refused:
            parse_page_query(params, cap=5)
        assert str(refused.value) == message, name


def test_an_offset_of_thousands_of_digits_is_past_the_end_not_an_error() -> None:
    assert parse_page_query({"offset": "9" * 5000, "limit": "3"}, cap=5).offset == 10**18
    assert parse_page_query({"offset": "9" * 18}, cap=5).offset == 999_999_999_999_999_999


def test_every_answer_is_an_ocpi_envelope_stamped_now(url: str) -> None:
    r = versions(url, f"Token {TOKEN}")
    body = r.json()
    assert (r.status_code, body["status_code"], body["status_message"]) == (200, 1000, "Success")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", body["timestamp"])
    stamped = datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 5


def test_an_unhandled_error_is_an_ocpi_3000_envelope_with_the_request_ids_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = Starlette(routes=[Route("/ocpi/boom", boom)])
    app.add_middleware(OcpiMiddleware, settings=BOTH)
    with BackgroundServer(app) as server, caplog.at_level(logging.ERROR, logger="evpipeline.ndw.server"):
        r = requests.get(
            server.url + "/ocpi/boom",
            headers={"Authorization": f"Token {TOKEN}", "X-Request-ID": "req-1"},
            timeout=10,
        )
    assert r.status_code == 500 and r.headers["X-Request-ID"] == "req-1"
    body = r.json()
    assert (body["status_code"], body["status_message"], "data" in body) == (
        3000,
        "Internal server error",
        False,
    )
    [logged] = [m for m in caplog.records if m.name == "evpipeline.ndw.server"]
    assert logged.getMessage() == "OCPI pull server: GET /ocpi/boom failed" and logged.exc_info is not None
