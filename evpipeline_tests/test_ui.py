"""UI smoke test: `dagster dev` loads the code location and shows every asset, check, schedule and
sensor; a source job launched through GraphQL (as the UI's "Materialize" does) succeeds.

Runs in the normal suite (marker `ui`; `make ui-check` runs it alone): simulators on free ports,
`dagster dev` on a free port with a temporary Dagster home (the project's dagster.yaml) and the
project's workspace, its whole process group killed at the end. About a minute on two cores."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evpipeline import dagster_home, settings, simulators
from evpipeline.serving import default_interrupts, free_port

ROOT = Path(__file__).resolve().parents[1]
JOB = "greenflux_sync"  # a small source job: one simulator, a few requests
LOAD_TIMEOUT = 90.0
RUN_TIMEOUT = 90.0

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.timeout(240)]


def graphql(
    port: int, query: str, variables: dict[str, Any] | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
ASSETS = """{ assetNodes { assetKey { path } assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }"""
REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name location { name }
  schedules { name scheduleState { status } } sensors { name sensorState { status } } jobs { name } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
FAILURE = """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events { __typename
  ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }"""


def wait_for_location(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the webserver answers and the `evpipeline` location is LOADED (a load error fails at once)."""
    deadline = time.monotonic() + LOAD_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dagster dev exited {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            entries = graphql(port, LOCATIONS, timeout=5)["workspaceOrError"].get("locationEntries", [])
        except (OSError, urllib.error.URLError):
            time.sleep(1)
            continue
        for entry in entries:
            if entry["name"] == "evpipeline" and entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"]
                assert loaded["__typename"] == "RepositoryLocation", loaded.get("message")
                return
        time.sleep(1)
    raise AssertionError(f"code location not loaded within {LOAD_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def dagster_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """`dagster dev` against simulators on free ports; yields the webserver's port."""
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EVPIPELINE_WAREHOUSE", raising=False)
    env: dict[str, str] = dict(os.environ)
    settings.apply_dev_defaults(env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the simulators read their keys from the settings
    sims = simulators.start_all(scale=0.2)
    try:
        for name, value in simulators.env_for(sims).items():
            monkeypatch.setenv(name, value)
        port = free_port()
        home = dagster_home.prepare(tmp_path / "dagster_home")
        log = tmp_path / "dagster-dev.log"
        dagster = Path(sys.executable).with_name("dagster")
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                cwd=ROOT,
                env={**os.environ, "DAGSTER_HOME": str(home)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: webserver, daemon, code servers, runs
                preexec_fn=default_interrupts,  # else stopping it waits out the SIGKILL timeout
            )
        try:
            wait_for_location(port, process, log)
            yield port
        finally:
            stop_group(process)
    finally:
        for sim in sims.values():
            sim.stop()


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after 20 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(
        ProcessLookupError
    ):  # children (a lane run, a code server) may outlive the parent
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def expected() -> dict[str, set[str]]:
    from evpipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {
        "assets": {key.to_user_string() for key in graph.get_all_asset_keys()},
        "checks": {f"{check.asset_key.to_user_string()}:{check.name}" for check in graph.asset_check_keys},
        "schedules": {s.name for s in defs.schedules or []},
        "sensors": {s.name for s in defs.sensors or []},
    }


def test_the_ui_shows_everything_and_runs_a_source_job(dagster_dev: int) -> None:
    port = dagster_dev
    want = expected()

    nodes = graphql(port, ASSETS)["assetNodes"]
    assets = {"/".join(node["assetKey"]["path"]) for node in nodes}
    checks = {
        f"{'/'.join(node['assetKey']['path'])}:{check['name']}"
        for node in nodes
        if node["assetChecksOrError"]["__typename"] == "AssetChecks"
        for check in node["assetChecksOrError"]["checks"]
    }
    assert want["assets"] - assets == set()
    assert want["checks"] - checks == set()
    assert want["checks"], "every source table has a quarantine-rate check"

    [repository] = [
        r
        for r in graphql(port, REPOSITORIES)["repositoriesOrError"]["nodes"]
        if r["location"]["name"] == "evpipeline"
    ]
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    assert set(schedules) == want["schedules"] and set(sensors) == want["sensors"]
    assert set(schedules.values()) == {"RUNNING"} and set(sensors.values()) == {
        "RUNNING"
    }  # on from the start
    assert JOB in {j["name"] for j in repository["jobs"]}

    params = {
        "selector": {
            "repositoryLocationName": "evpipeline",
            "repositoryName": repository["name"],
            "jobName": JOB,
        },
        "runConfigData": {},
    }
    launched = graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.monotonic() + RUN_TIMEOUT, "?"
    while time.monotonic() < deadline:
        status = graphql(port, RUN, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    if status != "SUCCESS":
        events = graphql(port, FAILURE, {"id": run_id})["logsForRun"].get("events", [])
        failures = [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
        raise AssertionError(f"{JOB} run {run_id}: {status} {failures[:3]}")
