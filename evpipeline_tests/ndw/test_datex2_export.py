"""The daily DATEX II files: the four documents, rejections and manifest, atomic and byte-stable,
the rejection check, and one job producing both NDW formats."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import dagster as dg
import pytest

from evpipeline.datex2 import write_publication
from evpipeline.ndw.assets import DATEX2_KEY, EXPORT_KEY, ndw_datex2_export, ndw_export_job
from evpipeline.ndw.datex2_export import DOCUMENTS, write_publications
from evpipeline.ndw.export import build_export
from evpipeline.run_config import op_config
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize
from evpipeline_tests.datex2.schemas import assert_valid
from evpipeline_tests.mart_fixture import standard_mart

FILES = ["static.xml", "static.json", "status.xml", "status.json", "rejections.json", "manifest.json"]


def test_files_manifest_and_same_state_same_bytes(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        first = write_publications(con, tmp_path / "a" / "2026-11-02", partition="2026-11-02")
        second = write_publications(con, tmp_path / "b" / "2026-11-02", partition="2026-11-02")
        ocpi = build_export(con)
        direct = io.BytesIO()
        write_publication(con, "static", "xml", direct)
    a, b = first.directory, second.directory
    assert sorted(p.name for p in a.iterdir()) == sorted(FILES)  # no staging leftovers either
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    manifest = json.loads((a / "manifest.json").read_text())
    for name in FILES[:-1]:
        data = (a / name).read_bytes()
        assert manifest["files"][name] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert (a / "static.xml").read_bytes() == direct.getvalue()  # the builder's bytes, streamed through
    # The same objects as the OCPI export of the same state: 8 locations, 14 EVSEs, 24 connectors.
    assert manifest["counts"]["sites"] == len(ocpi.locations) == 8
    assert manifest["counts"]["refill_points"] == ocpi.evses == 14 and manifest["counts"]["connectors"] == ocpi.connectors == 24
    assert manifest["counts"]["candidate_locations"] == ocpi.candidates == 11
    assert manifest["generated_at"] == "2026-11-01T08:00:00Z" and manifest["partition"] == "2026-11-02"
    assert set(manifest["documents"]) == {f"{k}.{f}" for k, f in DOCUMENTS}
    for kind, fmt in DOCUMENTS:
        data = (a / f"{kind}.{fmt}").read_bytes()
        assert_valid(fmt, data)  # the vendored XSD / JSON Schema
    # Every OCPI rejection is a DATEX II rejection too, with its ids and reasons.
    rejected = json.loads((a / "rejections.json").read_text())
    ocpi_keys = {(r["object"], r.get("location_id"), r.get("evse_uid"), r.get("connector_id"), r.get("tariff_id")) for r in ocpi.rejections}
    datex_keys = {(r["object"], r.get("location_id"), r.get("evse_uid"), r.get("connector_id"), r.get("tariff_id")) for r in rejected}
    assert ocpi_keys <= datex_keys and all(r["reasons"] for r in rejected)


def test_a_failed_write_keeps_the_previous_set(warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evpipeline.ndw.datex2_export as module

    standard_mart().write(warehouse)
    final = tmp_path / "out" / "2026-11-02"
    with warehouse.get_connection() as con:
        write_publications(con, final)
    before = {p.name: p.read_bytes() for p in final.iterdir()}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(module.Publisher, "write", broken)
    with warehouse.get_connection() as con, pytest.raises(RuntimeError):
        write_publications(con, final)
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before
    assert [p.name for p in final.parent.iterdir()] == ["2026-11-02"]  # no staging directory left behind


def test_nothing_publishable_still_writes_rejections_and_manifest(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart(n_good=0).write(warehouse)
    with warehouse.get_connection() as con:
        con.execute("UPDATE mart.locations SET energy_mix = NULL")
        published = write_publications(con, tmp_path / "d")
    assert sorted(p.name for p in published.directory.iterdir()) == ["manifest.json", "rejections.json"]
    assert published.body["counts"]["sites"] == 0 and published.body["documents"] == {} and published.rejections


def test_asset_partitions_check_and_job(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    for day in ("2026-11-02", "2026-11-03"):
        result = materialize([ndw_datex2_export], {"warehouse": warehouse}, partition_key=day,
                             run_config=op_config([ndw_datex2_export], directory=str(tmp_path), max_rejected_ratio=0.5))
        [check] = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # 3 of 11 locations rejected
        assert check.metadata["rejected_locations"].value == 3
    assert (tmp_path / "2026-11-02" / "static.xml").read_bytes() == (tmp_path / "2026-11-03" / "static.xml").read_bytes()
    assert json.loads((tmp_path / "2026-11-03" / "manifest.json").read_text())["partition"] == "2026-11-03"
    strict = materialize([ndw_datex2_export], {"warehouse": warehouse}, partition_key="2026-11-04", raise_on_error=False,
                         run_config=op_config([ndw_datex2_export], directory=str(tmp_path), max_rejected_ratio=0.1))
    [check] = strict.get_asset_check_evaluations()
    assert check.severity == dg.AssetCheckSeverity.ERROR
    # The daily job (and its 02:00 schedule) materializes both publications together.
    assert ndw_export_job.selection is not None
    assert {EXPORT_KEY, DATEX2_KEY} <= set(ndw_export_job.selection.resolve([ndw_datex2_export, *_ocpi_assets()]))


def _ocpi_assets() -> list[dg.AssetsDefinition]:
    from evpipeline.ndw.assets import ndw_ocpi_export

    return [ndw_ocpi_export]
