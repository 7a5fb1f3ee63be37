"""A Zaptec status change reaches NDW as a PATCH through the lane the supervisor starts."""

from __future__ import annotations

import dagster as dg
import pytest

from evpipeline.lane.assets import realtime_lane_sensor
from evpipeline_tests.conftest import query
from evpipeline_tests.lane.conftest import Deployment
from evpipeline_tests.typed import present, run_requests


def public_nl_evses(deployment: Deployment) -> list[tuple[str, str]]:
    """(evse_uid, status) of the Zaptec EVSEs NDW holds."""
    return query(
        deployment.warehouse,
        """
        SELECT e.evse_uid, e.status FROM mart.evses e
        JOIN ops.ndw_pushed p ON p.kind = 'evse' AND p.object_id = e.location_id AND p.evse_uid = e.evse_uid
        WHERE e.source = 'zaptec' ORDER BY 1""",
    )


@pytest.mark.slow
def test_zaptec_message_reaches_ndw_as_a_patch(deployment: Deployment) -> None:
    deployment.bootstrap()
    held = public_nl_evses(deployment)
    assert held, "reference data should make the public Dutch Zaptec installations exportable"
    uid, status = held[0]
    mode = "1" if status != "AVAILABLE" else "3"  # Disconnected <-> Connected_Charging
    deployment.zaptec_sim.set_state(uid, 710, mode)

    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, definitions=deployment.definitions())
    [request] = run_requests(realtime_lane_sensor(context))
    run = deployment.run_lane(instance, request, seconds=4)
    assert run.success
    [patch] = deployment.patches(uid)
    assert patch.body["status"] == ("AVAILABLE" if mode == "1" else "CHARGING")
    keys = {present(e.asset_key).to_user_string() for e in run.get_asset_materialization_events()}
    assert {"zaptec/charger_states", "mart/evses", "ndw/live"} <= keys
    # Like a sync's, the lane's table materializations carry the table's live row count and columns.
    evses = [
        present(e.materialization).metadata
        for e in run.get_asset_materialization_events()
        if present(e.asset_key).to_user_string() == "mart/evses"
    ]
    live = query(deployment.warehouse, "SELECT count(*) FROM mart.evses WHERE NOT is_deleted")[0][0]
    row_count, columns = evses[-1]["dagster/row_count"], evses[-1]["dagster/column_schema"]
    assert isinstance(row_count, dg.IntMetadataValue) and row_count.value == live
    assert isinstance(columns, dg.TableSchemaMetadataValue) and "status" in {
        c.name for c in columns.value.columns
    }
