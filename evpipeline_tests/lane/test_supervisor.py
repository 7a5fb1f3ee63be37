"""The supervisor keeps exactly one lane: it starts one when none is alive, a successor before the
deadline, and nothing while one is healthy or starting; one lane host at a time holds the lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from evpipeline.lane.assets import (
    HANDOVER_SECONDS,
    STALE_AFTER_SECONDS,
    STARTUP_SECONDS,
    lane_starting,
    realtime_lane_job,
    realtime_lane_sensor,
)
from evpipeline.lane.service import (
    clear_stop,
    exclusive,
    lane_dir,
    request_stop,
    run_lane,
    stop_requested,
    write_heartbeat,
)
from evpipeline_tests.typed import run_requests, sensor_result


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path))
    return tmp_path


def tick(instance: dg.DagsterInstance) -> dg.SensorResult:
    return sensor_result(realtime_lane_sensor(dg.build_sensor_context(instance=instance)))


def beat(
    data_dir: Path,
    *,
    age: float = 0.0,
    expires_in: float = 3000.0,
    state: str = "running",
    run_id: str = "r1",
) -> None:
    now = time.time()
    write_heartbeat(
        lane_dir(data_dir) / "heartbeat.json",
        {
            "run_id": run_id,
            "started_at": now - 60,
            "beat_at": now - age,
            "expires_at": now + expires_in,
            "state": state,
        },
    )


def test_no_lane_alive_starts_one(data_dir: Path) -> None:
    [request] = run_requests(tick(dg.DagsterInstance.ephemeral()))
    assert request.run_key and request.run_key.startswith("lane-")


def test_a_healthy_lane_is_left_alone(data_dir: Path) -> None:
    beat(data_dir)
    result = tick(dg.DagsterInstance.ephemeral())
    assert result.run_requests == [] and "alive" in (
        (result.skip_reason.skip_message or "") if result.skip_reason else ""
    )


@pytest.mark.parametrize("age, state", [(STALE_AFTER_SECONDS + 5, "running"), (0.0, "stopped")])
def test_a_silent_or_stopped_lane_is_replaced(data_dir: Path, age: float, state: str) -> None:
    beat(data_dir, age=age, state=state)
    assert len(run_requests(tick(dg.DagsterInstance.ephemeral()))) == 1


def test_the_successor_is_requested_once_before_the_deadline(data_dir: Path) -> None:
    beat(data_dir, expires_in=HANDOVER_SECONDS / 2, run_id="old-run")
    [first] = run_requests(tick(dg.DagsterInstance.ephemeral()))
    [again] = run_requests(tick(dg.DagsterInstance.ephemeral()))
    assert first.run_key == again.run_key  # the daemon launches a run key once: one successor per predecessor
    assert "old-run" in (first.run_key or "")


def test_nothing_is_requested_while_a_lane_run_is_starting(data_dir: Path) -> None:
    from dagster._core.storage.dagster_run import DagsterRun

    instance = dg.DagsterInstance.ephemeral()
    instance.add_run(
        DagsterRun(
            job_name=realtime_lane_job.name, run_id="starting-lane", status=dg.DagsterRunStatus.NOT_STARTED
        )
    )
    result = tick(instance)
    assert result.run_requests == [] and "starting" in (
        (result.skip_reason.skip_message or "") if result.skip_reason else ""
    )


def test_only_one_lane_host_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "lane.lock"
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with exclusive(path, 1.0) as acquired:
            assert acquired
            held.set()
            release.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(5)
    with exclusive(path, 0.3) as acquired:
        assert not acquired  # the second host gives up (its run ends: "another lane is running")
    release.set()
    thread.join()
    with exclusive(path, 0.3) as acquired:
        assert acquired  # the predecessor left: the successor takes over


def test_nothing_is_requested_while_a_started_lane_run_has_not_beaten_yet(data_dir: Path) -> None:
    """`make dev` started two lanes: the first run was STARTED (loading its code) without a heartbeat yet."""
    from dagster._core.storage.dagster_run import DagsterRun

    instance = dg.DagsterInstance.ephemeral()
    instance.add_run(
        DagsterRun(job_name=realtime_lane_job.name, run_id="loading-lane", status=dg.DagsterRunStatus.STARTED)
    )
    result = tick(instance)
    assert result.run_requests == []
    assert "has not beaten yet" in ((result.skip_reason.skip_message or "") if result.skip_reason else "")
    # Long after its start, a run that never beat is taken for dead: a lane is started.
    assert lane_starting(instance, time.time() + STARTUP_SECONDS + 1) is None
    # The run of the current heartbeat is no lane-to-be: its successor is still requested before the deadline.
    beat(data_dir, expires_in=HANDOVER_SECONDS / 2, run_id="loading-lane")
    assert len(run_requests(tick(instance))) == 1


def test_a_stop_request_stops_the_supervisor_and_a_lane_waiting_for_the_lock(data_dir: Path) -> None:
    request_stop(data_dir, "evpipeline dev is stopping")
    result = tick(dg.DagsterInstance.ephemeral())
    assert result.run_requests == [] and "evpipeline dev is stopping" in (
        (result.skip_reason.skip_message or "") if result.skip_reason else ""
    )
    with exclusive(lane_dir(data_dir) / "lane.lock", 0.0):  # another lane holds the lock
        outcome = run_lane(
            None,  # type: ignore[arg-type]  # never reached: the lane gives up before using it
            data_dir=data_dir,
            run_id="r",
            report=lambda _: None,
            logger=None,
            lock_wait_seconds=60.0,
        )
    assert (outcome.acquired, outcome.stopped_by) == (False, "evpipeline dev is stopping")
    clear_stop(data_dir)
    assert stop_requested(data_dir) is None and len(run_requests(tick(dg.DagsterInstance.ephemeral()))) == 1
