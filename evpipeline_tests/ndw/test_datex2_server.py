"""DATEX II pull endpoints on the OCPI pull server, over real HTTP: auth as the OCPI routes, the same
snapshot version as the OCPI routes, the daily files' bytes, content types, reloads and cleanup."""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from evpipeline.datex2 import write_publication
from evpipeline.model.snapshot import SNAPSHOT_NAME, publish_snapshot
from evpipeline.ndw.datex2_export import write_publications
from evpipeline.ndw.pull_snapshot import SnapshotStore
from evpipeline.ndw.server import create_ocpi_app
from evpipeline.serving import BackgroundServer
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.schemas import assert_valid
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart
from evpipeline_tests.ndw.test_server import B64, CLIENT_ID, CLIENT_SECRET, SETTINGS

DOCS = {"static.xml": "application/xml", "static.json": "application/json", "status.xml": "application/xml",
        "status.json": "application/json", "rejections.json": "application/json"}
PREFIX = "/datex2/v3.7/"


@dataclass
class Served:
    url: str
    root: Path
    store: SnapshotStore
    warehouse: WarehouseResource


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("datex2-server")
    warehouse = WarehouseResource(database=str(root / "warehouse.duckdb"))
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        publish_snapshot(con, root / "snapshots", "fixture")
    store = SnapshotStore(root / "snapshots" / SNAPSHOT_NAME, poll_interval=60, publications=root / "snapshots" / "datex2")
    with BackgroundServer(create_ocpi_app(store, SETTINGS)) as server:
        yield Served(server.url, root, store, warehouse)


def get(served: Served, name: str, auth: str | None = B64, **params: str) -> requests.Response:
    headers = {"Authorization": auth} if auth is not None else {}
    return requests.get(served.url + PREFIX + name, headers=headers, params=params, timeout=30)


def test_auth_like_the_ocpi_routes(served: Served) -> None:
    for name in DOCS:
        assert get(served, name, auth=None).status_code == 401
        assert get(served, name, auth="Token wrong").status_code == 401
    token = requests.post(served.url + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()["access_token"]
    assert get(served, "static.xml", auth=f"Bearer {token}").status_code == 200
    assert get(served, "nonsense.xml").status_code == 404


def test_documents_are_the_daily_files_of_the_served_version(served: Served, tmp_path: Path) -> None:
    with served.warehouse.get_connection() as con:
        daily = write_publications(con, tmp_path / "2026-11-02")
    ocpi = requests.get(served.url + "/ocpi/2.2.1/locations", headers={"Authorization": B64}, params={"limit": "1"}, timeout=10)
    version = served.store.current
    assert version is not None
    for name, media in DOCS.items():
        r = get(served, name)
        assert r.status_code == 200, (name, r.text[:300])
        assert r.headers["content-type"].startswith(media) and "charset=utf-8" in r.headers["content-type"]
        assert r.headers["X-Data-Version"] == version.token
        assert r.content == (daily.directory / name).read_bytes(), name
        if name.startswith(("static", "status")):
            assert_valid(name.split(".")[1], r.content)  # the vendored XSD / JSON Schema
        else:
            assert json.loads(r.content) == daily.rejections
    # The OCPI routes serve the same version: its pinned next link names the token the DATEX II routes report.
    assert f"snapshot={version.token}" in ocpi.headers["Link"]
    static = ET.fromstring(get(served, "static.xml").content)
    sites = static.findall(".//{http://datex2.eu/schema/3/energyInfrastructure}energyInfrastructureSite")
    assert len(sites) == int(ocpi.headers["X-Total-Count"]) == 8


def change(served: Served, status: str, minutes: int) -> None:
    """The pipeline's way: a status change of LOC-0001-E1 through the shared merge."""
    m = MartRows()
    m.evse(m.location(1), 1, status=status, updated=later(minutes))
    m.evses[0]["source_last_updated"] = later(minutes)
    m.locations.clear()
    m.write(served.warehouse, run_id=f"change-{minutes}")


def test_a_new_snapshot_is_served_and_the_old_files_go(served: Served) -> None:
    old = served.store.current
    assert old is not None and old.publications is not None
    first = get(served, "status.xml").content
    change(served, "OUTOFORDER", 60)
    with served.warehouse.get_connection() as con:
        publish_snapshot(con, served.root / "snapshots", "second")
        expected = io.BytesIO()
        write_publication(con, "status", "xml", expected)
    assert served.store.refresh(), served.store.last_error
    new = served.store.current
    assert new is not None and new.token != old.token
    r = get(served, "status.xml")
    assert r.headers["X-Data-Version"] == new.token and r.content == expected.getvalue() != first
    assert b"outOfOrder" in r.content
    # The previous version stays reachable for pinned readers while it is retained...
    pinned = get(served, "status.xml", snapshot=old.token)
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
    assert sorted(p.name for p in (served.root / "snapshots" / "datex2").iterdir() if not p.name.startswith(".")) == sorted(
        v.publications.name for v in (served.store.current, served.store.version(new.token)) if v and v.publications)


def test_without_publications_the_routes_say_so(tmp_path: Path) -> None:
    from evpipeline.ndw.export import OcpiExport

    store = SnapshotStore.from_export(OcpiExport())
    with BackgroundServer(create_ocpi_app(store, SETTINGS)) as server:
        r = requests.get(server.url + PREFIX + "static.xml", headers={"Authorization": B64}, timeout=10)
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
    store = SnapshotStore(tmp_path / "snapshots" / SNAPSHOT_NAME, poll_interval=60, publications=tmp_path / "snapshots" / "datex2")
    with BackgroundServer(create_ocpi_app(store, SETTINGS)) as server:
        ocpi = requests.get(server.url + "/ocpi/2.2.1/locations", headers={"Authorization": B64}, timeout=10)
        datex = requests.get(server.url + PREFIX + "static.xml", headers={"Authorization": B64}, timeout=10)
    assert ocpi.status_code == 200 and ocpi.headers["X-Total-Count"] == "8"
    assert datex.status_code == 503 and "Retry-After" in datex.headers
