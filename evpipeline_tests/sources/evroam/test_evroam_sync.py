"""EVRoam pulls through Dagster against the simulator over real HTTP."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import dagster as dg
import pytest

from evpipeline.http import AuthError
from evpipeline.run_config import op_config
from evpipeline.simulators.evroam import EVRoamSimulator, Record
from evpipeline.simulators.toolkit import SimClock
from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.warehouse import WarehouseResource, Writer
from evpipeline_tests.conftest import materialize, metadata, query, scalar
from evpipeline_tests.typed import step_error


@pytest.fixture
def warehouse(any_warehouse: WarehouseResource) -> WarehouseResource:
    """This sync suite runs on both backends: a DuckDB file and a DuckLake on PostgreSQL."""
    return any_warehouse


ASSETS = [evroam_sites, evroam_stations]


def sync(
    evroam: EVRoamResource, warehouse: WarehouseResource, mode: str = "delta", **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return materialize(
        ASSETS, {"evroam": evroam, "warehouse": warehouse}, run_config=op_config(ASSETS, mode=mode), **kwargs
    )


def pages(n: int, size: int = 50) -> int:
    return max(1, math.ceil(n / size))


def live_counts(sim: EVRoamSimulator) -> tuple[int, int]:
    return len(sim.sites), len(sim.stations)


def test_bootstrap_then_delta_with_minimum_requests(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    sites, stations = live_counts(evroam_sim)
    result = sync(evroam, warehouse)
    assert metadata(result, "evroam/sites")["requests"] == pages(sites)
    assert metadata(result, "evroam/charging_stations")["requests"] == pages(stations)
    assert metadata(result, "evroam/charging_stations")["inserted"] == stations
    assert scalar(warehouse, "SELECT count(*) FROM evroam.charging_stations") == stations
    expected_connectors = sum(len(r.body["connectors"]) for r in evroam_sim.stations.values())
    assert scalar(warehouse, "SELECT count(*) FROM evroam.connectors") == expected_connectors

    watermark, _ = warehouse.sync_state("evroam", "ChargingStation")
    evroam_sim.advance(600)
    since = watermark - timedelta(seconds=120)
    changed = sum(1 for r in evroam_sim.stations.values() if r.modified >= since)
    assert changed > 0
    evroam_sim.reset_log()
    result = sync(evroam, warehouse)
    station_meta = metadata(result, "evroam/charging_stations")
    assert station_meta["fetched"] == changed  # only what changed was requested
    assert station_meta["requests"] == pages(changed)
    assert [r.query.get("resultPage") for r in evroam_sim.requests_to("/ChargingStation")] == [
        [str(p)] for p in range(1, pages(changed) + 1)
    ]
    assert all(
        "If-Modified-Since" not in str(r.query) for r in evroam_sim.requests
    )  # a header, not a parameter
    assert (
        station_meta["inserted"]
        + station_meta["updated"]
        + station_meta["deleted"]
        + station_meta["unchanged"]
        == changed
    )

    # The warehouse now mirrors the simulator exactly.
    expected = {
        (sid, c["connectorId"]): c["operationStatus"]
        for sid, r in evroam_sim.stations.items()
        for c in r.body["connectors"]
    }
    actual = {
        (s, c): st
        for s, c, st in query(
            warehouse, "SELECT charging_station_id, connector_id, operation_status FROM evroam.connectors"
        )
    }
    assert actual == expected


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_empty_delta_costs_one_request(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    sync(evroam, warehouse)
    evroam_sim.clock.advance(3600)  # time passes, nothing changes
    result = sync(evroam, warehouse)
    assert metadata(result, "evroam/charging_stations")["requests"] == 1
    assert metadata(result, "evroam/charging_stations")["fetched"] == 0


def test_soft_deletes_at_every_level(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    sync(evroam, warehouse)
    station_ids = list(evroam_sim.stations)
    gone, partial = station_ids[0], station_ids[1]
    connector = evroam_sim.stations[partial].body["connectors"][0]["connectorId"]
    site = next(iter(evroam_sim.sites))
    evroam_sim.clock.advance(60)
    evroam_sim.soft_delete_station(gone)
    evroam_sim.soft_delete_connector(partial, connector)
    evroam_sim.soft_delete_site(site)
    result = sync(evroam, warehouse)
    assert metadata(result, "evroam/charging_stations")["deleted"] == 1
    assert scalar(
        warehouse, "SELECT is_deleted FROM evroam.charging_stations WHERE charging_station_id = ?", [gone]
    )
    assert scalar(
        warehouse, "SELECT bool_and(is_deleted) FROM evroam.connectors WHERE charging_station_id = ?", [gone]
    )
    assert query(
        warehouse, "SELECT is_deleted FROM evroam.connectors WHERE connector_id = ?", [connector]
    ) == [(True,)]
    assert (
        scalar(
            warehouse,
            "SELECT count(*) FROM evroam.connectors WHERE charging_station_id = ? AND NOT is_deleted",
            [partial],
        )
        == len(evroam_sim.stations[partial].body["connectors"]) - 1
    )
    assert scalar(warehouse, "SELECT is_deleted FROM evroam.sites WHERE site_id = ?", [site])
    assert (
        scalar(
            warehouse, "SELECT deleted_at FROM evroam.charging_stations WHERE charging_station_id = ?", [gone]
        )
        is not None
    )


def test_hard_delete_found_by_repair_pull(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    sync(evroam, warehouse)
    victim = list(evroam_sim.stations)[5]
    evroam_sim.hard_delete_station(victim)
    evroam_sim.clock.advance(60)
    sync(evroam, warehouse)  # a delta cannot see a record that vanished
    assert not scalar(
        warehouse, "SELECT is_deleted FROM evroam.charging_stations WHERE charging_station_id = ?", [victim]
    )
    result = sync(evroam, warehouse, mode="repair")
    assert metadata(result, "evroam/charging_stations")["deleted"] == 1
    assert scalar(
        warehouse, "SELECT is_deleted FROM evroam.charging_stations WHERE charging_station_id = ?", [victim]
    )
    assert scalar(
        warehouse,
        "SELECT bool_and(is_deleted) FROM evroam.connectors WHERE charging_station_id = ?",
        [victim],
    )
    assert scalar(warehouse, "SELECT count(*) FROM evroam.charging_stations WHERE is_deleted") == 1


def test_connector_dropped_from_station_list_is_deleted(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    sync(evroam, warehouse)
    station = next(r for r in evroam_sim.stations.values() if len(r.body["connectors"]) >= 2)
    dropped = station.body["connectors"].pop()["connectorId"]
    evroam_sim.clock.advance(60)
    station.modified = evroam_sim.clock.now()
    sync(evroam, warehouse)
    assert query(warehouse, "SELECT is_deleted FROM evroam.connectors WHERE connector_id = ?", [dropped]) == [
        (True,)
    ]


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
@pytest.mark.parametrize("fault", ["429", "503", "timeout", "truncate", "disconnect"])
def test_sync_survives_transient_faults(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource, fault: str
) -> None:
    evroam_sim.faults.retry_after = 0
    evroam_sim.faults.timeout_seconds = 1.5  # longer than the client's 1 s read timeout
    evroam_sim.faults.inject(fault, count=2, path="/ChargingStation")
    result = sync(evroam, warehouse)
    assert result.success
    assert scalar(warehouse, "SELECT count(*) FROM evroam.charging_stations") == len(evroam_sim.stations)
    station_requests = evroam_sim.requests_to("/ChargingStation")
    assert (
        len(station_requests) == pages(len(evroam_sim.stations)) + 2
    )  # the two faulted attempts were retried


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_bad_key_fails_clearly(evroam_sim: EVRoamSimulator, warehouse: WarehouseResource) -> None:
    bad = EVRoamResource(
        base_url=f"{evroam_sim.url}/consumer/api",
        subscription_key="not-the-key-123",
        allowed_push_hosts=evroam_sim.url,
    )
    result = sync(bad, warehouse, raise_on_error=False)
    assert not result.success
    error = step_error(result, AuthError.__name__)  # unwrapped from Dagster's step error
    assert error.cls_name == AuthError.__name__
    assert "401" in error.message and "invalid subscription key" in error.message
    assert "not-the-key-123" not in error.message
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state") == 0


def test_invalid_rows_are_quarantined_while_valid_rows_merge(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    template = next(iter(evroam_sim.stations.values())).body
    now = evroam_sim.clock.now()
    bad = {
        "bad-lat": {**template, "chargingStationId": "bad-lat", "location": {"lat": 123.0, "lon": 174.0}},
        "bad-current": {**template, "chargingStationId": "bad-current", "current": "XX"},
        "bad-date": {**template, "chargingStationId": "bad-date", "dateFirstOperational": "last tuesday"},
        "bad-kw": {**template, "chargingStationId": "bad-kw", "kwRated": "fifty"},
    }
    for key, body in bad.items():
        body["connectors"] = [
            {
                "connectorId": f"{key}-c1",
                "connectorType": "CHAdeMO",
                "operationStatus": "Broken",
                "providerDeleted": False,
            }
        ]
        evroam_sim.stations[key] = Record(body, now)
    result = sync(evroam, warehouse)
    assert result.success
    meta = metadata(result, "evroam/charging_stations")
    assert meta["quarantined"] == 4 and meta["inserted"] == len(evroam_sim.stations) - 4
    reasons = dict(
        query(
            warehouse,
            "SELECT entity_key, failed_checks FROM ops.quarantine WHERE table_name = "
            "'evroam.charging_stations'",
        )
    )
    assert "latitude" in reasons["bad-lat"] and "in_range" in reasons["bad-lat"]
    assert "current" in reasons["bad-current"]
    assert "dateFirstOperational" in reasons["bad-date"]
    assert "kw_rated" in reasons["bad-kw"]
    raw = scalar(warehouse, "SELECT raw_json FROM ops.quarantine WHERE entity_key = 'bad-date'")
    assert "last tuesday" in raw
    # Connectors of the bad stations are themselves invalid (status "Broken") and quarantined too.
    assert (
        scalar(warehouse, "SELECT count(*) FROM ops.quarantine WHERE table_name = 'evroam.connectors'") == 4
    )
    checks = (
        {c.asset_key.to_user_string(): c.passed for c in result.get_asset_check_evaluations()}
        if hasattr(result, "get_asset_check_evaluations")
        else {}
    )
    assert (
        checks == {} or checks.get("evroam/charging_stations") is True
    )  # 4 of ~130 is under the 5 % threshold


def test_crash_between_fetch_and_commit_then_rerun_converges(
    evroam: EVRoamResource,
    evroam_sim: EVRoamSimulator,
    warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    sync(evroam, warehouse)
    evroam_sim.advance(900)
    snapshot = (
        "SELECT * EXCLUDE (_ingested_at, _run_id, _lineage) FROM evroam.connectors "
        "ORDER BY charging_station_id, connector_id"
    )
    before = query(warehouse, snapshot)
    watermark = warehouse.sync_state("evroam", "ChargingStation")

    def crash(self: Writer, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("process killed before commit")

    monkeypatch.setattr(Writer, "set_sync_state", crash)
    assert not sync(evroam, warehouse, raise_on_error=False).success
    assert query(warehouse, snapshot) == before
    assert warehouse.sync_state("evroam", "ChargingStation") == watermark
    monkeypatch.undo()

    assert sync(evroam, warehouse).success
    # Same state as a warehouse that never crashed.
    clean = WarehouseResource(database=str(tmp_path / "clean.duckdb"))
    sync(evroam, clean)
    compare = (
        "SELECT charging_station_id, connector_id, connector_type, operation_status, is_deleted "
        "FROM evroam.connectors ORDER BY 1, 2"
    )
    assert query(warehouse, compare) == query(clean, compare)


def test_replayed_and_out_of_order_pushes_change_nothing(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    from datetime import UTC, datetime

    from evpipeline.sources.evroam.assets import merge_records
    from evpipeline.sources.evroam.tables import AVAILABILITY

    sync(evroam, warehouse)
    station = next(r for r in evroam_sim.stations.values() if "availabilityStatus" in r.body)
    sid = station.body["chargingStationId"]
    old = [
        {
            "chargingStationId": sid,
            "operator": "x",
            "availabilityStatus": "Occupied",
            "kwAvailable": 0,
            "availabilityTime": "2020-01-01T00:00:00Z",
        }
    ]
    newest = scalar(
        warehouse, "SELECT availability_status FROM evroam.availability WHERE charging_station_id = ?", [sid]
    )
    for _ in range(2):  # out of order (older than what we hold), then replayed
        outcome = merge_records(
            warehouse,
            "availabilities",
            old,
            datetime(2020, 1, 1, tzinfo=UTC),
            run_id="replay",
            stream="push:availabilities",
            lineage="push:old",
        )
        assert outcome[AVAILABILITY].counts.updated == 0
    assert (
        scalar(
            warehouse,
            "SELECT availability_status FROM evroam.availability WHERE charging_station_id = ?",
            [sid],
        )
        == newest
    )


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the source's setting, not the backend, is tested
def test_evroam_versions_follow_its_own_timestamp_not_our_delivery_time(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource, clock: SimClock
) -> None:
    """EVRoam's own timestamps order its versions: a record stamped long ago stays stale however late
    (by our clock) it is delivered, so a newer fetch never makes an old value win."""
    from evpipeline.sources.evroam.assets import merge_records
    from evpipeline.sources.evroam.tables import AVAILABILITY

    sync(evroam, warehouse)
    station = next(r for r in evroam_sim.stations.values() if "availabilityStatus" in r.body)
    sid = station.body["chargingStationId"]
    held = scalar(
        warehouse, "SELECT availability_status FROM evroam.availability WHERE charging_station_id = ?", [sid]
    )
    stale_status = (
        "Available" if held == "Occupied" else "Occupied"
    )  # different content, or nothing would be tested
    old = [
        {
            "chargingStationId": sid,
            "operator": "x",
            "availabilityStatus": stale_status,
            "kwAvailable": 0,
            "availabilityTime": "2020-01-01T00:00:00Z",
        }
    ]
    delivered = clock.now() + timedelta(hours=1)  # after everything we hold was fetched
    outcome = merge_records(
        warehouse,
        "availabilities",
        old,
        delivered,
        run_id="late",
        stream="push:availabilities",
        lineage="push:late",
    )
    assert outcome[AVAILABILITY].counts.updated == 0
    assert (
        scalar(
            warehouse,
            "SELECT availability_status FROM evroam.availability WHERE charging_station_id = ?",
            [sid],
        )
        == held
    )
