"""The code location loads the way `dagster dev`, the code server and `dg` load it, with every job,
schedule and sensor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_tool(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A console script of this venv, from the repository root, with no DAGSTER_HOME of the caller's."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    return subprocess.run(
        [str(Path(sys.executable).with_name(tool)), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


@pytest.mark.slow
def test_code_location_validates_through_the_workspace() -> None:
    completed = _run_tool("dagster", "definitions", "validate", "-w", "workspace.yaml")
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "Validation successful for code location evpipeline" in completed.stdout + completed.stderr


@pytest.mark.slow  # about 15 s: dg loads the code location in a subprocess
def test_dg_lists_what_the_definitions_hold() -> None:
    """`dg list defs` ([tool.dg] in pyproject.toml) finds evpipeline.definitions, not some other defs."""
    from evpipeline.definitions import defs

    completed = _run_tool("dg", "list", "defs", "--json")
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    listed = json.loads(completed.stdout)
    graph = defs.resolve_asset_graph()
    assert {a["asset_key"] for a in listed["assets"]} == {
        key.to_user_string() for key in graph.get_all_asset_keys()
    }
    assert {j["name"] for j in listed["jobs"]} == {job.name for job in defs.resolve_all_job_defs()} - {
        "__ASSET_JOB"
    }
    assert {s["name"] for s in listed["schedules"]} == {s.name for s in defs.schedules or []}
    assert {s["name"] for s in listed["sensors"]} == {s.name for s in defs.sensors or []}


def test_every_schedule_and_sensor_is_there() -> None:
    from evpipeline.definitions import defs

    schedules = {s.name for s in defs.schedules or []}
    sensors = {s.name for s in defs.sensors or []}
    assert {
        "evroam_delta",
        "evroam_daily_repair",
        "greenflux_delta",
        "greenflux_daily_full",
        "zaptec_states_poll",
        "zaptec_static_hourly",
        "tomtom_availability",
        "ndw_daily_export_0200",
        "ndw_push_hourly",
        "mart_daily_reconcile",
    } <= schedules
    assert {"realtime_lane", "reference_data_changed", "evpipeline_automation"} <= sensors
    for job in (
        "sync_all",
        "evroam_sync",
        "greenflux_sync",
        "zaptec_states",
        "tomtom_sync",
        "ndw_daily_export",
        "ndw_push_full",
        "realtime_lane",
        "mart_update",
        "mart_reconcile",
        "reference_data",
        "bi_publish",
    ):
        assert defs.resolve_job_def(job).name == job


def test_schedules_and_sensors_users_expect_are_on_from_the_start() -> None:
    from evpipeline.definitions import defs

    stopped = [
        s.name
        for s in [*(defs.schedules or []), *(defs.sensors or [])]
        if s.default_status.value != "RUNNING"
    ]
    assert stopped == []


def test_no_source_job_hand_wires_the_model() -> None:
    """Downstream assets follow by the lane and automation, not by source jobs listing them."""
    from evpipeline.definitions import defs

    for job in (
        "sync_all",
        "evroam_sync",
        "evroam_repair",
        "greenflux_sync",
        "greenflux_full",
        "zaptec_states",
        "zaptec_static",
        "tomtom_sync",
    ):
        keys = {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}
        assert not any(k.startswith(("mart/", "ndw/", "reference/")) for k in keys), (job, keys)
