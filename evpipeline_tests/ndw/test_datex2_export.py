"""The daily DATEX II files: the four documents, rejections and manifest, written whole or not at all and
byte-stable (same state, same publicationTime: same bytes), the rejection check, the versions the
daily asset records, and the daily job producing both of NDW's formats."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from evpipeline.datex2 import Publisher, versions
from evpipeline.datex2.client import Datex2PushResource
from evpipeline.ndw.assets import DATEX2_KEY, EXPORT_KEY, ndw_datex2_export, ndw_export_job, ndw_ocpi_export
from evpipeline.ndw.datex2_export import DOCUMENTS, write_publications
from evpipeline.ndw.export import build_export
from evpipeline.run_config import op_config
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize
from evpipeline_tests.datex2.fleet import CREATOR, PUBLISHED_AT, sites
from evpipeline_tests.datex2.schemas import assert_valid
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart

FILES = ["static.xml", "static.json", "status.xml", "status.json", "rejections.json", "manifest.json"]
# The daily asset's creator comes from its DATEX II resource (DATEX2_PUBLICATION_CREATOR).
DATEX2 = Datex2PushResource(
    push_url="http://127.0.0.1:9/unused", token="unused", publication_creator="NL:evpipeline-daily"
)


@pytest.mark.slow
def test_files_manifest_and_same_state_same_bytes(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        first = write_publications(
            con,
            tmp_path / "a" / "2026-11-02",
            countries=["NLD"],
            creator=CREATOR,
            partition="2026-11-02",
            published_at=PUBLISHED_AT,
        )
        second = write_publications(
            con,
            tmp_path / "b" / "2026-11-02",
            countries=["NLD"],
            creator=CREATOR,
            partition="2026-11-02",
            published_at=PUBLISHED_AT,
        )
        ocpi = build_export(con)
        direct = io.BytesIO()
        with Publisher(con, ["NLD"], CREATOR) as publisher:
            publisher.write("static", "xml", direct, published_at=PUBLISHED_AT)
    a, b = first.directory, second.directory
    assert sorted(p.name for p in a.iterdir()) == sorted(FILES)  # no staging leftovers either
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "static.xml").read_bytes() == direct.getvalue()  # the publisher's bytes, streamed through
    manifest = json.loads((a / "manifest.json").read_text())
    for name in FILES[:-1]:
        data = (a / name).read_bytes()
        assert manifest["files"][name] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert {
        k: manifest[k]
        for k in ("partition", "datex2_version", "countries", "publication_creator", "generated_at", "table")
    } == {
        "partition": "2026-11-02",
        "datex2_version": "3.7",
        "countries": ["NLD"],
        "publication_creator": "NL:evpipeline-test",
        "generated_at": "2026-11-02T03:00:00Z",
        "table": {"id": "NL:evpipeline-test:table:NLD", "version": "1"},
    }
    # The OCPI export's objects (8 locations, 14 EVSEs, 24 connectors),
    # nothing left out by DATEX II's own rules.
    assert manifest["counts"] == {
        "sites": 8,
        "stations": 14,
        "refill_points": 14,
        "connectors": 24,
        "rejected": 9,
        "candidate_locations": 11,
    }
    assert (len(ocpi.locations), ocpi.evses, ocpi.connectors, ocpi.candidates) == (8, 14, 24, 11)
    assert set(manifest["documents"]) == {f"{k}.{f}" for k, f in DOCUMENTS}
    for kind, fmt in DOCUMENTS:
        assert_valid(kind, fmt, (a / f"{kind}.{fmt}").read_bytes())
    publication = json.loads((a / "static.json").read_text())["payload"][
        "aegiEnergyInfrastructureTablePublication"
    ]
    assert publication["publicationTime"] == manifest["generated_at"]
    # Every OCPI rejection is a DATEX II rejection too, with its ids and reasons.
    rejected = json.loads((a / "rejections.json").read_text())
    key = ("object", "location_id", "evse_uid", "connector_id", "tariff_id")
    assert {tuple(r.get(k) for k in key) for r in ocpi.rejections} <= {
        tuple(r.get(k) for k in key) for r in rejected
    }
    assert all(r["reasons"] for r in rejected) and len(rejected) == 9


def test_a_failed_write_keeps_the_previous_set(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evpipeline.ndw.datex2_export as module

    standard_mart().write(warehouse)
    final = tmp_path / "out" / "2026-11-02"
    with warehouse.get_connection() as con:
        write_publications(con, final, countries=["NLD"], creator=CREATOR, published_at=PUBLISHED_AT)
    before = {p.name: p.read_bytes() for p in final.iterdir()}
    written: list[str] = []
    real = module.Publisher.write

    def broken(self: Any, kind: Any, fmt: Any, out: Any, **kwargs: Any) -> Any:
        if written:  # the second document fails half-way through the set
            raise RuntimeError("disk full")
        written.append(f"{kind}.{fmt}")
        return real(self, kind, fmt, out, **kwargs)

    monkeypatch.setattr(module.Publisher, "write", broken)
    with warehouse.get_connection() as con, pytest.raises(RuntimeError, match="disk full"):
        write_publications(
            con, final, countries=["NLD"], creator=CREATOR, published_at=datetime(2026, 11, 3, tzinfo=UTC)
        )
    assert written == ["static.xml"]
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before
    assert [p.name for p in final.parent.iterdir()] == ["2026-11-02"]  # no staging directory left behind


def test_nothing_publishable_still_writes_rejections_and_manifest(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    standard_mart(n_good=0).write(warehouse)
    with warehouse.get_connection() as con:
        con.execute("UPDATE mart.locations SET energy_mix = NULL")
        published = write_publications(
            con, tmp_path / "d", countries=["NLD"], creator=CREATOR, published_at=PUBLISHED_AT
        )
    assert sorted(p.name for p in published.directory.iterdir()) == ["manifest.json", "rejections.json"]
    assert published.body["counts"]["sites"] == 0 and published.body["documents"] == {}
    assert {r["location_id"] for r in published.rejections if r["object"] == "Location"} == {
        "LOC-0101",
        "LOC-0102",
        "LOC-0103",
        "LOC-0104",
        "LOC-0105",
        "LOC-0106",
    }


def _datex2_asset(
    warehouse: WarehouseResource,
    directory: Path,
    day: str,
    *,
    ratio: float = 0.5,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return materialize(
        [ndw_datex2_export],
        {"warehouse": warehouse, "datex2": DATEX2},
        partition_key=day,
        raise_on_error=raise_on_error,
        run_config=op_config([ndw_datex2_export], directory=str(directory), max_rejected_ratio=ratio),
    )


@pytest.mark.slow
def test_the_daily_asset_check_and_recorded_versions(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    before = datetime.now(UTC).replace(microsecond=0)
    result = _datex2_asset(warehouse, tmp_path, "2026-11-02")
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # 3 of 11 locations rejected
    assert check.metadata["rejected_locations"].value == 3 and check.metadata["rejected_objects"].value == 9
    manifest = json.loads((tmp_path / "2026-11-02" / "manifest.json").read_text())
    # publicationTime is when the asset published (not a data time), the creator the resource's.
    assert before <= datetime.fromisoformat(manifest["generated_at"]) <= datetime.now(UTC)
    static = json.loads((tmp_path / "2026-11-02" / "static.json").read_text())
    publication = static["payload"]["aegiEnergyInfrastructureTablePublication"]
    assert publication["publicationTime"] == manifest["generated_at"]
    assert publication["publicationCreator"] == {"country": "NL", "nationalIdentifier": "evpipeline-daily"}
    # The versions it gave are recorded: the next day, one renamed location is its site's version 2.
    with warehouse.get_connection() as con:
        assert con.execute(f"SELECT count(*), max(version) FROM {versions.LEDGER}").fetchone() == (
            1 + 8 + 14 + 14 + 2,
            1,
        )
    renamed = MartRows()
    renamed.locations.append(
        {
            **standard_mart().locations[0],
            "name": "Laadplein Een",
            "last_updated": later(60),
            "source_last_updated": later(60),
        }
    )
    renamed.write(warehouse, "rename")
    _datex2_asset(warehouse, tmp_path, "2026-11-03")
    next_day = json.loads((tmp_path / "2026-11-03" / "static.json").read_text())
    assert {s["idG"]: s["versionG"] for s in sites(next_day) if s["versionG"] != "1"} == {
        "NL:ALF:LOC-0001": "2"
    }
    assert json.loads((tmp_path / "2026-11-03" / "manifest.json").read_text())["partition"] == "2026-11-03"
    strict = _datex2_asset(warehouse, tmp_path, "2026-11-04", ratio=0.1, raise_on_error=False)
    [check] = strict.get_asset_check_evaluations()
    assert check.severity == dg.AssetCheckSeverity.ERROR


def test_the_daily_job_produces_both_formats(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    assert ndw_export_job.selection is not None
    assert ndw_export_job.selection.resolve([ndw_datex2_export, ndw_ocpi_export]) == {EXPORT_KEY, DATEX2_KEY}
    materialize(
        [ndw_ocpi_export, ndw_datex2_export],
        {"warehouse": warehouse, "datex2": DATEX2},
        partition_key="2026-11-02",
        run_config={
            "ops": {
                **op_config([ndw_ocpi_export], directory=str(tmp_path / "ndw"))["ops"],
                **op_config([ndw_datex2_export], directory=str(tmp_path / "datex2"))["ops"],
            }
        },
    )
    assert sorted(p.name for p in (tmp_path / "datex2" / "2026-11-02").iterdir()) == sorted(FILES)
    assert {"locations.json", "tariffs.json", "manifest.json"} <= {
        p.name for p in (tmp_path / "ndw" / "2026-11-02").iterdir()
    }
    ocpi = json.loads((tmp_path / "ndw" / "2026-11-02" / "locations.json").read_text())
    datex = json.loads((tmp_path / "datex2" / "2026-11-02" / "static.json").read_text())
    assert len(ocpi) == len(sites(datex)) == 8
