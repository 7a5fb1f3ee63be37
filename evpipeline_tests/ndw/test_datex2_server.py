"""DATEX II pull endpoints on the OCPI pull server, over real HTTP: auth as the OCPI routes, the four
documents of the snapshot version the OCPI routes serve (valid, the publisher's bytes for that state
and publicationTime), content types, reloads and cleanup, and the creator from the environment."""

from __future__ import annotations

import functools
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import requests

from evpipeline.datex2 import Publisher
from evpipeline.model.snapshot import SNAPSHOT_NAME, publish_snapshot
from evpipeline.ndw.datex2_export import write_publications
from evpipeline.ndw.pull_snapshot import SnapshotStore, load_snapshot
from evpipeline.ndw.server import app_from_env, create_ocpi_app
from evpipeline.serving import BackgroundServer
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.fleet import CREATOR, point_statuses, sites
from evpipeline_tests.datex2.schemas import assert_valid
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart
from evpipeline_tests.ndw.test_server import B64, CLIENT_ID, CLIENT_SECRET, SETTINGS, TOKEN

DOCS = {
    "static.xml": "application/xml",
    "static.json": "application/json",
    "status.xml": "application/xml",
    "status.json": "application/json",
    "rejections.json": "application/json",
}
PREFIX = "/datex2/v3.7/"


@dataclass
class Served:
    url: str
    root: Path
    store: SnapshotStore
    warehouse: WarehouseResource


