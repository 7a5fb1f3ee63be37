"""NDW push end to end over real HTTP: client, diff, ops log, Dagster asset/check, jobs and sensor."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import dagster as dg
import pytest

from evpipeline.lane.cycle import Lane
from evpipeline.ndw.export import build_export
from evpipeline.ndw.push import NdwAuthError, NdwPushResource
from evpipeline.ndw.push_assets import ndw_push, ndw_push_full_job
from evpipeline.run_config import op_config
from evpipeline.simulators.ndw import NdwSimulator, PushRecord
from evpipeline.simulators.toolkit import SimClock
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, metadata, query, scalar
from evpipeline_tests.mart_fixture import TARIFF_ELEMENTS, MartRows, later, standard_mart
from evpipeline_tests.ndw.conftest import CLIENT_ID, CLIENT_SECRET, resource
from evpipeline_tests.typed import present, running


@pytest.fixture
def mart(warehouse: WarehouseResource) -> MartRows:
    rows = standard_mart()
    rows.write(warehouse)
    return rows


def push(
    warehouse: WarehouseResource, ndw: NdwPushResource, *, static: bool = True, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    return materialize(
        [ndw_push],
        {"warehouse": warehouse, "ndw": ndw},
        raise_on_error=raise_on_error,
        run_config=op_config([ndw_push], static=static),
    )


def check_passed(result: dg.ExecuteInProcessResult) -> bool:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation.passed


def change_evse(
    warehouse: WarehouseResource, location: int, evse: int, status: str, minutes: int, **overrides: Any
) -> None:
    """Merge one EVSE row of the standard mart with a new status (the merge records the transition)."""
    rows = MartRows()
    rows.evse(rows.location(location), evse, status=status, updated=later(minutes), **overrides)
    rows.locations.clear()
    rows.write(warehouse, run_id=f"change-{minutes}")


def path_ids(record: PushRecord) -> list[str]:
    return [unquote(part) for part in record.path.split("/")[4:]]  # after /ocpi/2.2.1/<module>/


def held(warehouse: WarehouseResource, kind: str) -> set[str]:
    rows = query(
        warehouse,
        "SELECT country_code, party_id, object_id, evse_uid FROM ops.ndw_pushed WHERE kind = ?",
        [kind],
    )
    return {"/".join(p for p in row if p) for row in rows}


# --------------------------------------------------------------------------------------------
# Static: full push, no-op diff, URLs


def test_full_push_leaves_ndw_holding_exactly_the_export(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows
) -> None:
    result = push(warehouse, resource(sim, concurrency=4))
    with warehouse.get_connection() as con:
        export = build_export(con)
    assert {(o["country_code"], o["party_id"], o["id"]): o for o in sim.locations.values()} == {
        key: json.loads(text) for key, text in zip(export.location_keys, export.locations, strict=True)
    }
    assert {(o["country_code"], o["party_id"], o["id"]): o for o in sim.tariffs.values()} == {
        key: json.loads(text) for key, text in zip(export.tariff_keys, export.tariffs, strict=True)
    }
    assert len(export.locations) == 8 and len(export.tariffs) == 2
    # Every push: a PUT whose URL carries exactly the body's ids, with a request id, accepted.
    assert len(sim.pushes) == 10
    for record in sim.pushes:
        assert (record.method, record.accepted, record.http_status) == ("PUT", True, 201)
        assert path_ids(record) == [record.body["country_code"], record.body["party_id"], record.body["id"]]
        assert record.request_id
    kinds = [record.kind for record in sim.pushes]
    assert kinds == ["tariff"] * 2 + ["location"] * 8  # tariffs first: connectors reference them
    meta = metadata(result, "ndw/push")
    assert (meta["pushes"], meta["pushes_accepted"], meta["location_puts"], meta["tariff_puts"]) == (
        10,
        10,
        8,
        2,
    )
    assert check_passed(result)
    assert (
        scalar(
            warehouse,
            "SELECT count(*) FROM ops.ndw_pushes WHERE ok AND outcome = 'accepted' AND http_status = 201",
        )
        == 10
    )
    assert held(warehouse, "location") == {"/".join(k) for k in export.location_keys}

    again = push(warehouse, resource(sim))
    assert len(sim.pushes) == 10, "nothing changed, so nothing is sent"
    assert metadata(again, "ndw/push")["pushes"] == 0
    push(warehouse, resource(sim), static=False)
    assert len(sim.pushes) == 10


def test_urls_are_built_from_the_object_and_ids_never_change(sim: NdwSimulator, ndw: NdwPushResource) -> None:
    client = ndw.client()
    tariff = {
        "country_code": "NL",
        "party_id": "ALF",
        "id": "AC 11/kWh",
        "currency": "EUR",
        "elements": TARIFF_ELEMENTS,
        "last_updated": "2026-11-01T08:00:00Z",
    }
    outcome = client.put_tariff(tariff)
    assert outcome.ok and outcome.path == "tariffs/NL/ALF/AC%2011%2FkWh"
    assert sim.tariff("NL", "ALF", "AC 11/kWh") == tariff
    with pytest.raises(ValueError, match="ids never change"):
        client.put_tariff(tariff, ("NL", "ALF", "OTHER"))
    with pytest.raises(ValueError, match="ids never change"):
        client.put_location({"country_code": "NL", "party_id": "ALF", "id": "LOC-1"}, ("NL", "BET", "LOC-1"))
    with pytest.raises(ValueError, match="last_updated"):
        client.patch_evse_status("NL", "ALF", "LOC-1", "E1", "AVAILABLE", "")
    assert len(sim.pushes) == 1


# --------------------------------------------------------------------------------------------
# Dynamic: the real-time lane's scoped push


def lane_cycle(warehouse: WarehouseResource, ndw: NdwPushResource) -> Any:
    """One cycle of a lane without feeds: whatever reached the mart is diffed and pushed. (No
    overlap: these tests change the mart within milliseconds of the full push.)"""
    return Lane(warehouse, ndw, feeds=[], overlap=timedelta(0)).cycle("lane-test")


def test_status_change_reaches_ndw_as_one_patch_on_the_lane(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    push(warehouse, ndw)  # the hourly full push: NDW holds the export; the lane's cursor starts here
    before = len(sim.pushes)

    # Two transitions of one EVSE (coalesced into one PATCH) and one of a location NDW never got.
    change_evse(warehouse, 1, 1, "CHARGING", 5)
    change_evse(warehouse, 1, 1, "OUTOFORDER", 6)
    committed = time.monotonic()
    assert (
        scalar(warehouse, "SELECT count(*) FROM mart.evse_status_history WHERE run_id LIKE 'change-%'") == 2
    )

    report = lane_cycle(warehouse, ndw)
    assert report.push is not None and report.push.advanced
    assert report.push.scope["locations"] == 1  # the diff covered what changed, not the fleet
    [patch] = sim.pushes[before:]
    lag = patch.mono - committed
    assert (patch.method, patch.kind, patch.accepted, patch.http_status) == ("PATCH", "evse", True, 200)
    assert path_ids(patch) == ["NL", "ALF", "LOC-0001", "LOC-0001-E1"]
    assert patch.body == {"status": "OUTOFORDER", "last_updated": "2026-11-01T08:06:00Z"}
    assert present(sim.evse("NL", "ALF", "LOC-0001", "LOC-0001-E1"))["status"] == "OUTOFORDER"
    assert lag < 30, f"warehouse commit -> NDW took {lag:.1f}s"
    [(recorded_lag, reason, method)] = query(
        warehouse, "SELECT lag_seconds, reason, method FROM ops.ndw_pushes WHERE kind = 'evse'"
    )
    assert 0 < recorded_lag < 30 and (reason, method) == ("status", "PATCH")
    assert (
        scalar(warehouse, "SELECT status FROM ops.ndw_pushed WHERE evse_uid = 'LOC-0001-E1'") == "OUTOFORDER"
    )

    # Nothing new: the next cycle sends nothing, and neither does a full diff.
    assert lane_cycle(warehouse, ndw).push is None
    push(warehouse, ndw, static=False)
    assert len(sim.pushes) == before + 1


def test_a_status_patch_never_sends_a_last_updated_older_than_ndw_holds(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    push(warehouse, ndw)
    before = len(sim.pushes)
    # NDW holds a later stamp for the EVSE than the mart's next change carries (as after a REMOVED it
    # was sent at push time, or a connector since deleted): OCPI's last_updated must not go backwards.
    with warehouse.get_connection() as con:
        con.execute(
            "UPDATE ops.ndw_pushed SET last_updated = '2026-11-01T09:00:00Z' "
            "WHERE kind = 'evse' AND evse_uid = 'LOC-0001-E1'"
        )
    change_evse(warehouse, 1, 1, "CHARGING", 5)  # the mart's EVSE now says 08:05

    lane_cycle(warehouse, ndw)
    [patch] = sim.pushes[before:]
    assert (patch.method, patch.kind) == ("PATCH", "evse")
    assert patch.body == {"status": "CHARGING", "last_updated": "2026-11-01T09:00:00Z"}  # NDW's, not 08:05
    assert (
        scalar(
            warehouse,
            "SELECT last_updated FROM ops.ndw_pushed WHERE kind = 'evse' AND evse_uid = 'LOC-0001-E1'",
        )
        == "2026-11-01T09:00:00Z"
    )


def test_a_location_ndw_lacks_is_put_by_the_lane_with_its_status(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    push(warehouse, ndw)
    before = len(sim.pushes)
    rows = MartRows()
    location = rows.location(7, updated=later(7))
    rows.evse(location, 1, status="CHARGING", updated=later(7))
    rows.connector(rows.evses[-1], 1, updated=later(7))
    rows.write(warehouse, run_id="new-location")
    lane_cycle(warehouse, ndw)
    puts = [p for p in sim.pushes[before:] if p.method == "PUT" and p.kind == "location"]
    assert [path_ids(p) for p in puts] == [["NL", "ALF", "LOC-0007"]]
    assert present(sim.evse("NL", "ALF", "LOC-0007", "LOC-0007-E1"))["status"] == "CHARGING"


@pytest.mark.slow
def test_a_failed_push_keeps_the_cursor_and_is_retried_after_a_backoff(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    push(warehouse, ndw)
    change_evse(warehouse, 1, 1, "CHARGING", 5)
    sim.faults.inject("503", 20, path="/ocpi/")  # NDW is down
    lane = Lane(warehouse, resource(sim, max_attempts=1), feeds=[], overlap=timedelta(0))
    first = lane.cycle("lane-test")
    assert first.push is not None and not first.push.advanced
    assert scalar(warehouse, "SELECT count(*) FROM ops.ndw_pushes WHERE outcome = 'failed'") >= 1
    sim.faults.clear()  # NDW is back
    assert lane.cycle("lane-test").push is None  # backing off: no hammering of a service that just failed
    time.sleep(2.1)
    retried = lane.cycle("lane-test")
    assert retried.push is not None and retried.push.advanced
    assert present(sim.evse("NL", "ALF", "LOC-0001", "LOC-0001-E1"))["status"] == "CHARGING"


# --------------------------------------------------------------------------------------------
# Tariffs and withdrawn objects


def test_tariff_change_is_put_and_a_withdrawn_tariff_deleted_with_204(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    push(warehouse, ndw)
    before = len(sim.pushes)
    rows = MartRows()
    pricier = [{"price_components": [{"type": "ENERGY", "price": 0.59, "vat": 21.0, "step_size": 1}]}]
    rows.tariff("T-FAST", updated=later(10), elements=json.dumps(pricier))
    rows.write(warehouse, run_id="tariff-change")
    push(warehouse, ndw)
    [put] = sim.pushes[before:]
    assert (put.method, put.path, put.http_status) == ("PUT", "/ocpi/2.2.1/tariffs/NL/ALF/T-FAST", 200)
    assert present(sim.tariff("NL", "ALF", "T-FAST"))["elements"] == pricier

    # Withdraw T-FAST: connectors stop referencing it, the tariff is deleted upstream.
    before = len(sim.pushes)
    rows = MartRows()
    for n in range(1, 6):
        location = rows.location(n)
        for e in (1, 2):
            rows.connector(rows.evse(location, e), 2, tariffs=["T-STD"], updated=later(20))
    rows.locations.clear()
    rows.evses.clear()
    rows.tariff("T-FAST", updated=later(20), is_deleted=True)
    rows.write(warehouse, run_id="tariff-withdrawn")
    result = push(warehouse, ndw)
    sent = sim.pushes[before:]
    assert [(p.method, p.kind) for p in sent] == [("PUT", "location")] * 5 + [("DELETE", "tariff")]
    delete = sent[-1]
    assert (delete.path, delete.http_status, delete.accepted, delete.warnings) == (
        "/ocpi/2.2.1/tariffs/NL/ALF/T-FAST",
        204,
        True,
        [],
    )
    assert sim.tariff("NL", "ALF", "T-FAST") is None and sim.tariff("NL", "ALF", "T-STD") is not None
    assert query(
        warehouse, "SELECT http_status, ok, outcome, reason FROM ops.ndw_pushes WHERE method = 'DELETE'"
    ) == [(204, True, "accepted", "removed")]
    assert held(warehouse, "tariff") == {"NL/ALF/T-STD"}
    assert metadata(result, "ndw/push")["tariff_deletes"] == 1 and check_passed(result)
    push(warehouse, ndw)
    assert len(sim.pushes) == before + 6


def test_location_gone_from_the_mart_is_put_with_every_evse_removed(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    push(warehouse, ndw)
    before = len(sim.pushes)
    rows = MartRows()
    rows.location(2, deleted=True, updated=later(30))
    # LOC-0003-E2 is gone with its connectors: it leaves the export, but EVSEs are never deleted.
    gone = rows.evse(rows.location(3), 2, status="CHARGING", updated=later(30), is_deleted=True)
    for c in (1, 2):
        rows.connector(gone, c, updated=later(30), is_deleted=True)
    del rows.locations[1]
    rows.write(warehouse, run_id="removals")
    push(warehouse, ndw)
    sent = sim.pushes[before:]
    assert sorted((p.method, p.path) for p in sent) == [
        ("PUT", "/ocpi/2.2.1/locations/NL/ALF/LOC-0002"),
        ("PUT", "/ocpi/2.2.1/locations/NL/ALF/LOC-0003"),
    ]
    assert {e["uid"]: e["status"] for e in present(sim.location("NL", "ALF", "LOC-0002"))["evses"]} == {
        "LOC-0002-E1": "REMOVED",
        "LOC-0002-E2": "REMOVED",
    }
    assert {e["uid"]: e["status"] for e in present(sim.location("NL", "ALF", "LOC-0003"))["evses"]} == {
        "LOC-0003-E1": "AVAILABLE",
        "LOC-0003-E2": "REMOVED",
    }
    assert scalar(
        warehouse, "SELECT withdrawn FROM ops.ndw_pushed WHERE kind = 'location' AND object_id = 'LOC-0002'"
    )
    push(warehouse, ndw)
    push(warehouse, ndw, static=False)
    assert len(sim.pushes) == before + 2


# --------------------------------------------------------------------------------------------
# NDW's error table


def test_rejected_content_is_recorded_not_retried_and_fails_the_check(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    sim.reject_content(1, code=2001, message="tariff_alt_text: not allowed here")
    result = push(warehouse, ndw)
    assert result.success and not check_passed(result)
    meta = metadata(result, "ndw/push")
    assert (meta["pushes_rejected"], meta["pushes_accepted"]) == (1, 9)
    assert "tariff_alt_text: not allowed here" in meta["rejected"]
    assert query(
        warehouse,
        "SELECT path, http_status, ocpi_status, message, attempts, ok FROM ops.ndw_pushes "
        "WHERE outcome = 'rejected'",
    ) == [("tariffs/NL/ALF/T-FAST", 200, 2001, "tariff_alt_text: not allowed here", 1, False)]
    fast = "/ocpi/2.2.1/tariffs/NL/ALF/T-FAST"
    assert [p.path for p in sim.pushes].count(fast) == 1
    assert held(warehouse, "tariff") == {"NL/ALF/T-STD"}

    # The same content is not sent again (retrying cannot help), and the check keeps warning.
    again = push(warehouse, ndw)
    assert [p.path for p in sim.pushes].count(fast) == 1
    [evaluation] = again.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    # Once the content changes, it is sent (and now accepted).
    rows = MartRows()
    rows.tariff("T-FAST", updated=later(40), tariff_alt_text=json.dumps([{"language": "nl", "text": "snel"}]))
    rows.write(warehouse, run_id="fixed")
    assert check_passed(push(warehouse, ndw))
    assert [p.path for p in sim.pushes].count(fast) == 2 and sim.tariff("NL", "ALF", "T-FAST") is not None


def test_an_object_our_definition_refuses_is_held_back_never_sent(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    """The push guards NDW like the export does: what fails our definition stays here, with the reason."""
    rows = MartRows()
    rows.location(
        1, time_zone="Mars/Olympus_Mons", updated=later(5)
    )  # selected by the export SQL, refused by the definition
    rows.write(warehouse, run_id="bad-zone")
    result = push(warehouse, ndw)
    meta = metadata(result, "ndw/push")
    assert "NL/ALF/LOC-0001 | fails our OCPI 2.2.1/NDW definition: time_zone" in meta["held_back_objects"]
    assert not any("LOC-0001" in p.path for p in sim.pushes)
    assert all("LOC-0001" not in key for key in held(warehouse, "location"))


def test_one_401_fetches_a_new_token_and_succeeds(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    sim.force_unauthorized(1)
    result = push(warehouse, ndw)
    assert check_passed(result) and sim.tokens_issued == 2
    assert [p.http_status for p in sim.pushes[:2]] == [401, 201]
    assert query(warehouse, "SELECT attempts, outcome FROM ops.ndw_pushes ORDER BY pushed_at LIMIT 1") == [
        (2, "accepted")
    ]
    assert scalar(warehouse, "SELECT count(*) FROM ops.ndw_pushes WHERE ok") == 10


def test_persistent_401_fails_the_run_clearly_and_records_only_what_happened(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    sim.force_unauthorized(100)
    result = push(warehouse, ndw, raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    error = error.cause if error is not None and error.cause is not None else error
    assert error is not None and error.cls_name == "NdwAuthError"
    assert "push API answered HTTP 401 (no access) even to a fresh token" in error.message
    assert CLIENT_SECRET not in error.message and CLIENT_ID not in error.message
    assert len(sim.pushes) == 2 and sim.tokens_issued == 2  # one refresh, then stop: no other push tried
    assert query(warehouse, "SELECT outcome, http_status, attempts, ok FROM ops.ndw_pushes") == [
        ("unauthorized", 401, 2, False)
    ]
    assert scalar(warehouse, "SELECT count(*) FROM ops.ndw_pushed") == 0


def test_wrong_client_secret_is_a_clear_auth_error_without_the_secret(sim: NdwSimulator) -> None:
    wrong = "not-the-right-secret-42"
    client = resource(sim, client_secret=wrong).client()
    with pytest.raises(NdwAuthError) as raised:
        client.delete_tariff("NL", "ALF", "T-STD")
    message = str(raised.value)
    assert "token endpoint answered HTTP 401" in message and "invalid_client" in message
    assert wrong not in message and raised.value.outcome.outcome == "unauthorized"
    assert sim.pushes == []


def test_token_is_cached_then_fetched_again_before_and_after_expiry(
    sim: NdwSimulator, ndw: NdwPushResource
) -> None:
    now = [1000.0]
    client = ndw.client(clock=lambda: now[0])
    tariff = {
        "country_code": "NL",
        "party_id": "ALF",
        "id": "T-1",
        "currency": "EUR",
        "elements": TARIFF_ELEMENTS,
        "last_updated": "2026-11-01T08:00:00Z",
    }
    assert client.put_tariff(tariff).ok and sim.tokens_issued == 1
    now[0] += 1100
    sim.clock.advance(1100)  # well within the token's 1800 s: cached
    assert client.put_tariff(tariff).ok and sim.tokens_issued == 1
    now[0] += 650
    sim.clock.advance(650)  # 1750 s: inside the 60 s margin, so fetched before NDW would refuse it
    assert client.put_tariff(tariff).ok and sim.tokens_issued == 2
    assert all(p.http_status != 401 for p in sim.pushes)

    sim.clock.advance(1800)  # NDW's clock says expired while ours does not: one 401, refresh, accepted
    outcome = client.put_tariff(tariff)
    assert (outcome.ok, outcome.attempts, sim.tokens_issued) == (True, 2, 3)
    assert [p.http_status for p in sim.pushes[-2:]] == [401, 200]


def test_transient_failures_are_retried_and_a_down_ndw_defers_the_rest(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows
) -> None:
    client = resource(sim).client()
    tariff = {
        "country_code": "NL",
        "party_id": "ALF",
        "id": "T-1",
        "currency": "EUR",
        "elements": TARIFF_ELEMENTS,
        "last_updated": "2026-11-01T08:00:00Z",
    }
    sim.faults.inject("503", 2, path="/ocpi/")
    sim.faults.inject("disconnect", 1, path="/ocpi/")
    outcome = client.put_tariff(tariff)
    # The dropped attempt had been stored before the connection went: the retried PUT updates (idempotent).
    assert (outcome.ok, outcome.attempts, outcome.http_status) == (True, 4, 200)

    sim.faults.inject("503", 100, path="/auth/")  # NDW's IAM down: a transient failure, not an auth error
    unreachable = resource(sim, max_attempts=2).client().put_tariff(tariff)
    assert (unreachable.outcome, unreachable.http_status) == (
        "failed",
        503,
    ) and "ndw-iam" in unreachable.message

    sim.reset(sim.clock)
    sim.faults.inject("502", 100, path="/ocpi/")
    down = resource(sim, max_attempts=2, max_consecutive_failures=2)
    result = push(warehouse, down)
    assert result.success and not check_passed(result)
    meta = metadata(result, "ndw/push")
    assert (meta["pushes_failed"], meta["deferred"]) == (2, 8)
    assert (
        query(warehouse, "SELECT outcome, http_status, attempts FROM ops.ndw_pushes")
        == [("failed", 502, 2)] * 2
    )
    assert scalar(warehouse, "SELECT count(*) FROM ops.ndw_pushed") == 0
    sim.faults.clear()
    recovered = push(warehouse, down)  # no queue: the next run's diff sends everything again
    assert metadata(recovered, "ndw/push")["pushes_accepted"] == 10 and len(sim.locations) == 8


def test_patch_404_makes_the_next_full_run_put_the_location_again(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    push(warehouse, ndw)
    with sim.lock:
        del sim.locations[("nl", "alf", "loc-0004")]  # NDW lost it
    change_evse(warehouse, 4, 1, "CHARGING", 5)
    result = push(warehouse, ndw, static=False)
    assert not check_passed(result)
    assert query(warehouse, "SELECT method, outcome, http_status FROM ops.ndw_pushes WHERE NOT ok") == [
        ("PATCH", "not_found", 404)
    ]
    assert "NL/ALF/LOC-0004" not in held(warehouse, "location")
    before = len(sim.pushes)
    push(warehouse, ndw)
    [put] = sim.pushes[before:]
    assert (put.method, put.path, put.http_status) == ("PUT", "/ocpi/2.2.1/locations/NL/ALF/LOC-0004", 201)
    assert present(sim.evse("NL", "ALF", "LOC-0004", "LOC-0004-E1"))["status"] == "CHARGING"


# --------------------------------------------------------------------------------------------
# Wiring


def test_code_location_wires_the_full_push_and_the_lane() -> None:
    from evpipeline.definitions import defs

    assert defs.resolve_job_def("ndw_push_full").name == ndw_push_full_job.name
    assert defs.resolve_schedule_def("ndw_push_hourly").cron_schedule == "7 * * * *"
    assert defs.resolve_sensor_def("realtime_lane").job_name == "realtime_lane"


# --------------------------------------------------------------------------------------------
# `evpipeline dev`: a restarted NDW simulator holds what the warehouse says NDW holds


def test_a_restarted_dev_ndw_is_seeded_so_the_lanes_first_patch_finds_its_evse(
    sim: NdwSimulator, warehouse: WarehouseResource, mart: MartRows, ndw: NdwPushResource
) -> None:
    from evpipeline.cli import seed_dev_ndw

    push(warehouse, ndw)  # an earlier session (`make demo`) pushed everything; then its NDW simulator stopped
    change_evse(warehouse, 1, 1, "CHARGING", 5)
    with running(
        NdwSimulator(clock=SimClock(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    ) as restarted:
        assert seed_dev_ndw(restarted, warehouse.database) == (
            8,
            2,
        )  # locations, tariffs (T-BROKEN is refused)
        assert restarted.location("NL", "ALF", "LOC-0002") == sim.location("NL", "ALF", "LOC-0002")
        assert restarted.tariff("NL", "ALF", "T-FAST") == sim.tariff("NL", "ALF", "T-FAST")
        assert restarted.pushes == []  # seeding is no push
        report = lane_cycle(warehouse, resource(restarted))
        [patch] = restarted.pushes
        assert (patch.method, patch.http_status, patch.accepted) == ("PATCH", 200, True), patch.status_message
        assert report.push is not None and report.push.advanced
        assert present(restarted.evse("NL", "ALF", "LOC-0001", "LOC-0001-E1"))["status"] == "CHARGING"


def test_seeding_a_dev_ndw_from_a_warehouse_that_pushed_nothing_holds_nothing(
    sim: NdwSimulator, warehouse: WarehouseResource
) -> None:
    from evpipeline.cli import seed_dev_ndw

    assert seed_dev_ndw(sim, warehouse.database) == (0, 0)  # not even created yet
    assert sim.locations == {} and sim.tariffs == {}
