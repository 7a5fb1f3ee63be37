"""GreenFlux syncs through Dagster against the simulator over real HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from evpipeline.http import AuthError, OcpiError
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.toolkit import Request
from evpipeline.sources.greenflux.assets import (
    CHARGE_STATIONS_KEY,
    CONNECTORS_KEY,
    EVSES_KEY,
    LOCATIONS_KEY,
    TARIFFS_KEY,
)
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.warehouse import WarehouseResource, Writer
from evpipeline_tests.conftest import metadata, query, scalar
from evpipeline_tests.sources.greenflux.conftest import PAGE, TOKEN, resource, step_error, sync
from evpipeline_tests.typed import all_of


@pytest.fixture
def warehouse(any_warehouse: WarehouseResource) -> WarehouseResource:
    """This sync suite runs on both backends: a DuckDB file and a DuckLake on PostgreSQL."""
    return any_warehouse


LOCATIONS_ONLY = [LOCATIONS_KEY, EVSES_KEY, CONNECTORS_KEY]  # one endpoint, one step


def pages(n: int, size: int = PAGE) -> int:
    """Requests to read n objects when paging stops at the first short page."""
    return n // size + 1


def sim_evses(sim: GreenFluxSimulator) -> dict[tuple[str, str], str]:
    return {(loc["id"], e["uid"]): e["status"] for loc in sim.locations() for e in loc["evses"]}


def warehouse_evses(warehouse: WarehouseResource) -> dict[tuple[str, str], str]:
    rows = query(warehouse, "SELECT location_id, evse_uid, status FROM greenflux.evses WHERE NOT is_deleted")
    return {(loc, uid): status for loc, uid, status in rows}


def live_copy(sim: GreenFluxSimulator, uid: str) -> str:
    """The location where the simulator has this EVSE live."""
    return next(
        loc["id"]
        for loc in sim.locations()
        for e in loc["evses"]
        if e["uid"] == uid and e["status"] != "REMOVED"
    )


@pytest.mark.slow
def test_bootstrap_then_deltas_with_minimum_requests(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    result = sync(greenflux, warehouse)
    assert metadata(result, "greenflux/locations")["requests"] == pages(sim.n_locations)
    assert metadata(result, "greenflux/charge_stations")["requests"] == pages(sim.n_charge_stations)
    assert metadata(result, "greenflux/tariffs")["requests"] == pages(len(sim.tariffs))
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.locations") == sim.n_locations
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.charge_stations") == sim.n_charge_stations
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.tariffs") == len(sim.tariffs)
    assert warehouse_evses(warehouse) == sim_evses(sim)
    connectors = sum(len(e["connectors"]) for loc in sim.locations() for e in loc["evses"])
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.connectors") == connectors

    watermark, _ = warehouse.sync_state("greenflux", "Locations")
    sim.advance(900)  # statuses change, stations move, locations appear and get edited
    since = watermark - timedelta(seconds=120)
    changed = [lid for lid, updated in sim.location_updated() if updated >= since.timestamp()]
    assert 0 < len(changed) < sim.n_locations
    sim.reset_log()
    result = sync(greenflux, warehouse)
    meta = metadata(result, "greenflux/locations")
    assert meta["fetched"] == len(changed)  # only what changed was requested
    assert meta["requests"] == pages(len(changed))
    requests = sim.requests_to("/api/2.0/Locations")
    assert [r.query["offset"] for r in requests] == [[str(PAGE * k)] for k in range(pages(len(changed)))]
    assert {r.query["date_from"][0] for r in requests} == {since.strftime("%Y-%m-%dT%H:%M:%SZ")}
    # The warehouse mirrors the simulator: statuses, moved EVSEs' REMOVED copies, new locations.
    assert warehouse_evses(warehouse) == sim_evses(sim)
    stations = {(cs["charge_station_id"], cs["location_id"]) for cs in sim.charge_stations()}
    assert (
        set(query(warehouse, "SELECT charge_station_id, location_id FROM greenflux.charge_stations"))
        == stations
    )

    # Time passes, nothing changes: one request per stream, nothing written.
    sim.clock.advance(3600)
    result = sync(greenflux, warehouse)
    for key in ("greenflux/locations", "greenflux/evses", "greenflux/charge_stations", "greenflux/tariffs"):
        meta = metadata(result, key)
        assert meta["requests"] == 1
        assert meta["inserted"] == meta["updated"] == meta["deleted"] == 0


def test_date_from_is_inclusive_and_date_to_exclusive(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator
) -> None:
    sim, client = greenflux_sim, greenflux.client()
    ids = [lid for lid, _ in sim.location_updated()]
    sim.clock.advance(3600)
    t1 = sim.clock.now()
    sim.edit_location(ids[3], remarks="at t1")
    sim.clock.advance(1)
    t2 = sim.clock.now()
    sim.edit_location(ids[10], remarks="at t2")
    sim.edit_location(ids[25], remarks="at t2 as well")

    def read(**window: Any) -> list[str]:
        return [r["id"] for page in client.locations(**window) for r in page.records]

    before, after = read(since=t1, until=t2), read(since=t2)
    assert before == [ids[3]]  # an object changed at exactly date_to is not in [t1, t2) ...
    assert sorted(after) == sorted([ids[10], ids[25]])  # ... but in [t2, ...): never lost, never twice
    assert read(since=t2 + timedelta(seconds=1)) == []


def test_boundary_second_is_reread_without_duplicates(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    ids = [lid for lid, _ in sim.location_updated()]
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    sim.clock.advance(60)
    sim.edit_location(ids[1], remarks="first edit")
    sync(greenflux, warehouse, overlap_seconds=0, selection=LOCATIONS_ONLY)
    watermark, _ = warehouse.sync_state("greenflux", "Locations")
    assert watermark == sim.clock.now()
    sim.edit_location(ids[2], remarks="same second as the watermark")  # the clock has not moved
    result = sync(greenflux, warehouse, overlap_seconds=0, selection=LOCATIONS_ONLY)
    assert (
        metadata(result, "greenflux/locations")["fetched"] == 2
    )  # date_from inclusive: both edits of that second
    assert (
        scalar(warehouse, "SELECT remarks FROM greenflux.locations WHERE location_id = ?", [ids[2]])
        == "same second as the watermark"
    )
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.locations") == sim.n_locations
    assert (
        scalar(warehouse, "SELECT count(*) - count(DISTINCT (location_id, evse_uid)) FROM greenflux.evses")
        == 0
    )


def test_records_watermark_is_capped_at_the_first_pages_server_time(
    greenflux: GreenFluxResource,
    greenflux_sim: GreenFluxSimulator,
    warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paging takes time: a location changed after page 1 was served may sit on a page already read
    (offset paging in creation order), so the watermark may not pass the time the first page was
    produced, even when a newer record and later pages say more."""
    sim = greenflux_sim
    last_id = sim.location_updated()[-1][0]  # creation order: served on the last page
    changed: list[str] = []

    def between_pages(request: Request) -> None:
        # Before the second page: a minute passes and a location changes
        # (the frozen clock stands still otherwise).
        if (
            request.path == "/api/2.0/Locations"
            and request.query.get("offset", ["0"]) != ["0"]
            and not changed
        ):
            sim.clock.advance(60)
            sim.edit_location(last_id, remarks="edited while paging")
            changed.append(last_id)

    monkeypatch.setattr(sim, "precheck", between_pages)
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)

    requests = sim.requests_to("/api/2.0/Locations")
    assert changed and len(requests) == pages(sim.n_locations) > 2  # several pages, the later ones at 12:01
    assert (
        scalar(warehouse, "SELECT remarks FROM greenflux.locations WHERE location_id = ?", [last_id])
        == "edited while paging"
    )
    watermark, _ = warehouse.sync_state("greenflux", "Locations")
    # The clock fixture starts at 12:00:00 and page 1 was served then; the last page and the newest
    # record (the edit) are from 12:01:00.
    assert watermark == datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_ocpi_client_error_inside_http_200_fails_clearly(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    greenflux_sim.inject_ocpi(2001, "Invalid or missing parameters: cpoId", path="/Locations")
    result = sync(greenflux, warehouse, selection=LOCATIONS_ONLY, raise_on_error=False)
    assert not result.success
    error = step_error(result, OcpiError.__name__)
    assert error.cls_name == OcpiError.__name__
    assert "2001" in error.message and "Invalid or missing parameters" in error.message
    assert (
        "greenflux GET" in error.message
        and "/api/2.0/Locations" in error.message
        and "HTTP 200" in error.message
    )
    assert len(greenflux_sim.requests_to("/api/2.0/Locations")) == 1  # a client error is not retried
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state") == 0
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.locations") == 0


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
@pytest.mark.parametrize("fault", ["ocpi-3000", "rate-limit-in-200", "http-429"])
def test_server_errors_and_rate_limits_are_retried(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource, fault: str
) -> None:
    sim = greenflux_sim
    if fault == "ocpi-3000":
        sim.inject_ocpi(3000, "Generic server error", count=2, path="/Locations")
    else:
        sim.rate_limit_style = "body" if fault == "rate-limit-in-200" else "http"
        sim.faults.inject("429", count=2, path="/Locations")
    result = sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    assert result.success
    statuses = [r.status for r in sim.requests_to("/api/2.0/Locations")]
    assert len(statuses) == pages(sim.n_locations) + 2  # the two refusals were retried
    assert statuses.count(429) == (2 if fault == "http-429" else 0)  # the others came as HTTP 200
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.locations") == sim.n_locations


def test_moved_evse_ends_up_in_its_new_location(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    station = next(cs for cs in sim.charge_stations() if cs["deploy_state"] == "Production")
    old = station["location_id"]
    old_updated = sim.location(old)["last_updated"]
    new = next(
        loc["id"]
        for loc in sim.locations()
        if loc["cpo_id"] == sim.location(old)["cpo_id"] and loc["id"] != old
    )
    uids = [e["uid"] for e in station["evses"]]
    sim.clock.advance(60)
    sim.move_charge_station(station["charge_station_id"], new)
    assert sim.location(old)["last_updated"] == old_updated  # REMOVED without a timestamp change

    result = sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    fetched = {
        r[0]
        for r in query(
            warehouse, "SELECT location_id FROM greenflux.locations WHERE _run_id = ?", [result.run_id]
        )
    }
    assert old not in fetched  # the delta never returned the old location ...
    current = dict(
        query(
            warehouse,
            "SELECT evse_uid, location_id FROM greenflux.current_evses "
            f"WHERE evse_uid IN ({', '.join('?' * len(uids))})",
            uids,
        )
    )
    assert current == dict.fromkeys(uids, new)  # ... yet the EVSEs are where they are now
    copies = query(
        warehouse,
        "SELECT location_id, status FROM greenflux.evses WHERE evse_uid = ? ORDER BY location_id = ?",
        [uids[0], new],
    )
    assert [c[0] for c in copies] == [old, new] and copies[0][1] == "REMOVED" and copies[1][1] != "REMOVED"
    history = query(
        warehouse,
        "SELECT entity_key, old_status, new_status FROM ops.status_history WHERE entity_key LIKE ? "
        "AND run_id = ?",
        [f"%|{uids[0]}", result.run_id],
    )
    assert {(key.split("|")[0], new_status) for key, _, new_status in history} == {
        (old, "REMOVED"),
        (new, copies[1][1]),
    }

    # A full pull sees the API's own REMOVED copy: it agrees, nothing changes.
    result = sync(greenflux, warehouse, mode="full", selection=LOCATIONS_ONLY)
    assert metadata(result, "greenflux/evses")["updated"] == 0
    assert warehouse_evses(warehouse) == sim_evses(sim)

    # Moved back: the old location's copy is live again, the other one REMOVED.
    sim.clock.advance(60)
    sim.move_charge_station(station["charge_station_id"], old)
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    assert (
        scalar(warehouse, "SELECT location_id FROM greenflux.current_evses WHERE evse_uid = ?", [uids[0]])
        == old
        == live_copy(sim, uids[0])
    )
    assert warehouse_evses(warehouse) == sim_evses(sim)


def test_evse_status_changes_reach_the_warehouse_and_history(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    streams = [*LOCATIONS_ONLY, CHARGE_STATIONS_KEY]
    sync(greenflux, warehouse, selection=streams)
    location = next(loc for loc in sim.locations() if any(e["status"] == "AVAILABLE" for e in loc["evses"]))
    evse = next(e for e in location["evses"] if e["status"] == "AVAILABLE")
    station = next(cs for cs in sim.charge_stations() if evse["uid"] in [e["uid"] for e in cs["evses"]])
    sim.clock.advance(120)
    sim.set_evse_status(evse["uid"], "CHARGING")
    result = sync(greenflux, warehouse, selection=streams)
    assert (
        scalar(warehouse, "SELECT status FROM greenflux.evses WHERE evse_uid = ?", [evse["uid"]])
        == "CHARGING"
    )
    assert query(
        warehouse,
        "SELECT old_status, new_status FROM ops.status_history WHERE entity_key = ? AND run_id = ?",
        [f"{location['id']}|{evse['uid']}", result.run_id],
    ) == [("AVAILABLE", "CHARGING")]
    # The Location's own `modified` did not move (only last_updated); the charge station's neither.
    assert (
        scalar(
            warehouse, "SELECT modified FROM greenflux.locations WHERE location_id = ?", [location["id"]]
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        == location["modified"]
    )
    assert (
        scalar(warehouse, "SELECT count(*) FROM greenflux.charge_stations WHERE _run_id = ?", [result.run_id])
        == 0
    )
    stored = json.loads(
        scalar(
            warehouse,
            "SELECT evses FROM greenflux.charge_stations WHERE charge_station_id = ?",
            [station["charge_station_id"]],
        )
    )
    assert {e["uid"]: e["status"] for e in stored}[
        evse["uid"]
    ] == "AVAILABLE"  # as of the station's own last change


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_custom_fields_survive(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    location = next(loc for loc in sim.locations() if loc["energy_mix"] and loc["evses"])
    custom = {
        "auth_rules": [
            {"type": "ClosedGroups", "value": "staff-cards"},
            {"type": "CustomerExternalId", "value": "CUST-0042"},
        ],
        "custom_groups": [{"name": "Municipality Utrecht", "external_id": "MUN-UTR"}],
        "customised_fields": [
            {"type": "SiteCode", "value": "UTR-001"},
            {"type": "Contract", "value": "C-77"},
        ],
        "maintenance_info": "Annual inspection due 2027-09",
        "remarks": "Bay 3 often ICE'd",
        "gfx_parking_operator": {"name": "Q-Park", "contract": 12},  # a field nobody modelled yet
    }
    sim.edit_location(location["id"], **custom)
    uid = location["evses"][0]["uid"]
    sim.edit_evse(uid, gfx_hardware_ref="HW-991")
    sync(greenflux, warehouse)
    served = sim.location(location["id"])
    row = dict(
        zip(
            [
                "auth_rules",
                "custom_groups",
                "customised_fields",
                "maintenance_info",
                "remarks",
                "energy_mix",
                "energy_mix_profile_id",
                "is_green_energy",
                "cpo_id",
                "etag",
                "created",
                "modified",
                "extra",
            ],
            query(
                warehouse,
                "SELECT auth_rules, custom_groups, customised_fields, maintenance_info, remarks, "
                "energy_mix, energy_mix_profile_id, is_green_energy, cpo_id, etag, created, modified, extra "
                "FROM greenflux.locations WHERE location_id = ?",
                [location["id"]],
            )[0],
            strict=True,
        )
    )
    for name in ("auth_rules", "custom_groups", "customised_fields", "energy_mix"):
        assert json.loads(row[name]) == served[name]
    assert (row["maintenance_info"], row["remarks"], row["cpo_id"], row["etag"]) == (
        custom["maintenance_info"],
        custom["remarks"],
        served["cpo_id"],
        served["etag"],
    )
    assert row["energy_mix_profile_id"] == served["energy_mix"]["energy_mix_profile_id"]
    assert row["is_green_energy"] == served["energy_mix"]["is_green_energy"]
    assert (
        row["created"].strftime("%Y-%m-%dT%H:%M:%SZ") == served["created"]
        and row["modified"].strftime("%Y-%m-%dT%H:%M:%SZ") == served["modified"]
    )
    assert json.loads(row["extra"]) == {"gfx_parking_operator": custom["gfx_parking_operator"]}
    assert json.loads(scalar(warehouse, "SELECT extra FROM greenflux.evses WHERE evse_uid = ?", [uid])) == {
        "gfx_hardware_ref": "HW-991"
    }
    # Charge stations keep their hardware, deploy and tariff fields; tariffs their elements.
    station = sim.charge_stations()[0]
    stored = query(
        warehouse,
        "SELECT deploy_state, connectivity_status, default_charge_station_tariff_id, charge_point_vendor, "
        "charge_point_model, firmware_version, evse_uids FROM greenflux.charge_stations "
        "WHERE charge_station_id = ?",
        [station["charge_station_id"]],
    )[0]
    assert stored[:6] == (
        station["deploy_state"],
        station["connectivity_status"],
        station["default_charge_station_tariff_id"],
        station["charge_point_vendor"],
        station["charge_point_model"],
        station["firmware_version"],
    )
    assert json.loads(stored[6]) == [e["uid"] for e in station["evses"]]
    tariff = sim.tariffs["13"]
    assert (
        json.loads(scalar(warehouse, "SELECT elements FROM greenflux.tariffs WHERE tariff_id = '13'"))
        == tariff["elements"]
    )


def test_invalid_objects_are_quarantined_while_valid_ones_merge(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    located = [loc for loc in sim.locations() if loc["evses"]]
    bad_country, bad_latitude, bad_time = located[0]["id"], located[1]["id"], located[2]["id"]
    sim.edit_location(bad_country, country="Netherlands")
    sim.edit_location(bad_latitude, coordinates={"latitude": "91.500000", "longitude": "4.900000"})
    sim.edit_location(bad_time, last_updated="last tuesday")
    bad_status = located[3]["evses"][0]["uid"]
    sim.edit_evse(bad_status, status="BROKEN")
    bad_plug = located[4]["evses"][0]
    sim.edit_connector(bad_plug["uid"], bad_plug["connectors"][0]["id"], standard="TYPE2")
    result = sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    assert result.success
    meta = metadata(result, "greenflux/locations")
    assert meta["quarantined"] == 3 and meta["inserted"] == sim.n_locations - 3
    reasons = dict(
        query(
            warehouse,
            "SELECT entity_key, failed_checks FROM ops.quarantine WHERE table_name = 'greenflux.locations'",
        )
    )
    assert "country" in reasons[bad_country] and "str_matches" in reasons[bad_country]
    assert "latitude" in reasons[bad_latitude] and "in_range" in reasons[bad_latitude]
    assert "location.last_updated" in reasons[bad_time]
    assert "last tuesday" in scalar(
        warehouse, "SELECT raw_json FROM ops.quarantine WHERE entity_key = ?", [bad_time]
    )
    evse_reasons = dict(
        query(
            warehouse,
            "SELECT entity_key, failed_checks FROM ops.quarantine WHERE table_name = 'greenflux.evses'",
        )
    )
    assert (
        list(evse_reasons) == [f"{located[3]['id']}|{bad_status}"]
        and "status" in evse_reasons[f"{located[3]['id']}|{bad_status}"]
    )
    plug_reasons = scalar(
        warehouse, "SELECT failed_checks FROM ops.quarantine WHERE table_name = 'greenflux.connectors'"
    )
    assert "standard" in plug_reasons
    # The quarantined location's EVSEs are valid on their own and merged; nothing valid was held back.
    assert scalar(
        warehouse, "SELECT count(*) FROM greenflux.evses WHERE location_id = ?", [bad_country]
    ) == len(located[0]["evses"])
    assert (
        scalar(warehouse, "SELECT count(*) FROM greenflux.evses")
        == sum(len(loc["evses"]) for loc in sim.locations()) - 1
    )


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_bad_token_fails_clearly(greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource) -> None:
    bad = resource(greenflux_sim, token="not-the-token-123")
    result = sync(bad, warehouse, selection=LOCATIONS_ONLY, raise_on_error=False)
    assert not result.success
    error = step_error(result, AuthError.__name__)
    assert error.cls_name == AuthError.__name__
    assert "403" in error.message and "Invalid or expired token" in error.message
    assert "not-the-token-123" not in error.message and TOKEN not in error.message
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state") == 0


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_bare_array_lists_and_a_server_page_cap(
    greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    sim.bare_lists = True  # as one GreenFlux SDK documents the CLM lists
    sim.max_limit = 15  # the server serves fewer than asked and says so in X-Limit
    result = sync(resource(sim), warehouse, selection=[LOCATIONS_KEY, CHARGE_STATIONS_KEY])
    assert metadata(result, "greenflux/locations")["requests"] == pages(sim.n_locations, 15)
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.locations") == sim.n_locations
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.charge_stations") == sim.n_charge_stations
    watermark, _ = warehouse.sync_state("greenflux", "Locations")
    assert (
        watermark is not None and watermark <= sim.clock.now()
    )  # from the Date header when there is no envelope


def test_connector_dropped_from_an_evse_is_flagged_deleted(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sim = greenflux_sim
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    evse = next(e for loc in sim.locations() for e in loc["evses"] if len(e["connectors"]) == 2)
    sim.clock.advance(60)
    sim.edit_evse(evse["uid"], connectors=evse["connectors"][:1])
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    flags = dict(
        query(
            warehouse,
            "SELECT connector_id, is_deleted FROM greenflux.connectors WHERE evse_uid = ?",
            [evse["uid"]],
        )
    )
    assert flags == {"1": False, "2": True}


def test_full_pull_flags_a_vanished_tariff(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    sync(greenflux, warehouse, selection=[TARIFFS_KEY])
    greenflux_sim.delete_tariff("14")
    greenflux_sim.clock.advance(60)
    sync(greenflux, warehouse, selection=[TARIFFS_KEY])  # a delta cannot see what vanished
    assert not scalar(warehouse, "SELECT is_deleted FROM greenflux.tariffs WHERE tariff_id = '14'")
    result = sync(greenflux, warehouse, mode="full", selection=[TARIFFS_KEY])
    assert metadata(result, "greenflux/tariffs")["deleted"] == 1
    assert scalar(warehouse, "SELECT is_deleted FROM greenflux.tariffs WHERE tariff_id = '14'")


@pytest.mark.slow
def test_crash_before_commit_writes_nothing_and_a_rerun_converges(
    greenflux: GreenFluxResource,
    greenflux_sim: GreenFluxSimulator,
    warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    greenflux_sim.advance(900)
    snapshot = (
        "SELECT * EXCLUDE (_ingested_at, _run_id, _lineage) FROM greenflux.evses "
        "ORDER BY location_id, evse_uid"
    )
    before, watermark = query(warehouse, snapshot), warehouse.sync_state("greenflux", "Locations")

    def crash(self: Writer, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("process killed before commit")

    monkeypatch.setattr(Writer, "set_sync_state", crash)
    assert not sync(greenflux, warehouse, selection=LOCATIONS_ONLY, raise_on_error=False).success
    assert query(warehouse, snapshot) == before
    assert warehouse.sync_state("greenflux", "Locations") == watermark
    monkeypatch.undo()

    assert sync(greenflux, warehouse, selection=LOCATIONS_ONLY).success
    clean = WarehouseResource(database=str(tmp_path / "clean.duckdb"))
    sync(greenflux, clean, selection=LOCATIONS_ONLY)
    compare = "SELECT location_id, evse_uid, evse_id, status, is_deleted FROM greenflux.evses ORDER BY 1, 2"
    assert query(warehouse, compare) == query(clean, compare)


def test_definitions_schedule_every_fifteen_minutes_by_default() -> None:
    from evpipeline import settings
    from evpipeline.sources.greenflux.definitions import defs

    schedules = {s.name: s for s in all_of(defs.schedules, dg.ScheduleDefinition)}
    assert settings.ENVIRONMENT["GREENFLUX_CRON"][0] == "*/15 * * * *"
    assert schedules["greenflux_delta"].cron_schedule == settings.get("GREENFLUX_CRON")
    assert schedules["greenflux_daily_full"].cron_schedule == settings.get("GREENFLUX_FULL_CRON")
    assets = all_of(defs.assets, dg.AssetsDefinition)
    assert {a.op.name for a in assets} == {
        "greenflux_locations",
        "greenflux_charge_stations",
        "greenflux_tariffs",
    }
    assert dg.AssetKey(["greenflux", "evses"]) in {k for a in assets for k in a.keys}


def _fetch(greenflux: GreenFluxResource) -> list[Any]:
    """Every Locations page as the sync would turn it into batches (a fetch, kept for a later replay)."""
    from evpipeline.sources.greenflux import normalize, schemas
    from evpipeline.sources.greenflux.tables import CONNECTORS, EVSES, KEYS, LOCATIONS, STATUS
    from evpipeline.sync import Batch, TableRows

    batches = []
    for page in greenflux.client().locations(None):
        rows = normalize.locations(page.records)
        batches.append(
            Batch(
                [
                    TableRows(
                        LOCATIONS,
                        rows.locations.frame,
                        schemas.LOCATIONS,
                        KEYS[LOCATIONS],
                        rows.locations.raw,
                    ),
                    TableRows(
                        EVSES, rows.evses.frame, schemas.EVSES, KEYS[EVSES], rows.evses.raw, STATUS[EVSES]
                    ),
                    TableRows(
                        CONNECTORS,
                        rows.connectors.frame,
                        schemas.CONNECTORS,
                        KEYS[CONNECTORS],
                        rows.connectors.raw,
                    ),
                ],
                as_of=page.server_time,
                lineage=f"offset={page.offset}",
            )
        )
    return batches


def _merge(warehouse: WarehouseResource, batches: list[Any], run_id: str) -> None:
    from evpipeline.sync import write_sync_batches

    write_sync_batches(
        warehouse,
        source="greenflux",
        stream="replay-test",
        run_id=run_id,
        batches=batches,
        watermark=None,
        version_by_fetch=True,
    )


def test_an_older_fetch_never_wins_a_tie_with_a_newer_one(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    """GreenFlux moves EVSEs without touching any timestamp, and the frozen clock puts both fetches in
    the same server second: only our fetch sequence can order them."""
    sim = greenflux_sim
    older = _fetch(greenflux)
    moved = [cs for cs in sim.charge_stations() if cs["deploy_state"] == "Production"][:3]
    for station in moved:
        target = next(
            loc["id"]
            for loc in sim.locations()
            if loc["cpo_id"] == sim.location(station["location_id"])["cpo_id"]
            and loc["id"] != station["location_id"]
        )
        sim.move_charge_station(station["charge_station_id"], target)
    newer = _fetch(greenflux)
    assert {b.as_of for b in older} == {b.as_of for b in newer}  # the same second

    _merge(warehouse, older, "fetch-1")
    _merge(warehouse, newer, "fetch-2")
    after_newer = warehouse_evses(warehouse)
    assert after_newer == sim_evses(sim)

    _merge(warehouse, older, "replay")  # the older fetch merged again, late (a slow run, a retry)
    assert warehouse_evses(warehouse) == after_newer  # nothing reverted ...
    assert (
        scalar(warehouse, "SELECT count(*) FROM ops.status_history WHERE run_id = 'replay'") == 0
    )  # ... no false history
    assert scalar(warehouse, "SELECT count(*) FROM greenflux.evses WHERE _run_id = 'replay'") == 0


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the source's setting, not the backend, is tested
def test_greenflux_versions_follow_our_fetch_not_its_last_updated(
    greenflux: GreenFluxResource, greenflux_sim: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    """GreenFlux's `last_updated` cannot order its versions (it keeps it across changes): a change served
    later with an older stamp than the one we hold still lands, because our fetch time is the clock."""
    sim = greenflux_sim
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    location, uid, status, stamp = query(
        warehouse,
        """SELECT location_id, evse_uid, status, last_updated FROM greenflux.evses
                                                      WHERE status = 'AVAILABLE' ORDER BY evse_uid LIMIT 1""",
    )[0]
    sim.clock.advance(60)
    sim.edit_evse(
        uid, status="OUTOFORDER", last_updated=(stamp - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    sync(greenflux, warehouse, selection=LOCATIONS_ONLY)
    assert query(
        warehouse,
        "SELECT status FROM greenflux.evses WHERE location_id = ? AND evse_uid = ?",
        [location, uid],
    ) == [("OUTOFORDER",)]
