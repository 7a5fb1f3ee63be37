"""The code location loads the way `dagster dev` and the code server load it, with every job, schedule and sensor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_code_location_validates_through_the_workspace() -> None:
    dagster = Path(sys.executable).with_name("dagster")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    completed = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=ROOT,
                               capture_output=True, text=True, timeout=180, env=env)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "Validation successful for code location evpipeline" in completed.stdout + completed.stderr


def test_every_schedule_and_sensor_is_there() -> None:
    from evpipeline.definitions import defs

    schedules = {s.name for s in defs.schedules or []}
    sensors = {s.name for s in defs.sensors or []}
    assert {"evroam_delta", "evroam_daily_repair", "greenflux_delta", "greenflux_daily_full", "zaptec_states_poll",
            "zaptec_static_hourly", "tomtom_availability", "ndw_daily_export_0200", "ndw_push_hourly"} <= schedules
    assert {"evroam_push", "zaptec_push", "ndw_push"} <= sensors
    for job in ("sync_all", "evroam_sync", "greenflux_sync", "zaptec_states", "tomtom_sync", "ndw_daily_export",
                "ndw_push_status", "ndw_push_full"):
        assert defs.resolve_job_def(job).name == job
