"""The daily NDW export: contents, AFIR rejections, exact wire format, determinism, partitions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from evpipeline.ndw.assets import ndw_ocpi_export
from evpipeline.ndw.export import build_export, write_export
from evpipeline.run_config import op_config
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
LATITUDE = re.compile(r"^-?[0-9]{1,2}\.[0-9]{5,7}$")
LONGITUDE = re.compile(r"^-?[0-9]{1,3}\.[0-9]{5,7}$")


@pytest.fixture
def exported(warehouse: WarehouseResource) -> Any:
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        return build_export(con)


def locations(export: Any) -> dict[str, dict[str, Any]]:
    return {json.loads(body)["id"]: json.loads(body) for body in export.locations}


def walk(value: Any, path: str = "") -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    yield path, value


def test_only_public_dutch_live_locations_with_complete_objects(exported: Any) -> None:
    locs = locations(exported)
    assert set(locs) == {
        "LOC-0001",
        "LOC-0002",
        "LOC-0003",
        "LOC-0004",
        "LOC-0005",
        "LOC-0102",
        "LOC-0103",
        "LOC-0106",
    }
    assert (
        exported.candidates == 11
    )  # 5 good + 6 defective NL public live ones; private, BE, deleted never considered
    assert [e["uid"] for e in locs["LOC-0102"]["evses"]] == [
        "LOC-0102-E1"
    ]  # the EVSE without parking_restrictions left out
    assert [c["id"] for c in locs["LOC-0103"]["evses"][0]["connectors"]] == ["1"]
    assert {e["uid"]: e["status"] for e in locs["LOC-0106"]["evses"]} == {
        "LOC-0106-E1": "REMOVED",
        "LOC-0106-E2": "AVAILABLE",
    }
    assert [t["id"] for t in map(json.loads, exported.tariffs)] == ["T-FAST", "T-STD"]
    assert exported.evses == 14 and exported.connectors == 24


def test_every_exported_object_meets_our_ocpi_ndw_definition(exported: Any) -> None:
    from evpipeline.ocpi import definition as ocpi

    for body in exported.locations:
        assert ocpi.validate_location(json.loads(body), profile="ndw") == []
    for body in exported.tariffs:
        assert ocpi.validate_tariff(json.loads(body), profile="ndw") == []


def test_every_rejected_location_also_fails_the_definition(warehouse: WarehouseResource) -> None:
    """The SQL rules and our OCPI definition agree: what SQL rejects, the definition rejects too."""
    from evpipeline.ocpi import definition as ocpi

    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        con.execute(
            "UPDATE mart.connectors SET tariff_ids = NULL WHERE location_id = 'LOC-0001' "
            "AND connector_id = '1'"
        )
        export = build_export(con)
        rows = con.execute("SELECT * FROM mart.locations WHERE location_id = 'LOC-0101'").df()
    assert ocpi.validate_location(
        {
            "country_code": "NL",
            "party_id": "ALF",
            "id": "x",
            "publish": True,
            "address": "a",
            "city": "b",
            "country": "NLD",
            "coordinates": {"latitude": "52.000000", "longitude": "5.000000"},
            "time_zone": "Europe/Amsterdam",
            "opening_times": {"twentyfourseven": True},
            "last_updated": "2026-11-01T08:00:00Z",
        },
        profile="ndw",
    )  # no energy_mix: rejected by both
    assert len(rows) == 1
    loc = {json.loads(b)["id"]: json.loads(b) for b in export.locations}["LOC-0001"]
    assert [c["id"] for c in loc["evses"][0]["connectors"]] == [
        "2"
    ]  # the connector without tariffs was left out


def test_a_connector_with_empty_tariff_ids_is_never_exported(warehouse: WarehouseResource) -> None:
    """NDW requires tariff_ids with at least one id (AFIR: the ad-hoc price); `[]` is as absent as NULL,
    and no tariff reference can be dangling in it, so only this rule keeps it out."""
    m = MartRows()
    m.tariff("T-STD")
    loc = m.location(1)
    evse = m.evse(loc, 1)
    m.connector(evse, 1, tariffs=[])
    m.connector(evse, 2)
    m.connector(m.evse(loc, 2), 1, tariffs=[])  # its only connector: the EVSE goes too
    m.write(warehouse)
    with warehouse.get_connection() as con:
        export = build_export(con)
    [body] = export.locations
    assert [(e["uid"], [c["id"] for c in e["connectors"]]) for e in json.loads(body)["evses"]] == [
        ("LOC-0001-E1", ["2"])
    ]
    reasons = {
        (r["object"], r.get("evse_uid"), r.get("connector_id")): r["reasons"] for r in export.rejections
    }
    assert reasons[("Connector", "LOC-0001-E1", "1")] == ["tariff_ids missing (AFIR-mandatory)"]
    assert reasons[("Connector", "LOC-0001-E2", "1")] == ["tariff_ids missing (AFIR-mandatory)"]
    assert reasons[("EVSE", "LOC-0001-E2", None)] == ["no valid connectors"]


def test_rejections_name_object_and_reason(exported: Any) -> None:
    reasons = {
        (r["object"], r.get("location_id"), r.get("evse_uid"), r.get("connector_id"), r.get("tariff_id")): r[
            "reasons"
        ]
        for r in exported.rejections
    }
    assert reasons[("Location", "LOC-0101", None, None, None)] == ["energy_mix missing (AFIR-mandatory)"]
    assert reasons[("EVSE", "LOC-0102", "LOC-0102-E2", None, None)] == [
        "parking_restrictions missing (AFIR-mandatory)"
    ]
    assert reasons[("Connector", "LOC-0103", "LOC-0103-E1", "2", None)] == [
        "standard unmapped (see mart.unmapped_values)"
    ]
    assert reasons[("Connector", "LOC-0103", "LOC-0103-E1", "3", None)] == [
        "tariff_ids reference tariffs not in tariffs.json: T-GHOST"
    ]
    assert reasons[("Tariff", None, None, None, "T-BROKEN")] == ["no tariff elements"]
    assert reasons[("Connector", "LOC-0104", "LOC-0104-E1", "1", None)] == [
        "tariff_ids reference tariffs not in tariffs.json: T-BROKEN"
    ]
    assert reasons[("EVSE", "LOC-0104", "LOC-0104-E1", None, None)] == ["no valid connectors"]
    assert reasons[("Location", "LOC-0104", None, None, None)] == ["no valid EVSEs"]
    assert reasons[("Location", "LOC-0105", None, None, None)] == [
        "address missing or longer than 45 characters"
    ]
    assert not any(
        "LOC-02" in str(k) for k in reasons
    )  # private/BE/deleted are not candidates, not rejections


def test_exact_wire_format(exported: Any) -> None:
    for body in [*exported.locations, *exported.tariffs]:
        obj = json.loads(body)
        for path, value in walk(obj):
            assert value is not None, f"null at {path}"
            if path.endswith(("last_updated", "date_time")):
                assert DATETIME.match(value) and len(value) <= 25, (path, value)
            if path.endswith("coordinates.latitude"):
                assert isinstance(value, str) and LATITUDE.match(value), value
            if path.endswith("coordinates.longitude"):
                assert isinstance(value, str) and LONGITUDE.match(value), value
        if "address" in obj:
            assert len(obj["address"]) <= 45
    loc = locations(exported)["LOC-0001"]
    assert loc["coordinates"] == {"latitude": "52.090800", "longitude": "5.121500"}
    assert loc["energy_mix"]["energy_sources"][0] == {"source": "WIND", "percentage": 60}
    assert "state" not in loc and "suboperator" not in loc  # absent optional fields are omitted, not null
    assert loc["evses"][0]["connectors"][1]["tariff_ids"] == ["T-STD", "T-FAST"]


def test_parent_last_updated_bumped_by_children(warehouse: WarehouseResource) -> None:
    m = MartRows()
    m.tariff("T-STD")
    loc = m.location(1)
    evse = m.evse(loc, 1)
    m.connector(evse, 1, updated=later(90))
    m.connector(m.evse(loc, 2, updated=later(30)), 1)
    m.write(warehouse)
    with warehouse.get_connection() as con:
        body = json.loads(build_export(con).locations[0])
    assert body["last_updated"] == "2026-11-01T09:30:00Z"
    assert [e["last_updated"] for e in body["evses"]] == ["2026-11-01T09:30:00Z", "2026-11-01T08:30:00Z"]
    assert body["evses"][0]["connectors"][0]["last_updated"] == "2026-11-01T09:30:00Z"


def test_same_state_same_bytes(exported: Any, tmp_path: Path, warehouse: WarehouseResource) -> None:
    first = write_export(exported, tmp_path / "a", "2026-11-02")
    with warehouse.get_connection() as con:
        second = write_export(build_export(con), tmp_path / "b", "2026-11-02")
    for name in ("locations.json", "tariffs.json", "rejections.json", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["counts"]["locations"] == 8 and manifest["generated_at"] == "2026-11-01T08:00:00Z"
    import hashlib

    assert (
        manifest["files"]["locations.json"]["sha256"]
        == hashlib.sha256((tmp_path / "a" / "locations.json").read_bytes()).hexdigest()
    )
    assert first.body == second.body


def test_partitioned_asset_backfill_and_check(warehouse: WarehouseResource, tmp_path: Path) -> None:
    standard_mart().write(warehouse)
    results = []
    for day in ("2026-11-02", "2026-11-03"):
        results.append(
            materialize(
                [ndw_ocpi_export],
                {"warehouse": warehouse},
                partition_key=day,
                run_config=op_config([ndw_ocpi_export], directory=str(tmp_path), max_rejected_ratio=0.5),
            )
        )
    for day in ("2026-11-02", "2026-11-03"):
        assert json.loads((tmp_path / day / "manifest.json").read_text())["partition"] == day
    assert (tmp_path / "2026-11-02" / "locations.json").read_bytes() == (
        tmp_path / "2026-11-03" / "locations.json"
    ).read_bytes()
    [check] = results[0].get_asset_check_evaluations()
    assert (
        not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    )  # 3 of 11 locations rejected, under 50 %
    strict = materialize(
        [ndw_ocpi_export],
        {"warehouse": warehouse},
        partition_key="2026-11-04",
        raise_on_error=False,
        run_config=op_config([ndw_ocpi_export], directory=str(tmp_path), max_rejected_ratio=0.1),
    )
    [check] = strict.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
