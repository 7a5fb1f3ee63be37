"""Time travel on DuckLake: a delivered day is rebuilt byte for byte from the snapshot it read,
after the warehouse has moved on; on a DuckDB file the rebuild says why it cannot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evpipeline.cli import main
from evpipeline.datex2.client import Datex2PushResource
from evpipeline.model.tables import EVSES, LOCATIONS
from evpipeline.ndw.assets import ndw_datex2_export, ndw_ocpi_export
from evpipeline.ndw.rebuild import rebuild_partition
from evpipeline.run_config import op_config
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.timetravel import SnapshotUnavailable
from evpipeline_tests.conftest import materialize
from evpipeline_tests.datex2.fleet import point_statuses, sites
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart

DATEX2 = Datex2PushResource(
    push_url="http://127.0.0.1:9/unused", token="unused", publication_creator="NL:evpipeline-daily"
)


def _deliver(warehouse: WarehouseResource, ocpi: Path, datex2: Path, partition: str) -> None:
    for asset, root in ((ndw_ocpi_export, ocpi), (ndw_datex2_export, datex2)):
        materialize(
            [asset],
            {"warehouse": warehouse, "datex2": DATEX2},
            partition_key=partition,
            run_config=op_config([asset], directory=str(root)),
        )


def _move_on(warehouse: WarehouseResource) -> None:
    """The warehouse after the delivery: a renamed location and an EVSE that started charging."""
    moved = MartRows()
    mart = standard_mart()
    moved.locations.append(
        {
            **mart.locations[3],
            "name": "Laadplein Renamed",
            "last_updated": later(90),
            "source_last_updated": later(90),
        }
    )
    moved.evses.append(
        {**mart.evses[0], "status": "CHARGING", "last_updated": later(91), "source_last_updated": later(91)}
    )
    moved.write(warehouse, "later")


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.slow
def test_a_delivered_day_is_rebuilt_byte_for_byte_after_the_warehouse_moved_on(
    lake_database: str, tmp_path: Path
) -> None:
    warehouse = WarehouseResource(database=lake_database)
    standard_mart().write(warehouse)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    ocpi, datex2 = tmp_path / "ndw", tmp_path / "datex2"
    _deliver(warehouse, ocpi, datex2, today)
    delivered = {name: _files(root / today) for name, root in (("ndw", ocpi), ("datex2", datex2))}
    snapshot = json.loads((ocpi / today / "manifest.json").read_text())["warehouse_snapshot"]
    assert json.loads((datex2 / today / "manifest.json").read_text())["warehouse_snapshot"] == snapshot

    _move_on(warehouse)
    # Delivering the day again now reads the new state: the rebuild must not.
    _deliver(warehouse, tmp_path / "now-ndw", tmp_path / "now-datex2", today)
    assert _files(tmp_path / "now-ndw" / today)["locations.json"] != delivered["ndw"]["locations.json"]
    now_static = json.loads(_files(tmp_path / "now-datex2" / today)["static.json"])
    then_static = json.loads(delivered["datex2"]["static.json"])
    # Now: the renamed site at version 2 (the first delivery recorded version 1); then: version 1,
    # the old name.
    assert [
        (s["versionG"], s["name"]["values"][0]["value"])
        for s in sites(now_static)
        if s["idG"] == "NL:ALF:LOC-0004"
    ] == [("2", "Laadplein Renamed")]
    assert [
        (s["versionG"], s["name"]["values"][0]["value"])
        for s in sites(then_static)
        if s["idG"] == "NL:ALF:LOC-0004"
    ] == [("1", "Laadplein 4")]
    for files, status in (
        (_files(tmp_path / "now-datex2" / today), "charging"),
        (delivered["datex2"], "available"),
    ):
        assert [
            p["status"]["value"]
            for _, _, p in point_statuses(json.loads(files["status.json"]))
            if p["reference"]["idG"] == "NL:ALF:LOC-0001:LOC-0001-E1"
        ] == [status]

    results = rebuild_partition(
        warehouse, today, ocpi_root=ocpi, datex2_root=datex2, output=tmp_path / "rebuilt"
    )
    for result in results:
        assert result.snapshot == snapshot and result.same, result.different
        assert _files(result.rebuilt) == delivered[result.name]  # same names, same bytes (manifests included)
    with warehouse.get_connection() as con:  # the warehouse itself moved on and stays so
        assert con.execute(f"SELECT name FROM {LOCATIONS} WHERE location_id = 'LOC-0004'").fetchone() == (
            "Laadplein Renamed",
        )
        assert con.execute(
            f"SELECT status FROM {EVSES} WHERE evse_uid = ?", [standard_mart().evses[0]["evse_uid"]]
        ).fetchone() == ("CHARGING",)


@pytest.mark.slow
def test_rebuild_export_command_compares_with_the_delivery(
    lake_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = WarehouseResource(database=lake_database)
    standard_mart().write(warehouse)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    data = tmp_path / "data"
    _deliver(warehouse, data / "exports" / "ndw", data / "exports" / "datex2", today)
    _move_on(warehouse)
    monkeypatch.setenv("EVPIPELINE_WAREHOUSE", lake_database)
    assert main(["rebuild-export", today, "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert (
        out.count("identical to the delivery") == 2
        and (data / "rebuilt" / "ndw" / today / "locations.json").exists()
    )

    (data / "exports" / "ndw" / today / "locations.json").write_text(
        "[]\n"
    )  # a delivery that was tampered with
    assert main(["rebuild-export", today, "--data-dir", str(data)]) == 1
    assert "DIFFERENT (locations.json)" in capsys.readouterr().out


def test_a_duckdb_file_says_it_keeps_no_history(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    _deliver(warehouse, tmp_path / "ndw", tmp_path / "datex2", "2026-11-04")
    assert "warehouse_snapshot" not in json.loads(
        (tmp_path / "ndw" / "2026-11-04" / "manifest.json").read_text()
    )
    with pytest.raises(SnapshotUnavailable, match="keeps no history"):
        rebuild_partition(
            warehouse,
            "2026-11-04",
            ocpi_root=tmp_path / "ndw",
            datex2_root=tmp_path / "datex2",
            output=tmp_path / "rebuilt",
        )