def store_for(root: Path) -> SnapshotStore:
    loader = functools.partial(load_snapshot, countries=["NLD"], creator=CREATOR)
    return SnapshotStore(
        root / "snapshots" / SNAPSHOT_NAME,
        poll_interval=60,
        publications=root / "snapshots" / "datex2",
        loader=loader,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("datex2-server")
    warehouse = WarehouseResource(database=str(root / "warehouse.duckdb"))
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        publish_snapshot(con, root / "snapshots", "fixture")
    store = store_for(root)
    with BackgroundServer(create_ocpi_app(store, SETTINGS)) as server:
        yield Served(server.url, root, store, warehouse)


def get(url: str, name: str, auth: str | None = B64, **params: str) -> requests.Response:
    headers = {"Authorization": auth} if auth is not None else {}
    return requests.get(url + PREFIX + name, headers=headers, params=params, timeout=30)


def publication_time(static_json: bytes) -> datetime:
    stamp = json.loads(static_json)["payload"]["aegiEnergyInfrastructureTablePublication"]["publicationTime"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_auth_like_the_ocpi_routes(served: Served) -> None:
    for name in DOCS:
        assert get(served.url, name, auth=None).status_code == 401
        assert get(served.url, name, auth="Token wrong").status_code == 401
    token = requests.post(
        served.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()["access_token"]
    assert get(served.url, "static.xml", auth=f"Bearer {token}").status_code == 200
    assert get(served.url, "nonsense.xml").status_code == 404


def test_the_four_documents_of_the_served_version(served: Served, tmp_path: Path) -> None:
    version = served.store.current
    assert version is not None
    answers = {name: get(served.url, name) for name in DOCS}
    for name, media in DOCS.items():
        r = answers[name]
        assert r.status_code == 200, (name, r.text[:300])
        assert r.headers["content-type"].startswith(media) and "charset=utf-8" in r.headers["content-type"]
        assert r.headers["X-Data-Version"] == version.token
        if name != "rejections.json":
            kind, fmt = name.split(".")
            assert_valid(kind, fmt, r.content)
    # They are the publisher's documents of the served state, published when the snapshot loaded.
    when = publication_time(answers["static.json"].content)
    with served.warehouse.get_connection() as con:
        daily = write_publications(
            con, tmp_path / "day", countries=["NLD"], creator=CREATOR, published_at=when
        )
    for name in DOCS:
        assert answers[name].content == (daily.directory / name).read_bytes(), name
    # The OCPI routes serve the same version: its pinned next link names the token the DATEX II routes report.
    ocpi = requests.get(
        served.url + "/ocpi/2.2.1/locations",
        headers={"Authorization": B64},
        params={"limit": "1"},
        timeout=10,
    )
    assert f"snapshot={version.token}" in ocpi.headers["Link"]
    assert len(sites(json.loads(answers["static.json"].content))) == int(ocpi.headers["X-Total-Count"]) == 8


def change(served: Served, status: str, minutes: int) -> None:
    """The pipeline's way: a status change of LOC-0001-E1 through the shared merge."""
    m = MartRows()
    m.evse(m.location(1), 1, status=status, updated=later(minutes))
    m.evses[0]["source_last_updated"] = later(minutes)
    m.locations.clear()
    m.write(served.warehouse, run_id=f"change-{minutes}")


@pytest.mark.slow
def test_a_new_snapshot_is_served_and_the_old_files_go(served: Served) -> None:
    old = served.store.current
    assert old is not None and old.publications is not None
    first = get(served.url, "status.json").content
    change(served, "OUTOFORDER", 60)
    with served.warehouse.get_connection() as con:
        publish_snapshot(con, served.root / "snapshots", "second")
    assert served.store.refresh(), served.store.last_error
    new = served.store.current
    assert new is not None and new.token != old.token
    r = get(served.url, "status.json")
    assert r.headers["X-Data-Version"] == new.token and r.content != first
    (point,) = [
        p
        for _, _, p in point_statuses(json.loads(r.content))
        if p["reference"]["idG"] == "NL:ALF:LOC-0001:LOC-0001-E1"
    ]
    assert (point["status"], point["lastUpdated"]) == ({"value": "outOfOrder"}, "2026-11-01T09:00:00Z")
    expected = io.BytesIO()
    with served.warehouse.get_connection() as con, Publisher(con, ["NLD"], CREATOR) as publisher:
        publisher.write(
            "status", "json", expected, published_at=publication_time(get(served.url, "static.json").content)
        )
    assert r.content == expected.getvalue()
    # The previous version stays reachable for pinned readers while it is retained...
    pinned = get(served.url, "status.json", snapshot=old.token)
    assert pinned.headers["X-Data-Version"] == old.token and pinned.content == first
    # ...and its files go with it once it is not.
    change(served, "AVAILABLE", 70)
    with served.warehouse.get_connection() as con:
        publish_snapshot(con, served.root / "snapshots", "third")
    assert served.store.refresh(), served.store.last_error
    deadline = time.monotonic() + 5
    while old.publications.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not old.publications.exists()
    assert sorted(
        p.name for p in (served.root / "snapshots" / "datex2").iterdir() if not p.name.startswith(".")
    ) == sorted(
        v.publications.name
        for v in (served.store.current, served.store.version(new.token))
        if v and v.publications
    )


@pytest.mark.slow
def test_the_creator_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        publish_snapshot(con, tmp_path / "snapshots", "fixture")
    monkeypatch.setenv("OCPI_TOKEN", TOKEN)
    monkeypatch.setenv("EVPIPELINE_NAP_COUNTRIES", "NLD")
    monkeypatch.delenv("DATEX2_PUBLICATION_CREATOR", raising=False)
    with BackgroundServer(app_from_env(tmp_path)) as server:  # no creator: OCPI only
        assert get(server.url, "static.json").status_code == 404
    monkeypatch.setenv("DATEX2_PUBLICATION_CREATOR", "NL:NDW-PULL-7")
    with BackgroundServer(app_from_env(tmp_path)) as server:
        r = get(server.url, "static.json")
    assert r.status_code == 200, r.text[:300]
    publication = json.loads(r.content)["payload"]["aegiEnergyInfrastructureTablePublication"]
    assert publication["publicationCreator"] == {"country": "NL", "nationalIdentifier": "NDW-PULL-7"}


def test_without_publications_the_routes_say_so() -> None:
    from evpipeline.ndw.export import OcpiExport

    store = SnapshotStore.from_export(OcpiExport())
    with BackgroundServer(create_ocpi_app(store, SETTINGS)) as server:
        r = get(server.url, "static.xml")
    assert r.status_code == 404 and "not enabled" in r.text


def test_a_failing_datex2_build_keeps_ocpi_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evpipeline.ndw.datex2_export as module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("builder bug")

    monkeypatch.setattr(module.Publisher, "write", broken)
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        publish_snapshot(con, tmp_path / "snapshots", "fixture")
    with BackgroundServer(create_ocpi_app(store_for(tmp_path), SETTINGS)) as server:
        ocpi = requests.get(server.url + "/ocpi/2.2.1/locations", headers={"Authorization": B64}, timeout=10)
        datex = get(server.url, "static.xml")
    assert ocpi.status_code == 200 and ocpi.headers["X-Total-Count"] == "8"
    assert datex.status_code == 503 and "Retry-After" in datex.headers
