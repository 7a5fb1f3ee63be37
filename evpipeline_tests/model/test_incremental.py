"""The incremental model equals a full rebuild, after a seeded random mix of inserts, updates,
deletes, moves, party changes and replays at every source; and it costs what changed."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from evpipeline.model.assets import mart_results, reference_operator_data
from evpipeline.model.build import MartBuild, build_mart
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.toolkit import SimClock
from evpipeline.simulators.zaptec import ZaptecSimulator
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, query
from evpipeline_tests.sources.evroam.test_evroam_sync import sync as evroam_sync
from evpipeline_tests.sources.greenflux.conftest import TOKEN
from evpipeline_tests.sources.greenflux.conftest import resource as greenflux_resource
from evpipeline_tests.sources.greenflux.conftest import sync as greenflux_sync
from evpipeline_tests.sources.zaptec.conftest import resource_for, simulator, sync_everything
from evpipeline_tests.typed import present, running, sim_as


def build(warehouse: WarehouseResource, **kwargs: Any) -> MartBuild:
    with warehouse.get_connection() as con:
        return build_mart(con, run_id="b", **kwargs)


SOURCES = ("greenflux", "zaptec", "evroam")
# Every kind of change the mix makes, and the sources whose sync reads it (a replay rewinds the watermarks
# of the two delta sources: both read an hour again).
CHANGES = {
    "gf_status": ("greenflux",),
    "gf_move": ("greenflux",),
    "gf_evolve": ("greenflux",),
    "gf_tariff": ("greenflux",),
    "gf_new": ("greenflux",),
    "zaptec": ("zaptec",),
    "zaptec_remove": ("zaptec",),
    "evroam_status": ("evroam",),
    "evroam_delete": ("evroam",),
    "replay": ("greenflux", "evroam"),
}


class Fleet:
    """Three simulators and a warehouse that syncs them the way the schedules and the lane do."""

    def __init__(self, clock: SimClock, tmp_path: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.greenflux = sim_as(
            GreenFluxSimulator(scale=0.1, clock=clock, token=TOKEN, seed=seed).start(), GreenFluxSimulator
        )
        self.zaptec = sim_as(simulator(clock, chargers=24, seed=seed).start(), ZaptecSimulator)
        self.evroam = sim_as(
            EVRoamSimulator(scale=0.3, clock=clock, page_size=50, subscription_key="k", seed=seed).start(),
            EVRoamSimulator,
        )
        self.inbox = PushInboxResource(directory=str(tmp_path / "inbox"))
        self.greenflux_resource = greenflux_resource(self.greenflux)
        self.zaptec_resource = resource_for(self.zaptec)
        self.evroam_resource = EVRoamResource(
            base_url=f"{self.evroam.url}/consumer/api",
            subscription_key="k",
            allowed_push_hosts=self.evroam.url,
            requests_per_second=500,
            backoff_base=0.01,
        )

    def sync(self, warehouse: WarehouseResource, sources: Iterable[str] = SOURCES) -> None:
        if "greenflux" in sources:
            greenflux_sync(self.greenflux_resource, warehouse)
        if "zaptec" in sources:
            sync_everything(self.zaptec_resource, warehouse, self.inbox)
        if "evroam" in sources:
            evroam_sync(self.evroam_resource, warehouse)

    def change(self, warehouse: WarehouseResource, action: str) -> str:
        """One change somewhere, as the world (or a replay) would make it."""
        rng, g = self.rng, self.greenflux
        self.clock.advance(rng.randint(5, 90))
        if action == "gf_status":
            uids = [
                r[0] for r in query(warehouse, "SELECT DISTINCT evse_uid FROM greenflux.evses ORDER BY 1")
            ]
            g.set_evse_status(
                rng.choice(uids), rng.choice(["AVAILABLE", "CHARGING", "OUTOFORDER", "BLOCKED"])
            )
        elif action == "gf_move":
            j = rng.randrange(g.n_charge_stations)
            g.move_charge_station(g.charge_station_id(j), g.location_id(rng.randrange(g.n_locations)))
        elif action == "gf_evolve":
            g.evolve(rng.choice([60, 300, 600]))
        elif action == "gf_tariff":
            tariff = rng.choice(sorted(g.tariffs))
            g.edit_tariff(
                tariff,
                elements=[
                    {
                        "price_components": [
                            {"type": "ENERGY", "price": rng.randint(20, 70) / 100, "step_size": 1}
                        ]
                    }
                ],
            )
        elif action == "gf_new":
            g.add_location()
        elif action == "zaptec":
            self.zaptec.advance(rng.choice([60, 600]))
        elif action == "zaptec_remove":
            live = sorted(self.zaptec.chargers)
            if len(live) > 4:
                self.zaptec.remove_charger(rng.choice(live))
        elif action == "evroam_status":
            station = rng.choice(sorted(self.evroam.stations))
            for connector in self.evroam.stations[station].body["connectors"]:
                self.evroam.set_connector_status(
                    station, connector["connectorId"], rng.choice(["Operative", "Inoperative"])
                )
        elif action == "evroam_delete":
            self.evroam.soft_delete_station(rng.choice(sorted(self.evroam.stations)))
        elif action == "replay":
            # Replayed data: every source stream is read again from an hour before its watermark.
            with warehouse.get_connection() as con:
                con.execute(
                    "UPDATE ops.sync_state SET watermark = watermark - INTERVAL 1 HOUR "
                    "WHERE source IN ('greenflux', 'evroam')"
                )
        return action

    def stop(self) -> None:
        for sim in (self.greenflux, self.zaptec, self.evroam):
            sim.stop()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [17])
def test_incremental_builds_equal_a_full_rebuild_after_a_random_mix(
    seed: int, clock: SimClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path))
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    fleet = Fleet(clock, tmp_path, seed)
    try:
        fleet.sync(warehouse)
        materialize([reference_operator_data], {"warehouse": warehouse})
        first = build(warehouse)
        assert (first.mode, first.reason) == ("full", "first build")
        # A first build is no reconciliation: its check must not count every new row as wrong.
        assert first.mismatches is None and all(
            c.passed for _, _, checks in mart_results(first) for c in checks
        )
        fleet_size = query(warehouse, "SELECT count(*) FROM mart.locations")[0][0]
        # Every kind of change once, in a seeded random order; after each, the sources that read it sync
        # (as the lane and the schedules do: a source's sync after a change elsewhere writes nothing new).
        actions = fleet.rng.sample(sorted(CHANGES), len(CHANGES))
        scopes = []
        for action in actions:
            fleet.change(warehouse, action)
            fleet.sync(warehouse, CHANGES[action])
            result = build(warehouse)
            assert result.mode in ("incremental", "idle"), (action, result.reason)
            scopes.append(result.scope.get("locations", 0))
        # Then every source at once (what the clock moved meanwhile too): one build over several sources.
        fleet.sync(warehouse)
        result = build(warehouse)
        assert result.mode in ("incremental", "idle"), ("every source", result.reason)
        assert set(actions) == set(CHANGES), actions  # the mix really was mixed: every kind ran
        # A small change is mapped alone, not with the fleet (the benchmark measures how cost grows).
        assert 0 < min(s for s in scopes if s) < fleet_size / 10, scopes

        # The full build compares before it writes: the incremental builds left exactly its result.
        reconcile = build(warehouse, full=True)
        mismatches = present(reconcile.mismatches)  # a requested full build always compares
        assert mismatches == {t: 0 for t in mismatches}, reconcile.mismatch_sample
        # And a warehouse that only ever saw today's sources, built in full, holds the same live rows.
        # (Live rows only: a hard delete the fresh warehouse never saw is, rightly, not in it. And not
        # the provider's timestamps: a merge keeps `last_updated` from when the content last changed,
        # while a first sight takes whatever stamp the provider shows now.)
        fresh = WarehouseResource(database=str(tmp_path / "fresh.duckdb"))
        fleet.sync(fresh)
        materialize([reference_operator_data], {"warehouse": fresh})
        build(fresh, full=True)
        live = (
            "SELECT * EXCLUDE (last_updated, source_last_updated, deleted_at, _observed_at, _observed_seq, "
            "_row_hash, _ingested_at, _run_id, _lineage, _change, _prev_status) FROM {} WHERE NOT is_deleted "
            "ORDER BY ALL"
        )
        for table in ("mart.locations", "mart.evses", "mart.connectors", "mart.tariffs"):
            rows = query(warehouse, live.format(table))
            assert rows and rows == query(fresh, live.format(table)), table
    finally:
        fleet.stop()


def test_a_requested_rebuild_of_a_mart_never_built_is_its_first_build(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path
) -> None:
    """The demo's first build is `mart_reconcile`: with nothing built before, no row was wrong."""
    with running(simulator(clock, chargers=8)) as sim:
        sync_everything(resource_for(sim), warehouse, PushInboxResource(directory=str(tmp_path / "inbox")))
    first = build(warehouse, full=True)
    assert (first.mode, first.reason, first.mismatches) == ("full", "first build", None)
    assert all(c.passed for _, _, checks in mart_results(first) for c in checks)
    again = build(warehouse, full=True)
    assert again.reason == "requested" and set(present(again.mismatches).values()) == {0}
