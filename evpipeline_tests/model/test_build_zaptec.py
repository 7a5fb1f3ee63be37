"""Zaptec into the canonical model: installation -> Location, charger -> EVSE, operation mode -> status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evpipeline.model import rules
from evpipeline.model.build import build_mart
from evpipeline.ndw.export import build_export
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.toolkit import SimClock
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.sources.zaptec.conftest import resource_for, simulator, sync_everything, sync_states
from evpipeline_tests.typed import running


def build(warehouse: WarehouseResource) -> Any:
    with warehouse.get_connection() as con:
        return build_mart(con, run_id="b")


def test_rule_tables_use_closed_ocpi_values() -> None:
    assert set(rules.ZAPTEC_OPERATION_MODES.values()) <= set(rules.OCPI_VALUES["status"])
    assert {s for s, _, _ in rules.ZAPTEC_MODELS.values()} <= set(rules.OCPI_VALUES["standard"])
    assert {phases for phases, _ in rules.ZAPTEC_NETWORKS.values()} <= set(rules.ZAPTEC_POWER_TYPES)
    assert set(rules.ZAPTEC_POWER_TYPES.values()) <= set(rules.OCPI_VALUES["power_type"])


def test_installations_chargers_and_statuses_map_by_rule(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Any
) -> None:
    inbox = PushInboxResource(directory=str(tmp_path / "inbox"))
    with running(simulator(clock, chargers=24)) as sim:
        zaptec = resource_for(sim)
        sync_everything(zaptec, warehouse, inbox)
        result = build(warehouse)
        locations = {
            r[0]: r[1:]
            for r in query(
                warehouse,
                "SELECT location_id, country_code, party_id, publish FROM mart.locations "
                "WHERE source = 'zaptec'",
            )
        }
        for installation_id, country, public in query(
            warehouse, "SELECT installation_id, country, is_public FROM zaptec.installations"
        ):
            expected = {"NLD": ("NL", "ZPT"), "NOR": ("NO", "ZPT")}.get(country)
            if expected is None:
                assert installation_id not in locations  # no CPO party: reported, not placed
                continue
            assert locations[installation_id] == (*expected, public)  # private homes never published

        live = dict(query(warehouse, "SELECT charger_id, operation_mode FROM zaptec.charger_live"))
        models = dict(query(warehouse, "SELECT charger_id, model FROM zaptec.chargers"))
        evses = dict(query(warehouse, "SELECT evse_uid, status FROM mart.evses WHERE source = 'zaptec'"))
        online = dict(query(warehouse, "SELECT charger_id, is_online FROM zaptec.charger_live"))
        for charger_id, status in evses.items():
            if online.get(charger_id) is False:
                assert status == "UNKNOWN"
            else:
                mode = live.get(charger_id)
                want = "UNKNOWN" if mode is None else rules.ZAPTEC_OPERATION_MODES.get(mode, "UNKNOWN")
                assert status == want or status in ("INOPERATIVE", "REMOVED")
        assert not any(models[c] in rules.ZAPTEC_NOT_CHARGERS for c in evses)  # meters are not EVSEs
        for amps, volts, max_phases, network, watts, power_type in query(
            warehouse,
            """
                SELECT c.max_amperage, c.max_voltage, s.max_phases, i.network_type, c.max_electric_power,
                    c.power_type
                FROM mart.connectors c JOIN zaptec.installations i ON i.installation_id = c.location_id
                LEFT JOIN (SELECT charger_id, max(value_number) FILTER (WHERE state_id = 520) AS max_phases
                           FROM zaptec.charger_states GROUP BY 1) s ON s.charger_id = c.evse_uid
                WHERE c.source = 'zaptec'""",
        ):
            grid_phases, phase_volts = rules.ZAPTEC_NETWORKS[network]
            phases = min(
                grid_phases, int(max_phases or grid_phases)
            )  # the charger never uses more than the grid brings
            per_phase = rules.ZAPTEC_SINGLE_PHASE_VOLTS if phases == 1 else phase_volts
            assert power_type == rules.ZAPTEC_POWER_TYPES[phases]
            assert watts == round(phases * per_phase * amps) <= phases * volts * amps
        assert result.unmapped.empty or set(result.unmapped["source"]) <= {"zaptec", "evroam", "greenflux"}

        # A charger going offline reads UNKNOWN (OCPI's "no information"), not its last mode.
        charger = next(iter(evses))
        sim.set_state(charger, -2, "0")
        sync_states(zaptec, warehouse, inbox)
        build(warehouse)
        assert query(warehouse, "SELECT status FROM mart.evses WHERE evse_uid = ?", [charger]) == [
            ("UNKNOWN",)
        ]

        # Zaptec has no opening hours or energy mix: its public locations are rejected by the NDW export with
        # that reason.
        with warehouse.get_connection() as con:
            export = build_export(con)
        zaptec_ids = set(locations)
        assert not {json.loads(b)["id"] for b in export.locations} & zaptec_ids
        rejected = [
            r for r in export.rejections if r["object"] == "Location" and r.get("location_id") in zaptec_ids
        ]
        assert all("opening_times missing (AFIR-mandatory)" in r["reasons"] for r in rejected)


def test_zaptec_connectors_are_physically_plausible_end_to_end(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Any, monkeypatch: Any
) -> None:
    """Zaptec over HTTP -> mart -> NDW selection: each connector's power type and power are the charger's
    phases x the volts its grid gives each phase x its maximum current,
    and no connector is left out for physics."""
    from evpipeline.model.reference import default_file
    from evpipeline.simulators.zaptec.fleet import rated_w
    from evpipeline_tests.model.test_reference import load

    with running(simulator(clock, chargers=40)) as sim:
        sync_everything(resource_for(sim), warehouse, PushInboxResource(directory=str(tmp_path / "inbox")))
        chargers = dict(sim.chargers)
    load(warehouse, Path(default_file()), monkeypatch)
    build(warehouse)
    with warehouse.get_connection() as con:
        export = build_export(
            con, countries=["NLD", "NOR"]
        )  # both of the fleet's countries through the NDW rules
    assert not [
        r for r in export.rejections if any("max_electric_power" in reason for reason in r["reasons"])
    ]
    published = {
        e["uid"]: c for body in export.locations for e in json.loads(body)["evses"] for c in e["connectors"]
    }
    assert len(published) >= 10 and {c["power_type"] for c in published.values()} == {
        "AC_1_PHASE",
        "AC_3_PHASE",
    }
    for uid, connector in published.items():
        charger = chargers[uid]
        assert connector["power_type"] == {1: "AC_1_PHASE", 3: "AC_3_PHASE"}[charger.phases]
        assert connector["max_electric_power"] == round(
            rated_w(charger)
        )  # phases x volts x current, as the charger gives it
        assert (
            connector["max_electric_power"]
            <= connector["max_voltage"] * connector["max_amperage"] * charger.phases
        )
