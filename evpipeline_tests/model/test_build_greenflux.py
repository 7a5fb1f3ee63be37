"""GreenFlux into the canonical model: CPO party, OCPI 2.1.1 -> 2.2.1, moved EVSEs, unmappable values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from evpipeline.model import build as mart_build
from evpipeline.model.build import build_mart
from evpipeline.ndw.export import build_export
from evpipeline.ocpi import definition as ocpi
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.toolkit import SimClock
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query, scalar
from evpipeline_tests.sources.greenflux.conftest import TOKEN, resource, sync
from evpipeline_tests.typed import running


@pytest.fixture
def sim(clock: SimClock) -> Iterator[GreenFluxSimulator]:
    with running(GreenFluxSimulator(scale=0.25, clock=clock, token=TOKEN, seed=11)) as s:
        yield s


def build(warehouse: WarehouseResource) -> Any:
    with warehouse.get_connection() as con:
        return build_mart(con, run_id="b")


def test_locations_map_to_the_cpo_party_and_ocpi_2_2_1(
    sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sync(resource(sim), warehouse)
    build(warehouse)
    mart = {
        r[2]: r
        for r in query(
            warehouse,
            "SELECT country_code, party_id, location_id, publish, parking_type, energy_mix, operator "
            "FROM mart.locations",
        )
    }
    for loc in sim.locations():
        cc, pid, _, publish, parking_type, energy_mix, operator = mart[loc["id"]]
        assert (cc, pid) == (loc["cpo_id"][:2], loc["cpo_id"][2:5])
        assert publish == (bool(loc["publish"]) and loc["access_type"] != "PRIVATE")
        assert parking_type == (
            loc["type"]
            if loc["type"] in ("ON_STREET", "PARKING_GARAGE", "UNDERGROUND_GARAGE", "PARKING_LOT")
            else None
        )
        if loc["energy_mix"]:
            mix = json.loads(energy_mix)
            assert "energy_mix_profile_id" not in mix  # GreenFlux's own field stays in the source table
            for impact in mix.get("environ_impact", []):
                assert set(impact) == {"category", "amount"}  # 2.1.1 `source` renamed
        if operator:
            assert set(json.loads(operator)) <= {"name", "website", "logo"}  # no 2.1.1 phone_number
    rows = query(
        warehouse,
        """SELECT m.tariff_ids, g.tariff_id FROM mart.connectors m
                               JOIN greenflux.connectors g USING (location_id, evse_uid, connector_id)""",
    )
    assert rows and all((json.loads(m) if m else None) == ([t] if t else None) for m, t in rows)


@pytest.mark.slow
def test_exported_greenflux_objects_meet_the_ndw_definition(
    sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sync(resource(sim), warehouse)
    build(warehouse)
    with warehouse.get_connection() as con:
        export = build_export(con)
    assert len(export.locations) > 10 and export.tariffs
    for body in export.locations:
        assert ocpi.validate_location(json.loads(body), profile="ndw") == []
    for body in export.tariffs:
        assert ocpi.validate_tariff(json.loads(body), profile="ndw") == []


@pytest.mark.slow
def test_moved_evse_is_removed_in_the_old_location_and_live_in_the_new(
    sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    gf = resource(sim)
    sync(gf, warehouse)
    build(warehouse)
    station = next(cs for cs in sim.charge_stations() if cs["deploy_state"] == "Production")
    old = station["location_id"]
    new = next(
        loc["id"]
        for loc in sim.locations()
        if loc["cpo_id"] == sim.location(old)["cpo_id"] and loc["id"] != old
    )
    uid = station["evses"][0]["uid"]
    sim.clock.advance(60)
    sim.move_charge_station(station["charge_station_id"], new)
    sync(gf, warehouse)
    build(warehouse)
    statuses = dict(query(warehouse, "SELECT location_id, status FROM mart.evses WHERE evse_uid = ?", [uid]))
    assert statuses[old] == "REMOVED" and statuses[new] != "REMOVED"
    assert (
        scalar(
            warehouse,
            "SELECT count(*) FROM mart.evse_status_history WHERE evse_uid = ? AND location_id = ? "
            "AND new_status = 'REMOVED'",
            [uid, old],
        )
        == 1
    )


@pytest.mark.slow
def test_values_outside_ocpi_are_reported_or_quarantined(
    sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    evse = sim.locations()[0]["evses"][0]
    sim.edit_connector(evse["uid"], evse["connectors"][0]["id"], standard="IEC_62196_T9")
    sim.edit_evse(evse["uid"], capabilities=["RFID_READER", "TELEPORT"])
    sync(resource(sim), warehouse)
    result = build(warehouse)
    unmapped = {(r["field"], r["value"]) for r in result.unmapped.to_dict("records")}
    # A capability outside OCPI's list passes the source layer (an open list there) and is reported here.
    assert ("evse.capabilities", "TELEPORT") in unmapped
    assert json.loads(
        scalar(warehouse, "SELECT capabilities FROM mart.evses WHERE evse_uid = ?", [evse["uid"]])
    ) == ["RFID_READER"]
    # An unknown connector standard already fails GreenFlux's own schema (a closed OCPI enum there):
    # quarantined with its reason, so it never reaches the model at all.
    reasons = scalar(
        warehouse, "SELECT failed_checks FROM ops.quarantine WHERE table_name = 'greenflux.connectors'"
    )
    assert "standard" in reasons and "IEC_62196_T9" in reasons
    assert (
        query(
            warehouse,
            "SELECT 1 FROM mart.connectors WHERE evse_uid = ? AND connector_id = ?",
            [evse["uid"], evse["connectors"][0]["id"]],
        )
        == []
    )


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the incremental scope is SQL above the backend
@pytest.mark.slow
def test_an_incremental_build_rebuilds_the_location_a_moved_evse_left(
    sim: GreenFluxSimulator, warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GreenFlux never touches the old location of a moved EVSE: the incremental build must still map
    it (a scope of every location would hide a scope that misses it), so its copy reads REMOVED there."""
    # The build re-reads 1 s before its watermark; a test syncs everything within that second, which
    # would put every location in scope. Without it the scope is what the move changed.
    monkeypatch.setattr(mart_build, "OVERLAP", timedelta(0))
    gf = resource(sim)
    sync(gf, warehouse)
    assert build(warehouse).mode == "full"  # the first build
    station = next(cs for cs in sim.charge_stations() if cs["deploy_state"] == "Production")
    old = station["location_id"]
    new = next(
        loc["id"]
        for loc in sim.locations()
        if loc["cpo_id"] == sim.location(old)["cpo_id"] and loc["id"] != old
    )
    uid = station["evses"][0]["uid"]
    sim.clock.advance(60)
    sim.move_charge_station(station["charge_station_id"], new)
    sync(gf, warehouse)
    result = build(warehouse)
    assert result.mode == "incremental"  # pinned: this is the path under test
    assert result.scope["locations"] < len(sim.locations())  # and it is a scope, not every location
    statuses = dict(query(warehouse, "SELECT location_id, status FROM mart.evses WHERE evse_uid = ?", [uid]))
    assert statuses[old] == "REMOVED" and statuses[new] != "REMOVED"
    with warehouse.get_connection() as con:
        check = build_mart(con, run_id="check", full=True)  # judges what the incremental build left
    assert check.mismatches == {"mart.locations": 0, "mart.evses": 0, "mart.connectors": 0, "mart.tariffs": 0}
