"""`evpipeline dev` (`make dev`) as a new user meets it, in a subprocess: the header names the UI; the
Dagster UI (`dagster dev` on the project's workspace) shows every asset, asset check, schedule and sensor
and runs a source job launched through GraphQL (as the UI's "Materialize" does); the daemon starts exactly
one real-time lane; Dagster's beta/preview notices stay out of the terminal; and Ctrl-C (SIGINT to the
terminal's process group) stops everything in order: the lane run ends successfully, no trace is printed,
nothing keeps listening. Marker `ui` (`make ui-check`); about two minutes.

One `dagster dev` for all of it (the UI checks run while the lane is watched for a second run): each
start of it costs half a minute of code-location loading on two cores."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from evpipeline.cli import dev_ports
from evpipeline_tests.test_settings import clean_env

ROOT = Path(__file__).resolve().parents[1]
JOB = "greenflux_sync"  # a small source job: one simulator, a few requests
RUN_TIMEOUT = 90.0
LANE_RUNS = """{ runsOrError(filter: {pipelineName: "realtime_lane"})
  { ... on Runs { results { runId status } } } }"""
WATCH_SECONDS = 30.0  # after the lane beats: six sensor ticks (every 5 s) that must start no second lane

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.timeout(420)]


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
ASSETS = """{ assetNodes { assetKey { path }
  assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }"""
REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name }
  schedules { name scheduleState { status } } sensors { name sensorState { status } } jobs { name } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
FAILURE = """query($id: ID!) { logsForRun(runId: $id) { __typename
  ... on EventConnection { events { __typename
  ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }"""


def free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_ports() -> tuple[int, int]:
    """(port base, UI port): every port `dev` listens on is free."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 60_000, 100)
        if all(free(p) for p in [*dev_ports(base).values(), base + 50]):
            return base, base + 50
    raise RuntimeError("no free port range")


def until(what: str, predicate: Callable[[], Any], deadline: float, log: Path, poll: float = 1.0) -> Any:
    """Poll `predicate` until it returns something truthy, or fail at `deadline` (time.monotonic())."""
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(poll)
    raise AssertionError(f"{what}: not within the deadline\n{log.read_text(errors='replace')[-4000:]}")


def heartbeat(data: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data / "lane" / "heartbeat.json").read_text())
    except (OSError, ValueError):
        return None


def lane_runs(port: int) -> dict[str, str]:
    try:
        results = graphql(port, LANE_RUNS, timeout=10)["runsOrError"]["results"]
    except OSError:
        return {}
    return {r["runId"]: r["status"] for r in results}


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path, int]]:
    """`evpipeline dev` in a process group of its own (as a terminal runs it); yields (process, data, log,
    UI port)."""
    base, port = free_ports()
    data, home, log = tmp_path / "data", tmp_path / "home", tmp_path / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evpipeline.cli",
                "dev",
                "--data-dir",
                str(data),
                "--dagster-home",
                str(home),
                "--port",
                str(port),
                "--port-base",
                str(base),
                "--scale",
                "0.2",
                "--advance-every",
                "5",
            ],
            cwd=ROOT,
            env=clean_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, data, log, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        _kill_leftovers(home)


def expected() -> dict[str, set[str]]:
    from evpipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {
        "assets": {key.to_user_string() for key in graph.get_all_asset_keys()},
        "checks": {f"{check.asset_key.to_user_string()}:{check.name}" for check in graph.asset_check_keys},
        "schedules": {s.name for s in defs.schedules or []},
        "sensors": {s.name for s in defs.sensors or []},
    }


def check_the_ui(port: int) -> None:
    """Every asset, asset check, schedule and sensor is shown (schedules and sensors on from the start);
    a source job launched through GraphQL, as the UI's "Materialize" does, succeeds."""
    entries = graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
    [location] = [e for e in entries if e["name"] == "evpipeline"]
    assert location["loadStatus"] == "LOADED", location
    assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location
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


def _kill_leftovers(home: Path) -> list[str]:
    """Processes this test started that outlived `dev` (Dagster's, in their own session): killed by pid."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"DAGSTER_HOME={home}".encode() in environ.split(b"\0"):
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                left.append(f"{entry.name}: {command[:200]}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    return left


def test_dev_shows_everything_runs_a_job_and_one_lane_and_ctrl_c_stops_it_cleanly(
    dev: tuple[subprocess.Popen[bytes], Path, Path, int], tmp_path: Path
) -> None:
    process, data, log, port = dev
    start = time.monotonic()
    header = until("the header", lambda: "Dagster UI" in log.read_text(errors="replace"), start + 60, log)
    assert header
    first = log.read_text(errors="replace").splitlines()[0]
    assert first.startswith(f"evpipeline dev: Dagster UI http://127.0.0.1:{port} "), first

    # The daemon's sensor starts a lane; it beats; through six more sensor ticks no second lane starts.
    until("a lane run", lambda: lane_runs(port), start + 180, log, poll=2.0)
    until("the lane's heartbeat", lambda: (heartbeat(data) or {}).get("state") == "running", start + 240, log)
    seen: dict[str, str] = {}
    watch = time.monotonic() + WATCH_SECONDS
    check_the_ui(port)  # meanwhile (the lane runs list keeps every run: none is missed)
    # At least one look after the UI checks, which on a loaded machine outlast the watch.
    while True:
        seen.update(lane_runs(port))
        if time.monotonic() >= watch:
            break
        time.sleep(2)
    assert len(seen) == 1, f"lane runs: {seen}"
    [lane] = seen

    # Ctrl-C: SIGINT to the whole foreground process group, as the terminal sends it.
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=150) == 0
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
    assert "is currently in beta" not in text and "is currently in preview" not in text
    assert "BetaWarning" not in text and "PreviewWarning" not in text and "SupersessionWarning" not in text
    assert (heartbeat(data) or {}).get("state") == "stopped"

    os.environ["DAGSTER_HOME"] = str(tmp_path / "home")
    try:
        instance = dg.DagsterInstance.get()
        statuses = {
            run.run_id: run.status
            for run in instance.get_runs(filters=dg.RunsFilter(job_name="realtime_lane"))
        }
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    finally:
        del os.environ["DAGSTER_HOME"]
    assert statuses == {lane: dg.DagsterRunStatus.SUCCESS}
    assert [r.job_name for r in failed] == []
    assert not listening(port), "the Dagster UI still listens"
    assert _kill_leftovers(tmp_path / "home") == []
