"""Polling availability through Dagster: time series, latest state, no-data ids, errors, XML, schedule."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from evpipeline import settings
from evpipeline.http import AuthError
from evpipeline.run_config import op_config
from evpipeline.simulators.tomtom import TomTomSimulator
from evpipeline.simulators.toolkit import ChargingPark
from evpipeline.sources.tomtom.assets import (
    LATEST_KEY,
    MAPPING_KEY,
    POLLS_KEY,
    SNAPSHOTS_KEY,
    tomtom_availability,
    tomtom_location_mapping,
)
from evpipeline.sources.tomtom.client import TomTomResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, metadata, query, scalar
from evpipeline_tests.sources.tomtom.conftest import fill_mart, resource
from evpipeline_tests.typed import present

ASSETS = [tomtom_location_mapping, tomtom_availability]
COUNTS = "available, occupied, reserved, unknown, out_of_service"


def run(
    tomtom: TomTomResource,
    warehouse: WarehouseResource,
    *,
    only_poll: bool = False,
    raise_on_error: bool = True,
    **config: Any,
) -> dg.ExecuteInProcessResult:
    run_config = op_config([tomtom_availability], **config) if config else None
    selection = [SNAPSHOTS_KEY, LATEST_KEY, POLLS_KEY] if only_poll else None
    return materialize(
        ASSETS,
        {"tomtom": tomtom, "warehouse": warehouse},
        run_config=run_config,
        selection=selection,
        raise_on_error=raise_on_error,
    )


def expected_rows(sim: TomTomSimulator, ids: list[str]) -> set[tuple[Any, ...]]:
    """(id, type, kW, counts...) as the simulator holds them right now."""
    rows = set()
    for aid in ids:
        for connector in sim.availability_body(aid)["connectors"]:
            for level in connector["availability"]["perPowerLevel"]:
                rows.add(
                    (
                        aid,
                        connector["type"],
                        level["powerKW"],
                        level["available"],
                        level["occupied"],
                        level["reserved"],
                        level["unknown"],
                        level["outOfService"],
                    )
                )
    return rows


def failure_message(result: dg.ExecuteInProcessResult) -> tuple[str | None, str]:
    error = present(next(e for e in result.all_events if e.is_step_failure).step_failure_data.error)
    while error.cause is not None and error.cls_name not in (AuthError.__name__, "Failure"):
        error = error.cause
    return error.cls_name, error.message


@pytest.mark.slow
def test_time_series_grows_and_latest_stays_one_row_per_key(
    tomtom: TomTomResource,
    tomtom_sim: TomTomSimulator,
    warehouse: WarehouseResource,
    parks: list[ChargingPark],
) -> None:
    fill_mart(warehouse, parks)
    first = run(tomtom, warehouse)
    ids = [
        r[0]
        for r in query(
            warehouse,
            "SELECT DISTINCT availability_id FROM tomtom.location_mapping WHERE match_status = 'matched'",
        )
    ]
    meta = metadata(first, "tomtom/availability_snapshots")
    assert meta["ids"] == meta["with_data"] == meta["requests"] == len(ids) > 40
    per_poll = len(expected_rows(tomtom_sim, ids))
    assert meta["inserted"] == per_poll and meta["http_429"] == 0

    tomtom_sim.advance(300)  # five minutes of changes
    run(tomtom, warehouse, only_poll=True)
    assert scalar(warehouse, "SELECT count(*) FROM tomtom.availability_snapshots") == 2 * per_poll
    assert scalar(warehouse, "SELECT count(DISTINCT polled_at) FROM tomtom.availability_snapshots") == 2
    assert scalar(warehouse, "SELECT count(*) FROM tomtom.availability_latest") == per_poll
    assert (
        query(
            warehouse,
            "SELECT availability_id, connector_type, power_kw FROM tomtom.availability_latest "
            "GROUP BY ALL HAVING count(*) > 1",
        )
        == []
    )
    latest = {
        tuple(r)
        for r in query(
            warehouse,
            f"SELECT availability_id, connector_type, power_kw, {COUNTS} FROM tomtom.availability_latest",
        )
    }
    assert latest == expected_rows(tomtom_sim, ids)  # the latest table is what the API says now
    newest = {
        tuple(r)
        for r in query(
            warehouse,
            f"SELECT availability_id, connector_type, power_kw, {COUNTS} FROM tomtom.availability_snapshots "
            "WHERE polled_at = (SELECT max(polled_at) FROM tomtom.availability_snapshots)",
        )
    }
    assert newest == latest
    changed = scalar(warehouse, "SELECT count(*) FROM tomtom.availability_latest WHERE _change = 'update'")
    assert changed > 0
    # Unchanged rows keep when they last changed; every row was observed at the newest poll.
    assert scalar(warehouse, "SELECT count(DISTINCT _observed_at) FROM tomtom.availability_latest") == 1
    assert (
        scalar(warehouse, "SELECT count(*) FROM tomtom.availability_latest WHERE last_updated < _observed_at")
        == per_poll - changed
    )
    assert (
        scalar(
            warehouse,
            "SELECT count(*) FROM ops.status_history WHERE table_name = 'tomtom.availability_latest' "
            "AND old_status IS NOT NULL",
        )
        > 0
    )

    # A replay of the same poll (same server time) adds nothing.
    replay = run(tomtom, warehouse, only_poll=True)
    assert metadata(replay, "tomtom/availability_snapshots")["inserted"] == 0
    assert scalar(warehouse, "SELECT count(*) FROM tomtom.availability_snapshots") == 2 * per_poll
    # Each request's Tracking-ID is on its rows and in the poll log.
    assert scalar(warehouse, "SELECT count(DISTINCT tracking_id) FROM tomtom.availability_polls") == 2 * len(
        ids
    )
    assert (
        scalar(
            warehouse,
            "SELECT count(*) FROM tomtom.availability_snapshots s JOIN tomtom.availability_polls p "
            "USING (availability_id, polled_at, tracking_id)",
        )
        == 2 * per_poll
    )
    assert scalar(warehouse, "SELECT count(*) FROM tomtom.location_availability") == per_poll


def test_xml_on_the_wire_writes_the_same_tables(
    tomtom_sim: TomTomSimulator, warehouse: WarehouseResource, tmp_path: Any
) -> None:
    ids = tomtom_sim.availability_ids()[:25]
    other = WarehouseResource(database=str(tmp_path / "xml.duckdb"))
    run(resource(tomtom_sim), warehouse, only_poll=True, availability_ids=ids)
    run(resource(tomtom_sim), other, only_poll=True, availability_ids=ids, wire_format="xml")
    # Everything but what differs per request or run (the Tracking-ID, and the row hash that includes it).
    for table, skip in (("availability_snapshots", "tracking_id, _row_hash, "), ("availability_latest", "")):
        sql = (
            f"SELECT * EXCLUDE ({skip}_ingested_at, _observed_seq, _run_id, _lineage) FROM tomtom.{table} "
            "ORDER BY ALL"
        )
        assert query(warehouse, sql) == query(other, sql) and query(other, sql)
    assert {r[0] for r in query(other, "SELECT DISTINCT wire_format FROM tomtom.availability_polls")} == {
        "xml"
    }


def test_unknown_id_is_recorded_as_no_data(
    tomtom: TomTomResource, tomtom_sim: TomTomSimulator, warehouse: WarehouseResource
) -> None:
    known = tomtom_sim.availability_ids()[0]
    result = run(tomtom, warehouse, only_poll=True, availability_ids=[known, "gone-1234"])
    assert result.success
    meta = metadata(result, "tomtom/availability_polls")
    assert (meta["with_data"], meta["no_data"], meta["errors"]) == (1, 1, 0)
    assert query(
        warehouse,
        "SELECT outcome, http_status, connector_types FROM tomtom.availability_polls "
        "WHERE availability_id = 'gone-1234'",
    ) == [("no_data", 200, 0)]
    assert (
        scalar(
            warehouse,
            "SELECT count(*) FROM tomtom.availability_snapshots WHERE availability_id = 'gone-1234'",
        )
        == 0
    )


def test_id_losing_its_data_is_flagged_in_latest(
    tomtom: TomTomResource, tomtom_sim: TomTomSimulator, warehouse: WarehouseResource
) -> None:
    aid = tomtom_sim.availability_ids()[0]
    run(tomtom, warehouse, only_poll=True, availability_ids=[aid])
    rows = scalar(warehouse, "SELECT count(*) FROM tomtom.availability_latest WHERE NOT is_deleted")
    assert rows > 0
    poi = tomtom_sim.by_availability.pop(aid)  # TomTom stops reporting it
    tomtom_sim.advance(60)
    run(tomtom, warehouse, only_poll=True, availability_ids=[aid])
    assert scalar(warehouse, "SELECT count(*) FROM tomtom.availability_latest WHERE is_deleted") == rows
    assert (
        scalar(warehouse, "SELECT outcome FROM tomtom.availability_polls ORDER BY polled_at DESC LIMIT 1")
        == "no_data"
    )
    assert poi.availability_id == aid


def test_wrong_key_fails_with_auth_error_and_writes_nothing(
    tomtom_sim: TomTomSimulator, warehouse: WarehouseResource
) -> None:
    bad = resource(tomtom_sim, api_key="not-the-key-789")
    result = run(
        bad, warehouse, only_poll=True, raise_on_error=False, availability_ids=tomtom_sim.availability_ids()
    )
    assert not result.success
    cls, message = failure_message(result)
    assert cls == AuthError.__name__ and "403" in message and "not-the-key-789" not in message
    assert len(tomtom_sim.requests_to("/chargingAvailability")) <= 4  # stopped at once, no retries
    assert scalar(warehouse, "SELECT count(*) FROM tomtom.availability_polls") == 0


def test_persistent_5xx_fails_the_run_clearly_after_writing_the_rest(
    tomtom_sim: TomTomSimulator, warehouse: WarehouseResource
) -> None:
    client = resource(tomtom_sim, concurrency=1, max_attempts=3)
    ids = tomtom_sim.availability_ids()[:4]
    tomtom_sim.faults.inject("503", count=3, path="/chargingAvailability")  # the first id, every attempt
    result = run(client, warehouse, only_poll=True, raise_on_error=False, availability_ids=ids)
    assert not result.success
    cls, message = failure_message(result)
    tracking = scalar(warehouse, "SELECT tracking_id FROM tomtom.availability_polls WHERE outcome = 'error'")
    assert (
        cls == "Failure"
        and "1 of 4" in message
        and ids[0] in message
        and tracking in message
        and "503" in message
    )
    assert metadata(result, "tomtom/availability_snapshots")["with_data"] == 3  # the others were committed
    assert {
        r[0] for r in query(warehouse, "SELECT DISTINCT availability_id FROM tomtom.availability_snapshots")
    } == set(ids[1:])


def test_inconsistent_counts_are_quarantined(
    tomtom: TomTomResource,
    tomtom_sim: TomTomSimulator,
    warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = tomtom_sim.availability_ids()[:6]
    broken = ids[0]
    honest = tomtom_sim.availability_body

    def body(aid: str, *args: Any) -> dict[str, Any]:
        result = honest(aid, *args)
        if aid == broken:  # a provider glitch: the per-level counts no longer add up
            result["connectors"][0]["availability"]["current"]["available"] += 5
        return result

    monkeypatch.setattr(tomtom_sim, "availability_body", body)
    result = run(tomtom, warehouse, only_poll=True, availability_ids=ids)
    meta = metadata(result, "tomtom/availability_snapshots")
    assert meta["quarantined"] > 0 and meta["inserted"] > 0
    reasons = {
        r[0]
        for r in query(
            warehouse,
            "SELECT failed_checks FROM ops.quarantine WHERE table_name = 'tomtom.availability_snapshots'",
        )
    }
    assert len(reasons) == 1 and "perPowerLevel available adds up to" in reasons.pop()
    assert (
        scalar(warehouse, "SELECT count(*) FROM ops.quarantine WHERE entity_key LIKE ?", [f"{broken}|%"]) > 0
    )
    assert (
        scalar(warehouse, "SELECT count(*) FROM ops.quarantine WHERE entity_key NOT LIKE ?", [f"{broken}|%"])
        == 0
    )


def test_schedule_and_job() -> None:
    from evpipeline.definitions import SOURCE_GROUPS, defs

    schedule = defs.resolve_schedule_def("tomtom_availability")
    assert schedule.cron_schedule == settings.get("TOMTOM_CRON") == "*/5 * * * *"
    assert schedule.job_name == "tomtom_sync"
    assert "tomtom" in SOURCE_GROUPS
    # The job is TomTom's own; the canonical model it maps against is kept current by the real-time lane.
    job = defs.resolve_job_def("tomtom_sync")
    assert set(job.asset_layer.selected_asset_keys) == {MAPPING_KEY, SNAPSHOTS_KEY, LATEST_KEY, POLLS_KEY}
    mapping_deps = defs.resolve_assets_def(MAPPING_KEY).asset_deps[MAPPING_KEY]
    assert {dg.AssetKey(["mart", "locations"]), dg.AssetKey(["mart", "connectors"])} <= set(mapping_deps)
