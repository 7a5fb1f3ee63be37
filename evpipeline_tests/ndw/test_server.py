"""The OCPI 2.2.1 pull server over real HTTP: export parity, paging, filters, auth, ids, reloads."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from evpipeline.model.snapshot import SNAPSHOT_NAME, publish_snapshot
from evpipeline.ndw.export import OCPI_TS, OcpiExport, build_export, write_export
from evpipeline.ndw.pull_auth import JWT_AUDIENCE, JWT_ISSUER, issue_token
from evpipeline.ndw.pull_settings import OcpiServerSettings
from evpipeline.ndw.pull_snapshot import DataVersion, SnapshotStore
from evpipeline.ndw.server import create_ocpi_app
from evpipeline.serving import BackgroundServer
from evpipeline.simulators.ndw import crawl
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart
from evpipeline_tests.typed import present

TOKEN = "test-ocpi-token"
CLIENT_ID, CLIENT_SECRET = "ndw-test-client", "ndw-test-secret"
CAP = 5
SETTINGS = OcpiServerSettings(token=TOKEN, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, page_cap=CAP)
B64 = "Token " + base64.b64encode(TOKEN.encode()).decode()
LOCATIONS = "/ocpi/2.2.1/locations"
TARIFFS = "/ocpi/2.2.1/tariffs"


def fixture_mart() -> MartRows:
    """The standard mart with spread-out timestamps (pairs share one) and an id two CPOs both use."""
    m = standard_mart(n_good=17)
    for row in m.locations:
        n = int(row["location_id"][-4:])
        if n <= 17:  # LOC-0001..17 -> 08:10, 08:10, 08:20, 08:20, ...
            row["last_updated"] = row["source_last_updated"] = later(10 * ((n + 1) // 2))
    m.tariff("T-STD", party="BET")
    other = m.location(1, party="BET", updated=later(500))  # LOC-0001 at a second CPO
    m.connector(m.evse(other, 1), 1)
    return m


def publish(warehouse: WarehouseResource, directory: Path, tag: str) -> None:
    with warehouse.get_connection() as con:
        publish_snapshot(con, directory, tag)


def export_of(warehouse: WarehouseResource) -> OcpiExport:
    with warehouse.get_connection() as con:
        return build_export(con)


@dataclass
class Served:
    url: str
    export: OcpiExport
    directory: Path
    store: SnapshotStore


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("ocpi-server")
    warehouse = WarehouseResource(database=str(root / "warehouse.duckdb"))
    fixture_mart().write(warehouse)
    publish(warehouse, root / "snapshots", "fixture")
    store = SnapshotStore(root / "snapshots" / SNAPSHOT_NAME, poll_interval=60)
    with BackgroundServer(create_ocpi_app(store, SETTINGS)) as server:
        yield Served(server.url, export_of(warehouse), root, store)


def get(
    served: Served, path: str, auth: str | None = B64, headers: dict[str, str] | None = None, **params: Any
) -> requests.Response:
    sent = {**({"Authorization": auth} if auth is not None else {}), **(headers or {})}
    return requests.get(served.url + path, params=params, headers=sent, timeout=10)


def ids(response: requests.Response) -> list[str]:
    return [obj["id"] for obj in response.json()["data"]]


def next_link(response: requests.Response) -> str | None:
    return response.links.get("next", {}).get("url")


def collect(served: Served, path: str = LOCATIONS, **params: Any) -> tuple[list[str], int]:
    """Ids over every page of a listing (following Link), and the X-Total-Count."""
    r = get(served, path, **params)
    found, link = ids(r), next_link(r)
    while link:
        r = requests.get(link, headers={"Authorization": B64}, timeout=10)
        found, link = found + ids(r), next_link(r)
    return found, int(r.headers["X-Total-Count"])


def objects(bodies: list[str]) -> list[dict[str, Any]]:
    return [json.loads(b) for b in bodies]


# -- the complete set ------------------------------------------------------------------------


def test_crawl_returns_exactly_the_export_and_the_daily_file(served: Served, tmp_path: Path) -> None:
    manifest = write_export(served.export, tmp_path, "2026-11-02")
    daily_locations = json.loads((manifest.directory / "locations.json").read_text())
    daily_tariffs = json.loads((manifest.directory / "tariffs.json").read_text())
    assert (
        len(served.export.locations) == 21 and len(served.export.tariffs) == 3
    )  # 17 good, LOC-0102/0103/0106, BET's LOC-0001

    result = crawl(served.url, token=TOKEN)  # checks echoes, X-Total-Count, X-Limit, uniqueness, NDW profile
    assert result.objects == objects(served.export.locations) == daily_locations
    seen = [{k.lower(): v for k, v in h.items()} for h in result.headers_seen]
    assert result.pages == 5 and [h["x-limit"] for h in seen] == ["5"] * 5
    assert "link" not in seen[-1] and all("link" in h for h in seen[:-1])

    tariffs = crawl(served.url, token=TOKEN, module="tariffs", limit=2)
    assert tariffs.objects == objects(served.export.tariffs) == daily_tariffs and tariffs.pages == 2

    # the same through OAuth2, with the raw-token compatibility form, and with filters carried along
    oauth = crawl(served.url, oauth=(served.url + "/oauth/token", CLIENT_ID, CLIENT_SECRET), limit=4)
    assert oauth.objects == daily_locations
    raw = crawl(
        served.url, token=TOKEN, base64_token=False, limit=3, params={"date_from": "2026-11-01T08:30:00Z"}
    )
    assert raw.objects == [o for o in daily_locations if o["last_updated"] >= "2026-11-01T08:30:00Z"]
    assert len(raw.urls) == 5 and all(
        "date_from=2026-11-01T08:30:00Z" in u for u in raw.urls[1:]
    )  # crawl checks them too


def test_pages_are_stable_and_in_export_order(served: Served) -> None:
    first = get(served, LOCATIONS, offset=5, limit=5)
    again = get(served, LOCATIONS, offset=5, limit=5)
    assert first.content.split(b'"timestamp"')[0] == again.content.split(b'"timestamp"')[0]
    assert ids(first) == [k[2] for k in served.export.location_keys[5:10]]
    body = first.json()
    assert body["status_code"] == 1000 and body["status_message"] == "Success"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", body["timestamp"])


# -- paging edge cases ------------------------------------------------------------------------


def test_limit_over_the_cap_is_capped_and_the_link_uses_the_cap(served: Served) -> None:
    r = get(served, LOCATIONS, limit=1000)
    assert r.status_code == 200 and len(r.json()["data"]) == CAP
    assert r.headers["X-Limit"] == str(CAP) and r.headers["X-Total-Count"] == "21"
    link = next_link(r)
    assert link is not None and link.startswith(served.url + LOCATIONS + "?")
    assert "offset=5&limit=5&" in link and "snapshot=" + present(served.store.current).token in link


def test_default_limit_and_smaller_limits(served: Served) -> None:
    assert get(served, LOCATIONS).headers["X-Limit"] == str(CAP)
    r = get(served, LOCATIONS, limit=2, offset=3)
    assert ids(r) == [k[2] for k in served.export.location_keys[3:5]] and r.headers["X-Limit"] == "2"
    assert "offset=5&limit=2" in (next_link(r) or "")


def test_last_page_and_offset_beyond_the_end(served: Served) -> None:
    last = get(served, LOCATIONS, offset=16, limit=5)  # exactly the last 5 of 21
    assert len(last.json()["data"]) == 5 and "Link" not in last.headers
    partial = get(served, LOCATIONS, offset=19, limit=5)
    assert ids(partial) == [k[2] for k in served.export.location_keys[19:]] and "Link" not in partial.headers
    beyond = get(served, LOCATIONS, offset=500)
    assert beyond.status_code == 200 and beyond.json()["data"] == [] and "Link" not in beyond.headers
    assert beyond.headers["X-Total-Count"] == "21"
    huge = get(served, LOCATIONS, offset="9" * 40)
    assert huge.status_code == 200 and huge.json()["data"] == []


def test_empty_window(served: Served) -> None:
    r = get(served, LOCATIONS, date_from="2030-01-01T00:00:00Z")
    assert r.status_code == 200 and r.json()["data"] == [] and "Link" not in r.headers
    assert r.headers["X-Total-Count"] == "0" and r.headers["X-Limit"] == str(CAP)
    backwards = get(served, TARIFFS, date_from="2026-11-02T00:00:00Z", date_to="2026-11-01T00:00:00Z")
    assert backwards.json()["data"] == [] and backwards.headers["X-Total-Count"] == "0"


def test_date_from_inclusive_date_to_exclusive_on_exact_timestamps(served: Served) -> None:
    stamp = later(20).strftime(OCPI_TS)  # LOC-0003 and LOC-0004 were updated exactly then
    expected_from = [
        json.loads(b)["id"] for b in served.export.locations if json.loads(b)["last_updated"] >= stamp
    ]
    expected_to = [
        json.loads(b)["id"] for b in served.export.locations if json.loads(b)["last_updated"] < stamp
    ]

    assert ids(get(served, LOCATIONS, date_from=stamp, date_to=later(21).strftime(OCPI_TS))) == [
        "LOC-0003",
        "LOC-0004",
    ]
    assert ids(get(served, LOCATIONS, date_from=stamp, date_to=stamp)) == []
    assert collect(served, date_from=stamp) == (expected_from, len(expected_from))
    assert "LOC-0003" in expected_from and "LOC-0003" not in expected_to
    assert collect(served, date_to=stamp) == (expected_to, len(expected_to))
    assert {"LOC-0001", "LOC-0002", "LOC-0102"} <= set(expected_to) and len(expected_to) + len(
        expected_from
    ) == 21
    # one second later excludes them; fractions and offsets are compared exactly
    assert collect(served, date_from=later(20).replace(second=1).strftime(OCPI_TS))[0] == expected_from[2:]
    assert ids(
        get(served, LOCATIONS, date_from="2026-11-01T08:19:59.5Z", date_to="2026-11-01T08:20:00.5Z")
    ) == ["LOC-0003", "LOC-0004"]
    assert ids(
        get(served, LOCATIONS, date_from="2026-11-01T09:20:00+01:00", date_to="2026-11-01T08:20:01")
    ) == ["LOC-0003", "LOC-0004"]


def test_next_links_carry_the_original_filters(served: Served) -> None:
    r = get(
        served,
        LOCATIONS,
        date_from="2026-11-01T08:00:00Z",
        date_to="2026-11-01T09:00:00Z",
        limit=3,
        foo="bar",
    )
    link = next_link(r)
    assert (
        link is not None
        and "date_from=2026-11-01T08:00:00Z" in link
        and "date_to=2026-11-01T09:00:00Z" in link
    )
    assert "foo" not in link
    seen = ids(r)
    while link:
        r = requests.get(link, headers={"Authorization": B64}, timeout=10)
        seen += ids(r)
        link = next_link(r)
    expected = [
        json.loads(b)["id"]
        for b in served.export.locations
        if "2026-11-01T08:00:00Z" <= json.loads(b)["last_updated"] < "2026-11-01T09:00:00Z"
    ]
    assert seen == expected and len(seen) == int(r.headers["X-Total-Count"]) > 3


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "-1"},
        {"offset": "abc"},
        {"offset": "1.5"},
        {"limit": "0"},
        {"limit": "-5"},
        {"limit": "ten"},
        {"limit": "1e3"},
        {"date_from": "yesterday"},
        {"date_from": "2026-13-01T00:00:00Z"},
        {"date_to": "2026-11-01"},
        {"date_to": "2026-11-31T00:00:00Z"},
        {"date_from": "2026-11-01T08:00:00+0100"},
    ],
)
def test_bad_parameters_are_400_with_2001(served: Served, params: dict[str, str]) -> None:
    r = requests.get(
        served.url + LOCATIONS, params=params, headers={"Authorization": B64}, timeout=10
    )  # as get(), but no param can land in its auth/headers
    body = r.json()
    assert r.status_code == 400 and body["status_code"] == 2001 and "data" not in body
    assert next(iter(params)) in body["status_message"]


# -- single objects ---------------------------------------------------------------------------


def test_location_evse_and_connector_sub_paths(served: Served) -> None:
    exported = {
        json.loads(b)["id"]: json.loads(b)
        for b in served.export.locations
        if json.loads(b)["party_id"] == "ALF"
    }
    location = get(served, f"{LOCATIONS}/LOC-0002")
    assert location.status_code == 200 and location.json()["data"] == exported["LOC-0002"]
    evse = get(served, f"{LOCATIONS}/LOC-0002/LOC-0002-E2").json()["data"]
    assert evse == exported["LOC-0002"]["evses"][1]
    connector = get(served, f"{LOCATIONS}/LOC-0002/LOC-0002-E2/2/").json()["data"]
    assert connector == exported["LOC-0002"]["evses"][1]["connectors"][1]
    assert (
        get(served, f"{LOCATIONS}/loc-0106/loc-0106-e1").json()["data"]["status"] == "REMOVED"
    )  # CiString ids


@pytest.mark.parametrize(
    "path",
    [
        "/NOPE",
        "/LOC-0101",
        "/LOC-0201",
        "/LOC-0102/LOC-0102-E2",
        "/LOC-0002/LOC-0002-E9",
        "/LOC-0002/LOC-0002-E1/9",
    ],
)
def test_unknown_ids_are_404(served: Served, path: str) -> None:
    r = get(served, LOCATIONS + path)  # 0101 rejected, 0201 private, 0102-E2 left out: not exported = unknown
    assert r.status_code == 404 and r.json()["status_code"] == 2003 and "data" not in r.json()


def test_unknown_paths_and_methods(served: Served) -> None:
    r = get(served, "/ocpi/2.2.1/sessions")
    assert r.status_code == 404 and r.json()["status_code"] == 2000
    put = requests.put(served.url + LOCATIONS, headers={"Authorization": B64}, timeout=10)
    assert put.status_code == 405 and put.json()["status_code"] == 2000 and "GET" in put.headers["Allow"]


def test_a_location_id_used_by_two_cpos_needs_the_routing_headers(served: Served) -> None:
    ambiguous = get(served, f"{LOCATIONS}/LOC-0001")
    assert ambiguous.status_code == 409 and ambiguous.json()["status_code"] == 2002
    bet = get(
        served, f"{LOCATIONS}/LOC-0001", headers={"OCPI-to-country-code": "NL", "OCPI-to-party-id": "bet"}
    )
    assert bet.status_code == 200 and bet.json()["data"]["party_id"] == "BET"
    alf = get(served, f"{LOCATIONS}/LOC-0001/LOC-0001-E2", headers={"OCPI-to-party-id": "ALF"})
    assert alf.status_code == 200 and alf.json()["data"]["uid"] == "LOC-0001-E2"


def test_versions_and_details(served: Served) -> None:
    versions = get(served, "/ocpi/versions").json()
    assert versions["data"] == [{"version": "2.2.1", "url": f"{served.url}/ocpi/2.2.1"}]
    details = get(served, "/ocpi/2.2.1").json()["data"]
    assert details == {
        "version": "2.2.1",
        "endpoints": [
            {"identifier": "locations", "role": "SENDER", "url": f"{served.url}/ocpi/2.2.1/locations"},
            {"identifier": "tariffs", "role": "SENDER", "url": f"{served.url}/ocpi/2.2.1/tariffs"},
        ],
    }
    assert get(served, "/ocpi/versions", auth=None).status_code == 401
    assert get(served, "/ocpi/2.2.1", auth="Token nope").status_code == 401


def test_public_url_is_used_in_links_and_versions(served: Served) -> None:
    store = SnapshotStore.from_export(served.export)
    settings = OcpiServerSettings(token=TOKEN, page_cap=CAP, public_url="https://ocpi.example.nl/evp/")
    with BackgroundServer(create_ocpi_app(store, settings)) as server:
        headers = {"Authorization": B64}
        r = requests.get(
            server.url + LOCATIONS, params={"date_to": "2027-01-01T00:00:00Z"}, headers=headers, timeout=10
        )
        assert (next_link(r) or "").startswith(
            "https://ocpi.example.nl/evp/ocpi/2.2.1/locations?offset=5&limit=5&date_to="
        )
        versions = requests.get(server.url + "/ocpi/versions", headers=headers, timeout=10).json()["data"]
        assert versions == [{"version": "2.2.1", "url": "https://ocpi.example.nl/evp/ocpi/2.2.1"}]


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        B64,
        f"Token {TOKEN}",
        f"token   {base64.b64encode(TOKEN.encode()).decode()}",
        f"TOKEN {TOKEN}",
    ],
)
def test_token_forms_accepted(served: Served, header: str) -> None:
    assert get(served, LOCATIONS, auth=header).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Token",
        "Token wrong",
        f"Token {base64.b64encode((TOKEN + chr(10)).encode()).decode()}",  # the spec example's bug
        f"Token {TOKEN}x",
        f"Basic {base64.b64encode(f'{CLIENT_ID}:{CLIENT_SECRET}'.encode()).decode()}",
        f"Bearer {TOKEN}",
        f"{TOKEN}",
    ],
)
def test_token_refusals_are_401(served: Served, header: str | None) -> None:
    for path in (LOCATIONS, TARIFFS, f"{LOCATIONS}/LOC-0002", "/ocpi/versions"):
        r = get(served, path, auth=header)
        assert r.status_code == 401, path
        body = r.json()
        assert body["status_code"] == 2000 and "data" not in body
        assert "Token" in r.headers["WWW-Authenticate"] and "Bearer" in r.headers["WWW-Authenticate"]


def token_request(served: Served, **kwargs: Any) -> requests.Response:
    return requests.post(served.url + "/oauth/token", timeout=10, **kwargs)


def test_oauth2_client_credentials(served: Served) -> None:
    form = token_request(
        served,
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert form.status_code == 200 and form.headers["Cache-Control"] == "no-store"
    grant = form.json()
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 3600
    basic = token_request(served, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert basic.status_code == 200
    for access in (grant["access_token"], basic.json()["access_token"]):
        claims = jwt.decode(access, options={"verify_signature": False})
        assert claims["iss"] == JWT_ISSUER and claims["aud"] == JWT_AUDIENCE and claims["sub"] == CLIENT_ID
        assert claims["exp"] - claims["iat"] == 3600
        r = get(served, LOCATIONS, auth=f"Bearer {access}", limit=2)
        assert r.status_code == 200 and len(r.json()["data"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        (
            {"data": {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"}},
            401,
            "invalid_client",
        ),
        (
            {
                "data": {
                    "grant_type": "client_credentials",
                    "client_id": "someone",
                    "client_secret": CLIENT_SECRET,
                }
            },
            401,
            "invalid_client",
        ),
        ({"data": {"grant_type": "client_credentials"}, "auth": (CLIENT_ID, "wrong")}, 401, "invalid_client"),
        ({"data": {"grant_type": "client_credentials"}}, 401, "invalid_client"),
        (
            {"data": {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}},
            400,
            "unsupported_grant_type",
        ),
        ({"data": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}}, 400, "invalid_request"),
        (
            {
                "json": {
                    "grant_type": "client_credentials",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                }
            },
            400,
            "invalid_request",
        ),
    ],
)
def test_oauth2_token_endpoint_refusals(
    served: Served, kwargs: dict[str, Any], status: int, error: str
) -> None:
    r = token_request(served, **kwargs)
    assert r.status_code == status and r.json()["error"] == error and "access_token" not in r.json()


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_bearer_refusals_are_401(served: Served) -> None:
    good = issue_token(SETTINGS)
    now = time.time()
    other_key = OcpiServerSettings(client_id=CLIENT_ID, client_secret="another-secret")
    claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": CLIENT_ID, "iat": int(now), "exp": int(now) + 60}
    refused = {
        "expired": issue_token(SETTINGS, now=now - 7200),
        "tampered payload": _tampered(good),
        "tampered signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "other key": issue_token(other_key),
        "other client": issue_token(OcpiServerSettings(client_id="someone", client_secret=CLIENT_SECRET)),
        "wrong audience": jwt.encode({**claims, "aud": "elsewhere"}, SETTINGS.jwt_key(), algorithm="HS256"),
        "wrong issuer": jwt.encode({**claims, "iss": "elsewhere"}, SETTINGS.jwt_key(), algorithm="HS256"),
        "no exp": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"}, SETTINGS.jwt_key(), algorithm="HS256"
        ),
        "alg none": jwt.encode(claims, "", algorithm="none"),  # no key ("", as PyJWT types it)
        # Signed with our key, yet not a token we issue: NumericDates typed loosely or absurd.
        "exp a numeric string": jwt.encode(
            {**claims, "exp": str(int(now) + 60)}, SETTINGS.jwt_key(), algorithm="HS256"
        ),
        "exp 10**400": jwt.encode({**claims, "exp": 10**400}, SETTINGS.jwt_key(), algorithm="HS256"),
        "exp true": jwt.encode({**claims, "exp": True, "iat": True}, SETTINGS.jwt_key(), algorithm="HS256"),
        "iat a string": jwt.encode({**claims, "iat": str(int(now))}, SETTINGS.jwt_key(), algorithm="HS256"),
        "nbf a string": jwt.encode({**claims, "nbf": "0"}, SETTINGS.jwt_key(), algorithm="HS256"),
        "valid for ten years": jwt.encode(
            {**claims, "exp": int(now) + 10 * 365 * 86400}, SETTINGS.jwt_key(), algorithm="HS256"
        ),
        "issued in the future": jwt.encode(
            {**claims, "iat": int(now) + 3600, "exp": int(now) + 3660}, SETTINGS.jwt_key(), algorithm="HS256"
        ),
        "garbage": "not.a.jwt",
    }
    assert get(served, LOCATIONS, auth=f"Bearer {good}").status_code == 200
    for name, token in refused.items():
        r = get(served, LOCATIONS, auth=f"Bearer {token}")
        assert r.status_code == 401, name
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"] and "data" not in r.json()


def test_jwt_key_derivation() -> None:
    derived = OcpiServerSettings(client_id="c", client_secret="s").jwt_key()
    assert len(derived) == 32 and derived == OcpiServerSettings(client_id="c", client_secret="s").jwt_key()
    assert derived != OcpiServerSettings(client_id="c", client_secret="s2").jwt_key()
    explicit = OcpiServerSettings(client_id="c", client_secret="s", jwt_secret="k").jwt_key()
    assert (
        explicit != derived
        and explicit == OcpiServerSettings(client_id="c", client_secret="other", jwt_secret="k").jwt_key()
    )


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCPI_TOKEN", "env-token")
    monkeypatch.delenv("OCPI_PUBLIC_URL", raising=False)
    monkeypatch.delenv("OCPI_JWT_SECRET", raising=False)
    s = OcpiServerSettings.from_env(page_cap=7)
    assert s.token == "env-token" and s.public_url == "" and s.page_cap == 7 and s.oauth_enabled
    monkeypatch.setenv("OCPI_PUBLIC_URL", "https://x.example")
    assert OcpiServerSettings.from_env().public_url == "https://x.example"


def test_disabled_schemes_refuse_everything(served: Served) -> None:
    store = SnapshotStore.from_export(served.export)
    with BackgroundServer(
        create_ocpi_app(store, OcpiServerSettings(token="", client_id="", client_secret=""))
    ) as server:
        for header in (
            "Token ",
            "Token " + base64.b64encode(b"").decode(),
            "Bearer " + issue_token(OcpiServerSettings()),
        ):
            assert (
                requests.get(
                    server.url + LOCATIONS, headers={"Authorization": header}, timeout=10
                ).status_code
                == 401
            )
        r = requests.post(
            server.url + "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": "", "client_secret": ""},
            timeout=10,
        )
        assert r.status_code == 401


# -- request ids ------------------------------------------------------------------------------


def test_request_and_correlation_ids_echoed_or_generated(served: Served) -> None:
    for auth, path, status in (
        (B64, LOCATIONS, 200),
        (None, LOCATIONS, 401),
        (B64, f"{LOCATIONS}/NOPE", 404),
        (B64, LOCATIONS + "?limit=0", 400),
    ):
        sent = {"X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4())}
        r = get(served, path, auth=auth, headers=sent)
        assert r.status_code == status
        assert (
            r.headers["X-Request-ID"] == sent["X-Request-ID"]
            and r.headers["X-Correlation-ID"] == sent["X-Correlation-ID"]
        )
    generated = get(served, LOCATIONS)
    assert uuid.UUID(generated.headers["X-Request-ID"]) != uuid.UUID(generated.headers["X-Correlation-ID"])
    token = token_request(
        served, data={"grant_type": "client_credentials"}, headers={"X-Request-ID": "abc-1"}
    )
    assert token.headers["X-Request-ID"] == "abc-1"


# -- reloads while the pipeline writes ----------------------------------------------------------


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_reload_mid_crawl_keeps_the_crawl_consistent(tmp_path: Path) -> None:
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    snapshots = tmp_path / "snapshots"
    store = SnapshotStore(snapshots / SNAPSHOT_NAME, poll_interval=0.05)
    with BackgroundServer(create_ocpi_app(store, SETTINGS)) as server:
        auth = {"Authorization": B64}
        # no snapshot yet: 503, never an empty set (which NDW would take as "everything is gone")
        early = requests.get(server.url + LOCATIONS, headers=auth, timeout=10)
        assert (
            early.status_code == 503
            and early.json()["status_code"] == 3000
            and "Retry-After" in early.headers
        )
        assert requests.get(server.url + "/health", timeout=10).status_code == 503

        standard_mart(n_good=6).write(warehouse)
        publish(warehouse, snapshots, "run1")
        _wait_for(lambda: store.current is not None)
        old = export_of(warehouse)
        first_version = present(store.current).token

        first = requests.get(server.url + LOCATIONS, params={"limit": 3}, headers=auth, timeout=10)
        seen = first.json()["data"]
        link = next_link(first)
        assert link is not None and f"snapshot={first_version}" in link

        # the pipeline writes (holding the live warehouse) and publishes a changed snapshot
        m = MartRows()
        new = m.location(0, updated=later(5))  # sorts first: would shift every later page
        m.connector(m.evse(new, 1), 1)
        m.location(4, name="Laadplein Vier", updated=later(6))
        m.write(warehouse)
        with warehouse.get_connection() as live:  # the live file stays locked by the writer meanwhile
            publish_snapshot(live, snapshots, "run2")
            _wait_for(lambda: present(store.current).token != first_version)
            while link:
                page = requests.get(link, headers=auth, timeout=10)
                assert page.headers["X-Total-Count"] == str(len(old.locations))
                seen += page.json()["data"]
                link = next_link(page)
        assert seen == objects(old.locations)

        fresh = export_of(warehouse)
        assert len(fresh.locations) == len(old.locations) + 1
        recrawl = crawl(server.url, token=TOKEN, limit=3)
        assert recrawl.objects == objects(fresh.locations)
        assert any(o["name"] == "Laadplein Vier" for o in recrawl.objects)

        # an unknown (expired, or another replica's) version token gets the current data
        unknown: dict[str, str | int] = {"offset": 3, "limit": 3, "snapshot": "0" * 16}
        stale = requests.get(server.url + LOCATIONS, params=unknown, headers=auth, timeout=10)
        assert stale.headers["X-Total-Count"] == str(len(fresh.locations))
        assert stale.json()["data"] == objects(fresh.locations)[3:6]

        # a republished but identical snapshot keeps the version (content-addressed)
        current = present(store.current).token
        reloads = store.reloads
        publish(warehouse, snapshots, "run3")
        assert (
            store.refresh() is False and present(store.current).token == current and store.reloads == reloads
        )

        # a broken file is not served; the last good version stays
        broken = snapshots / ".broken"
        broken.write_bytes(b"not a duckdb file" * 100)
        os.replace(broken, snapshots / SNAPSHOT_NAME)
        assert store.refresh(force=True) is False and store.last_error
        assert crawl(server.url, token=TOKEN).objects == objects(fresh.locations)


def test_previous_versions_expire() -> None:
    now = [1000.0]
    store = SnapshotStore(None, keep_previous=1, retain_seconds=600, clock=lambda: now[0])
    one, two, three = (
        OcpiExport(
            locations=[json.dumps({"id": str(i)})],
            location_keys=[("NL", "ALF", str(i))],
            location_updated=[later(i)],
        )
        for i in range(3)
    )
    versions = [DataVersion.from_export(e) for e in (one, two, three)]
    for v in versions:
        assert store.install(v)
    assert store.version(versions[1].token) is versions[1]  # the previous one is kept
    assert store.version(versions[0].token) is versions[2]  # only one previous: the oldest is gone
    now[0] += 600
    assert store.version(versions[1].token) is versions[1]
    now[0] += 1
    assert store.version(versions[1].token) is versions[2]  # expired
    assert store.version(None) is versions[2] and store.current is versions[2]
